"""What several commands share: building a config from a file and overrides, and its arguments."""
import argparse
from typing import List, Sequence, Union

from ..config import get_cfg
from ..data.catalog import DATASET_REGISTRY, register_datasets_from_cfg
from ..datasets import BUILTIN_DATASETS, register_builtin_datasets

__all__ = ["add_config_arguments", "input_size_opts", "register_datasets", "setup_cfg"]


def setup_cfg(config_file: str, opts: Sequence[str]):
    """The defaults, then ``config_file`` (with its ``_BASE_`` chain), then KEY VALUE overrides;
    the datasets are registered (``register_datasets``)."""
    cfg = get_cfg()
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    cfg.freeze()
    register_datasets(cfg)
    return cfg


def register_datasets(cfg) -> None:
    """Register DATASETS.COCO_INSTANCES, and the built-in datasets at their default sizes unless
    a caller registered them already (at other sizes, say)."""
    if not all(name in DATASET_REGISTRY for name in BUILTIN_DATASETS):
        register_builtin_datasets()
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
