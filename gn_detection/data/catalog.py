"""Datasets by name: what ``DATASETS.TRAIN`` and ``DATASETS.TEST`` refer to."""
from dataclasses import dataclass
from typing import Callable, Tuple

from ..utils.registry import Registry, lookup
from .coco import CocoInstances, load_coco_json
from .synthetic import ensure_shapes_dataset
from .xray import ensure_xray_dataset

__all__ = [
    "DATASET_REGISTRY",
    "DatasetSpec",
    "get_dataset_spec",
    "load_dataset",
    "register_coco_instances",
    "register_datasets_from_cfg",
]

DATASET_REGISTRY = Registry("DATASET")
DATASET_REGISTRY.__doc__ = "COCO-format datasets by name; each entry is a DatasetSpec."


@dataclass(frozen=True)
class DatasetSpec:
    """Where a COCO-format dataset lives.

    Attributes:
        name: the registered name.
        locate: returns ``(json_file, image_root)``; a built-in dataset generates its files here
            on first use.
    """

    name: str
    locate: Callable[[], Tuple[str, str]]


def register_coco_instances(name: str, json_file: str, image_root: str) -> None:
    """Make a COCO instances JSON and its image folder available as ``name`` in configs."""
    DATASET_REGISTRY.register_as(name)(DatasetSpec(name, lambda: (json_file, image_root)))


def register_datasets_from_cfg(cfg) -> None:
    """Register each ``[name, json_file, image_root]`` of ``DATASETS.COCO_INSTANCES``; a name
    registered already with the same files is left as it is."""
    for entry in cfg.DATASETS.COCO_INSTANCES:
        if len(entry) != 3:
            raise ValueError(
                f"DATASETS.COCO_INSTANCES entry {list(entry)}: expected [name, instances json, image folder]"
            )
        name, json_file, image_root = entry
        if name in DATASET_REGISTRY and DATASET_REGISTRY.get(name).locate() == (json_file, image_root):
            continue
        register_coco_instances(name, json_file, image_root)


def get_dataset_spec(name: str, key: str = "DATASETS") -> DatasetSpec:
    return lookup(DATASET_REGISTRY, name, key)


def load_dataset(name: str, *, filter_empty: bool, key: str = "DATASETS") -> CocoInstances:
    """Records of the dataset registered as ``name`` (see ``load_coco_json``)."""
    json_file, image_root = get_dataset_spec(name, key).locate()
    return load_coco_json(json_file, image_root, filter_empty=filter_empty)


# The built-in synthetic shapes set (data/synthetic.py), written to a cache folder on first use.
for _split in ("train", "val"):
    DATASET_REGISTRY.register_as(f"shapes_{_split}")(
        DatasetSpec(f"shapes_{_split}", lambda split=_split: ensure_shapes_dataset()[split])
    )

# The built-in synthetic chest X-rays (data/xray.py), DICOM files written on first use.
for _split in ("train", "val"):
    DATASET_REGISTRY.register_as(f"xray_{_split}")(
        DatasetSpec(f"xray_{_split}", lambda split=_split: ensure_xray_dataset()[split])
    )
