"""What several commands share: building a config from a file and overrides, and its arguments."""
import argparse
from typing import List, Sequence, Union

from ..config import check_config, get_cfg
from ..data.build import load_datasets
from ..data.catalog import DATASET_REGISTRY, register_datasets_from_cfg
from ..datasets import BUILTIN_DATASETS, register_builtin_datasets
from .arguments import at_least, probability

__all__ = [
    "add_config_arguments",
    "at_least",
    "class_names",
    "input_size_opts",
    "probability",
    "register_datasets",
    "setup_cfg",
]


def setup_cfg(config_file: str, opts: Sequence[str]):
    """The defaults, then ``config_file`` (with its ``_BASE_`` chain), then KEY VALUE overrides,
    checked (``check_config``); the datasets are registered (``register_datasets``)."""
    cfg = get_cfg()
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    check_config(cfg, f"{config_file} with the overrides" if opts else config_file)
    cfg.freeze()
    register_datasets(cfg)
    return cfg


def register_datasets(cfg=None) -> None:
    """Register the built-in datasets at their default sizes unless a caller registered them
    already (at other sizes, say), and ``cfg``'s DATASETS.COCO_INSTANCES."""
    if not all(name in DATASET_REGISTRY for name in BUILTIN_DATASETS):
        register_builtin_datasets()
    if cfg is not None:
        register_datasets_from_cfg(cfg)


def input_size_opts(size: Union[int, Sequence[int]]) -> List[str]:
    """Overrides that make the model take S x S (or H x W) images as they are, without resizing."""
    short, long = (size, size) if isinstance(size, int) else sorted(size)
    return [
        "INPUT.MIN_SIZE_TRAIN", f"({short},)", "INPUT.MAX_SIZE_TRAIN", str(long),
        "INPUT.MIN_SIZE_TEST", str(short), "INPUT.MAX_SIZE_TEST", str(long),
    ]


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-file", required=True, metavar="CFG", help="YAML config (may use _BASE_)")
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides, e.g. SOLVER.MAX_ITER 1000"
    )


def class_names(cfg) -> List[str]:
    """The class names of the first test (or else training) dataset; generic names without one."""
    for key, names in (("DATASETS.TEST", cfg.DATASETS.TEST), ("DATASETS.TRAIN", cfg.DATASETS.TRAIN)):
        if names:
            return load_datasets(names[:1], filter_empty=False, key=key).thing_classes
    return [f"class {k}" for k in range(1, cfg.MODEL.ROI_HEADS.NUM_CLASSES + 1)]
