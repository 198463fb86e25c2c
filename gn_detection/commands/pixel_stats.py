"""Compute MODEL.PIXEL_MEAN and PIXEL_STD from the training set, read as the model reads it (the
test mapper: INPUT.FORMAT's channels, INPUT.DICOM's window)."""
from ..data.build import load_datasets
from ..data.mapper import DatasetMapper
from ..datasets.statistics import pixel_statistics
from .common import add_config_arguments, at_least, setup_cfg

HELP = "compute MODEL.PIXEL_MEAN / PIXEL_STD from DATASETS.TRAIN"


def add_arguments(parser) -> None:
    parser.add_argument("--max-images", type=at_least(0), default=0, metavar="N", help="use the first N images (0: all)")
    add_config_arguments(parser)


def run(args) -> int:
    cfg = setup_cfg(args.config_file, args.opts)
    dataset = load_datasets(cfg.DATASETS.TRAIN, filter_empty=False, key="DATASETS.TRAIN")
    mapper = DatasetMapper(**DatasetMapper.from_config(cfg, is_train=False))
    files = [r["file_name"] for r in dataset.records[: args.max_images or None]]
    mean, std = pixel_statistics(files, mapper.read)
    print(f"# {len(files)} images of {', '.join(cfg.DATASETS.TRAIN)}, INPUT.FORMAT {cfg.INPUT.FORMAT}")
    print(f"MODEL.PIXEL_MEAN: [{', '.join(f'{v:.3f}' for v in mean)}]")
    print(f"MODEL.PIXEL_STD: [{', '.join(f'{v:.3f}' for v in std)}]")
    return 0
