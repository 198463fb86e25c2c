"""Datasets by name: what ``DATASETS.TRAIN`` and ``DATASETS.TEST`` refer to."""
from dataclasses import dataclass
from typing import Callable, Tuple

from ..utils.errors import UserError
from ..utils.registry import Registry, lookup
from .coco import CocoInstances, load_coco_json

__all__ = [
    "DATASET_REGISTRY",
    "DatasetSpec",
    "get_dataset_spec",
    "load_dataset",
    "register_coco_instances",
    "register_dataset",
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


def register_dataset(name: str, locate: Callable[[], Tuple[str, str]], *, replace: bool = False) -> None:
    """Make the dataset that ``locate()`` finds, ``(json_file, image_root)``, available as ``name``.

    Args:
        replace: register over an entry of that name; otherwise a second entry is an error.
    """
    DATASET_REGISTRY.register_as(name, replace=replace)(DatasetSpec(name, locate))


def register_coco_instances(name: str, json_file: str, image_root: str) -> None:
    """Make a COCO instances JSON and its image folder available as ``name`` in configs."""
    register_dataset(name, lambda: (json_file, image_root))


def register_datasets_from_cfg(cfg) -> None:
    """Register each ``[name, json_file, image_root]`` of ``DATASETS.COCO_INSTANCES``, over any
    earlier entry of that name: the config is what the run uses."""
    seen = set()
    for entry in cfg.DATASETS.COCO_INSTANCES:
        if len(entry) != 3:
            raise UserError(
                f"DATASETS.COCO_INSTANCES entry {list(entry)}: expected [name, instances json, image folder]"
            )
        name, json_file, image_root = entry
        if name in seen:
            raise UserError(f"DATASETS.COCO_INSTANCES names {name!r} twice; give each dataset its own name")
        seen.add(name)
        register_dataset(name, lambda files=(json_file, image_root): files, replace=True)


def get_dataset_spec(name: str, key: str = "DATASETS") -> DatasetSpec:
    return lookup(DATASET_REGISTRY, name, key)


def load_dataset(name: str, *, filter_empty: bool, key: str = "DATASETS") -> CocoInstances:
    """Records of the dataset registered as ``name`` (see ``load_coco_json``)."""
    json_file, image_root = get_dataset_spec(name, key).locate()
    return load_coco_json(json_file, image_root, filter_empty=filter_empty)
