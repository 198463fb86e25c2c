"""Draw a model's detections (--weights) or a dataset's ground truth as PNGs."""
import logging
import os

import numpy as np

from ..data.build import load_datasets
from ..data.image_io import to_rgb
from ..data.mapper import DatasetMapper
from ..data.segmentation import segmentation_to_mask
from ..engine.predictor import Predictor
from ..utils.errors import UserError
from ..utils.file_io import check_writable_folder
from ..utils.visualizer import draw_instances, save_png
from .common import add_config_arguments, at_least, class_names, probability, setup_cfg

HELP = "draw detections (or a dataset's ground truth) as PNGs"

logger = logging.getLogger("gn_detection")


def add_arguments(parser) -> None:
    parser.add_argument(
        "--weights", metavar="W", help="checkpoint whose detections to draw; without it, --dataset's ground truth"
    )
    parser.add_argument("--input", nargs="+", metavar="IMG", help="image files")
    parser.add_argument("--dataset", metavar="NAME", help="a registered dataset's images instead of --input")
    parser.add_argument("--num-images", type=at_least(1), default=10, metavar="N", help="with --dataset: its first N images")
    parser.add_argument("--output", required=True, metavar="DIR", help="folder for the PNGs")
    parser.add_argument(
        "--confidence-threshold", type=probability, default=0.5, metavar="T", help="draw detections scoring at least T"
    )
    add_config_arguments(parser)


def run(args) -> int:
    cfg = setup_cfg(args.config_file, args.opts)
    if bool(args.input) == bool(args.dataset):
        raise UserError("visualize takes either --input IMG... or --dataset NAME")
    if args.input and not args.weights:
        raise UserError("--input needs --weights: which model's detections to draw")
    check_writable_folder(args.output, "--output")
    if args.dataset:
        dataset = load_datasets([args.dataset], filter_empty=False, key="--dataset")
        records, names = dataset.records[: args.num_images], dataset.thing_classes
    else:
        records, names = None, class_names(cfg)

    if args.weights:
        paths = args.input or [r["file_name"] for r in records]
        _draw_detections(Predictor(cfg, args.weights), paths, names, args.output, args.confidence_threshold)
    else:
        _draw_ground_truth(DatasetMapper(**DatasetMapper.from_config(cfg, is_train=False)), records, names, args.output)
    return 0


def _draw_detections(predictor: Predictor, paths, class_names, output: str, threshold: float) -> None:
    for path in paths:
        image, detections = predictor(path)
        keep = detections["scores"] >= threshold
        drawn = draw_instances(
            image,
            boxes=detections["boxes"][keep],
            labels=detections["labels"][keep],
            scores=detections["scores"][keep],
            masks=detections["masks"][keep] if "masks" in detections else None,
            class_names=class_names,
        )
        out = os.path.join(output, os.path.splitext(os.path.basename(path))[0] + ".png")
        save_png(drawn, out)
        logger.info("wrote %s (%d detections scoring >= %.2f)", out, int(keep.sum()), threshold)


def _draw_ground_truth(mapper: DatasetMapper, records, class_names, output: str) -> None:
    for record in records:
        annotations = record["annotations"]
        masks = [segmentation_to_mask(a["segmentation"], record["height"], record["width"]) for a in annotations]
        drawn = draw_instances(
            to_rgb(mapper.read(record["file_name"]), mapper.image_format),
            boxes=np.array([a["bbox"] for a in annotations], dtype=np.float32).reshape(-1, 4),
            labels=np.array([a["category_id"] for a in annotations], dtype=np.int64),
            class_names=class_names,
            masks=np.stack(masks) if masks else None,
        )
        out = os.path.join(output, f"gt_{record['image_id']}.png")
        save_png(drawn, out)
        logger.info("wrote %s (%d annotations)", out, len(annotations))
