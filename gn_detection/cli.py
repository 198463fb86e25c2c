"""``gn-detect``: the command line. Each subcommand is a function here; tools/ only calls them."""
import argparse
import json
import logging
import os
import sys
import time
from collections import Counter
from typing import List, Optional

import numpy as np
import torch

from .config import ConfigError, get_cfg
from .layers import is_norm
from .modeling import build_model
from .utils import comm
from .utils.file_io import atomic_write_json
from .utils.logger import setup_logging
from .utils.registry import UnknownNameError

__all__ = ["main", "setup_cfg"]

logger = logging.getLogger("gn_detection")


def setup_cfg(config_file: str, opts: List[str]):
    """The defaults, then ``config_file`` (with its ``_BASE_`` chain), then KEY VALUE overrides;
    the datasets of DATASETS.COCO_INSTANCES are registered."""
    from .data.catalog import register_datasets_from_cfg

    cfg = get_cfg()
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(opts)
    cfg.freeze()
    register_datasets_from_cfg(cfg)
    return cfg


def _synthetic_sample(size: int, num_classes: int):
    """A noise image (3, S, S) in 0-255 with one box and its filled-box mask."""
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(3, size, size, generator=generator) * 255
    x0, y0, x1, y1 = size // 4, size // 3, 3 * size // 4, 5 * size // 6
    masks = torch.zeros(1, size, size, dtype=torch.uint8)
    masks[0, y0:y1, x0:x1] = 1
    target = dict(
        boxes=torch.tensor([[x0, y0, x1, y1]], dtype=torch.float32),
        labels=torch.tensor([min(1, num_classes)]),
        masks=masks,
    )
    return image, target


def _input_size_opts(size) -> List[str]:
    """Overrides that make the model take S x S (or H x W) images as they are, without resizing."""
    short, long = (size, size) if isinstance(size, int) else sorted(size)
    return [
        "INPUT.MIN_SIZE_TRAIN", f"({short},)", "INPUT.MAX_SIZE_TRAIN", str(long),
        "INPUT.MIN_SIZE_TEST", str(short), "INPUT.MAX_SIZE_TEST", str(long),
    ]


def cmd_build(args) -> int:
    """Build the model, summarize it, and run one training and one inference forward pass."""
    opts = list(args.opts) + (_input_size_opts(args.image_size) if args.image_size else [])
    cfg = setup_cfg(args.config_file, opts)
    model = build_model(cfg)
    params = list(model.parameters())
    norms = Counter(type(m).__name__ for m in model.modules() if is_norm(m))
    logger.info(
        "%s: %.1fM parameters, %.1fM trainable; norm layers: %s",
        type(model).__name__,
        sum(p.numel() for p in params) / 1e6,
        sum(p.numel() for p in params if p.requires_grad) / 1e6,
        ", ".join(f"{n} x{c}" for n, c in sorted(norms.items())) or "none",
    )
    size = args.image_size or cfg.INPUT.MIN_SIZE_TEST
    image, target = _synthetic_sample(size, cfg.MODEL.ROI_HEADS.NUM_CLASSES)
    device = torch.device(cfg.MODEL.DEVICE)
    image, target = image.to(device), {k: v.to(device) for k, v in target.items()}

    start = time.perf_counter()
    losses = model([image], [target])
    sum(losses.values()).backward()
    logger.info(
        "training forward+backward on one %dx%d image: %.2f s; %s",
        size,
        size,
        time.perf_counter() - start,
        ", ".join(f"{k}={v.item():.4f}" for k, v in losses.items()),
    )
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        (detections,) = model([image])
    logger.info(
        "inference: %.2f s; %d detections with fields %s",
        time.perf_counter() - start,
        len(detections["boxes"]),
        {k: tuple(v.shape) for k, v in detections.items()},
    )
    return 0


def _train_main(cfg, resume: bool, eval_only: bool) -> None:
    """Runs in every process of the job (see engine.launch)."""
    from .checkpoint import Checkpointer
    from .checkpoint.weights import load_weights
    from .engine.runner import run_evaluation, run_training

    from .data.catalog import register_datasets_from_cfg

    setup_logging(cfg.OUTPUT_DIR, comm.get_rank())
    register_datasets_from_cfg(cfg)  # again: a spawned process starts with an empty registry
    if eval_only:
        model = build_model(cfg)
        weights = cfg.MODEL.WEIGHTS or Checkpointer(cfg.OUTPUT_DIR, model=model).last_checkpoint()
        if not weights:
            raise ValueError(f"--eval-only needs MODEL.WEIGHTS or a checkpoint in OUTPUT_DIR={cfg.OUTPUT_DIR}")
        load_weights(model, weights, cfg=cfg)
        results = run_evaluation(cfg, model)
    else:
        results = run_training(cfg, resume=resume)
    if comm.is_main_process() and results:
        print(json.dumps(_ap_summary(results), indent=1))


def _ap_summary(results: dict) -> dict:
    return {
        name: {task: {k: round(v, 2) for k, v in metrics.items() if not k.startswith("AP-")} for task, metrics in tasks.items()}
        for name, tasks in results.items()
    }


def cmd_train(args) -> int:
    """Train a config's model (DATASETS.TRAIN), evaluating on DATASETS.TEST; or evaluate only."""
    cfg = setup_cfg(args.config_file, args.opts)
    from .engine.launch import launch

    launch(_train_main, args.num_gpus, args=(cfg, args.resume, args.eval_only))
    return 0


def _class_names(cfg) -> List[str]:
    """The class names of the first test (or else training) dataset; generic names without one."""
    from .data.build import load_datasets

    for key, names in (("DATASETS.TEST", cfg.DATASETS.TEST), ("DATASETS.TRAIN", cfg.DATASETS.TRAIN)):
        if names:
            return load_datasets(names[:1], filter_empty=False, key=key).thing_classes
    return [f"class {k}" for k in range(1, cfg.MODEL.ROI_HEADS.NUM_CLASSES + 1)]


def cmd_visualize(args) -> int:
    """Draw a model's detections (--weights) or a dataset's ground truth as PNGs."""
    from .data.build import load_datasets
    from .data.coco import segmentation_to_mask
    from .engine.predictor import Predictor, read_display_image
    from .utils.visualizer import draw_instances, save_png

    cfg = setup_cfg(args.config_file, args.opts)
    if bool(args.input) == bool(args.dataset):
        raise ValueError("visualize takes either --input IMG... or --dataset NAME")
    if args.input and not args.weights:
        raise ValueError("--input needs --weights: which model's detections to draw")
    if args.dataset:
        dataset = load_datasets([args.dataset], filter_empty=False, key="--dataset")
        records, class_names = dataset.records[: args.num_images], dataset.thing_classes
        paths = [r["file_name"] for r in records]
    else:
        records, class_names, paths = None, _class_names(cfg), args.input

    if args.weights:
        predictor = Predictor(cfg, args.weights)
        for path in paths:
            image, detections = predictor(path)
            keep = detections["scores"] >= args.confidence_threshold
            drawn = draw_instances(
                image,
                boxes=detections["boxes"][keep],
                labels=detections["labels"][keep],
                scores=detections["scores"][keep],
                masks=detections["masks"][keep] if "masks" in detections else None,
                class_names=class_names,
            )
            out = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0] + ".png")
            save_png(drawn, out)
            logger.info("wrote %s (%d detections scoring >= %.2f)", out, int(keep.sum()), args.confidence_threshold)
        return 0

    for record in records:
        annotations = record["annotations"]
        masks = [segmentation_to_mask(a["segmentation"], record["height"], record["width"]) for a in annotations]
        drawn = draw_instances(
            read_display_image(record["file_name"], cfg),
            boxes=np.array([a["bbox"] for a in annotations], dtype=np.float32).reshape(-1, 4),
            labels=np.array([a["category_id"] for a in annotations], dtype=np.int64),
            class_names=class_names,
            masks=np.stack(masks) if masks else None,
        )
        out = os.path.join(args.output, f"gt_{record['image_id']}.png")
        save_png(drawn, out)
        logger.info("wrote %s (%d annotations)", out, len(annotations))
    return 0


def cmd_benchmark(args) -> int:
    """Time training steps and inference of a config, side by side with other configs,
    precisions or reference models, and the training step's working memory."""
    from .engine.benchmark import benchmark, describe_machine, format_report, ratios_to_first
    from .engine.reference_models import REFERENCES

    if len(args.size) > 2:
        raise ValueError(f"--size {' '.join(map(str, args.size))}: give S, or H W")
    size = tuple(args.size) if len(args.size) == 2 else args.size[0]
    opts = list(args.opts) + _input_size_opts(size)
    others = args.vs or []
    references = [v for v in others if v in REFERENCES and not os.path.exists(v)]
    paths = [args.config_file] + [v for v in others if v not in references]
    cfgs = {path: setup_cfg(path, opts) for path in paths}
    results = benchmark(
        cfgs, size=size, batch=args.batch, iters=args.iters, warmup=args.warmup, precisions=args.precision,
        references=references,
    )
    print(format_report(results))
    if args.json:
        report = dict(
            describe_machine(torch.device(cfgs[args.config_file].MODEL.DEVICE)),
            size=list(args.size), batch=args.batch, iters=args.iters, warmup=args.warmup,
            precisions=args.precision, opts=list(args.opts), results=results,
            ratios_to_first=ratios_to_first(results),
        )
        atomic_write_json(args.json, report)
    return 0


def cmd_benchmark_eval(args) -> int:
    """Time COCOEvaluator with pycocotools and with faster-coco-eval on the same synthetic
    ground truth and detections (boxes and masks), interleaved, and check that every AP agrees."""
    from .evaluation.benchmark import benchmark_evaluator

    report = benchmark_evaluator(args.images, num_categories=args.categories, repeats=args.repeats, seed=args.seed)
    print(f"{report['num_images']} images, {report['num_categories']} categories, {report['num_annotations']} objects, "
          f"{report['num_detections']} detections")
    for backend, seconds in report["seconds"].items():
        print(f"{backend:20s} {seconds:8.3f} s (median of {report['repeats']})")
    print(f"speed-up {report['speedup']:.2f}x; every AP identical: {report['identical_ap']} "
          f"(largest difference {report['max_abs_diff']:.2g} AP)")
    if args.json:
        atomic_write_json(args.json, report)
    return 0 if report["identical_ap"] else 1


def cmd_convert(args) -> int:
    """Convert pretrained weights (Detectron .pkl, detectron2 .pkl/.pth, torchvision or timm
    ResNets) to this package's format, and print where every tensor went."""
    from .checkpoint.weights import convert_checkpoint_file

    model = cfg = None
    if args.config_file:
        cfg = setup_cfg(args.config_file, args.opts)
        model = build_model(cfg)
    report = convert_checkpoint_file(
        args.source, args.destination, model=model, cfg=cfg, format=args.format, strict=args.strict
    )
    print(report.summary(max_items=args.max_items))
    print(f"wrote {args.destination}")
    return 0


def cmd_prepare(args) -> int:
    """Build a COCO instances JSON from a folder of images with masks (one PNG per instance, or a
    label map per image) or a CSV of boxes, check it, and print a report."""
    from .data.prepare import prepare_from_csv, prepare_from_masks

    if bool(args.masks) == bool(args.csv):
        raise ValueError("prepare takes either --masks DIR or --csv FILE")
    if args.masks:
        if not args.classes:
            raise ValueError("--masks needs --classes NAME [NAME ...] (label value or mask-name class order)")
        report = prepare_from_masks(args.images, args.masks, args.output, class_names=args.classes, layout=args.layout)
    else:
        report = prepare_from_csv(args.images, args.csv, args.output, class_names=args.classes or None)
    print(report.summary())
    return 0


def cmd_pixel_stats(args) -> int:
    """Compute MODEL.PIXEL_MEAN and PIXEL_STD from the training set, as the model reads it."""
    from .data.build import load_datasets
    from .data.image_io import read_image
    from .data.mapper import DatasetMapper
    from .data.statistics import pixel_statistics

    cfg = setup_cfg(args.config_file, args.opts)
    dataset = load_datasets(cfg.DATASETS.TRAIN, filter_empty=False, key="DATASETS.TRAIN")
    mapper = DatasetMapper(**DatasetMapper.from_config(cfg, is_train=False))
    files = [r["file_name"] for r in dataset.records[: args.max_images or None]]
    mean, std = pixel_statistics(
        files, lambda f: read_image(f, cfg.INPUT.FORMAT, mapper.dicom_window, mapper.dicom_frame)
    )
    print(f"# {len(files)} images of {', '.join(cfg.DATASETS.TRAIN)}, INPUT.FORMAT {cfg.INPUT.FORMAT}")
    print(f"MODEL.PIXEL_MEAN: [{', '.join(f'{v:.3f}' for v in mean)}]")
    print(f"MODEL.PIXEL_STD: [{', '.join(f'{v:.3f}' for v in std)}]")
    return 0


def cmd_compare_norms(args) -> int:
    """Train one recipe with several norm layers at several batch sizes; tabulate and plot AP
    and mean FROC sensitivity."""
    from .engine.compare import compare_norms, format_table, plot_comparison

    from .data.catalog import register_datasets_from_cfg

    cfgs = {}
    for item in args.configs:
        label, sep, path = item.partition("=")
        if not sep:
            raise ValueError(f"--configs {item!r}: expected LABEL=CONFIG_FILE, e.g. GN=configs/medical/x.yaml")
        cfg = get_cfg()
        cfg.merge_from_file(path)
        cfg.merge_from_list(list(args.opts))
        register_datasets_from_cfg(cfg)
        cfgs[label] = cfg
    setup_logging(args.output)
    rows = compare_norms(cfgs, args.batches, args.output)
    plot_comparison(rows, os.path.join(args.output, "comparison.png"))
    print(format_table(rows))
    print(f"wrote {args.output}/comparison.md, comparison.json and comparison.png")
    return 0


def _add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-file", required=True, metavar="CFG", help="YAML config (may use _BASE_)")
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides, e.g. SOLVER.MAX_ITER 1000"
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gn-detect", description="Mask R-CNN with Group Normalization.")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser(
        "build",
        help="build a config's model and run one forward pass on a synthetic image",
        description=cmd_build.__doc__,
    )
    build.add_argument(
        "--image-size", type=int, default=0, metavar="S",
        help="run on an SxS image, with the INPUT sizes set to S (default: INPUT.MIN_SIZE_TEST, unchanged)",
    )
    _add_config_arguments(build)
    build.set_defaults(func=cmd_build)

    train = commands.add_parser(
        "train",
        help="train and evaluate (COCO box and mask AP)",
        description=cmd_train.__doc__
        + " Checkpoints, metrics.json, TensorBoard events, log.txt and inference/results.json go to OUTPUT_DIR.",
    )
    train.add_argument(
        "--resume", action="store_true",
        help="continue from OUTPUT_DIR/last_checkpoint (model, optimizer, schedule, data order, RNGs); "
        "starts fresh, and says so, when there is none",
    )
    train.add_argument(
        "--eval-only", action="store_true",
        help="evaluate MODEL.WEIGHTS (or the last checkpoint in OUTPUT_DIR) on DATASETS.TEST; no training",
    )
    train.add_argument(
        "--num-gpus", type=int, default=1, metavar="N",
        help="processes on this machine, one per GPU (on a machine without GPUs: CPU processes with gloo). "
        "Under torchrun this is ignored and torchrun's processes are used",
    )
    _add_config_arguments(train)
    train.set_defaults(func=cmd_train)

    visualize = commands.add_parser(
        "visualize",
        help="draw detections (or a dataset's ground truth) as PNGs",
        description=cmd_visualize.__doc__,
    )
    visualize.add_argument(
        "--weights", metavar="W", help="checkpoint whose detections to draw; without it, --dataset's ground truth"
    )
    visualize.add_argument("--input", nargs="+", metavar="IMG", help="image files")
    visualize.add_argument("--dataset", metavar="NAME", help="a registered dataset's images instead of --input")
    visualize.add_argument("--num-images", type=int, default=10, metavar="N", help="with --dataset: its first N images")
    visualize.add_argument("--output", required=True, metavar="DIR", help="folder for the PNGs")
    visualize.add_argument(
        "--confidence-threshold", type=float, default=0.5, metavar="T", help="draw detections scoring at least T"
    )
    _add_config_arguments(visualize)
    visualize.set_defaults(func=cmd_visualize)

    conv = commands.add_parser(
        "convert",
        help="convert Detectron/detectron2/torchvision/timm weights and report where each tensor went",
        description=cmd_convert.__doc__
        + " With --config-file the tensors are matched against that config's model: the report then"
        " lists missing model tensors and shape mismatches too, and the stem is adapted to INPUT.FORMAT.",
    )
    conv.add_argument("source", metavar="SRC", help="weights file, http(s) URL, or detectron:// / detectron2:// name")
    conv.add_argument("destination", metavar="DST", help="where to write the converted checkpoint (.pth)")
    conv.add_argument(
        "--format", default="auto",
        help="source format: auto (from the content), detectron, detectron2, torchvision, timm, gn_detection",
    )
    conv.add_argument("--strict", action="store_true", help="fail on any unused, missing or mismatched tensor")
    conv.add_argument("--max-items", type=int, default=20, metavar="N", help="list at most N entries per section")
    conv.add_argument("--config-file", metavar="CFG", help="the model the weights are for")
    # "*", not REMAINDER: after SRC DST, REMAINDER would swallow the options that follow.
    conv.add_argument("opts", nargs="*", metavar="KEY VALUE", help="config overrides")
    conv.set_defaults(func=cmd_convert)

    prep = commands.add_parser(
        "prepare",
        help="build and check COCO JSON from images + masks, or a CSV of boxes",
        description=cmd_prepare.__doc__
        + " Instance masks are named <image stem>__<class>__<k>.png; label maps <image stem>.png with"
        " pixel value v = class v (1-based); the CSV has the header image,x1,y1,x2,y2,label (pixels).",
    )
    prep.add_argument("--images", required=True, metavar="DIR", help="folder of images (PNG, JPEG, TIFF, DICOM)")
    prep.add_argument("--masks", metavar="DIR", help="folder of mask PNGs")
    prep.add_argument("--layout", choices=["instances", "label_map"], default="instances", help="how --masks is laid out")
    prep.add_argument("--csv", metavar="FILE", help="CSV of boxes instead of masks (masks become the boxes)")
    prep.add_argument("--classes", nargs="+", metavar="NAME", help="class names in label order")
    prep.add_argument("--output", required=True, metavar="JSON", help="where to write the COCO JSON")
    prep.set_defaults(func=cmd_prepare, config_file=None)

    stats = commands.add_parser(
        "pixel-stats", help="compute MODEL.PIXEL_MEAN / PIXEL_STD from DATASETS.TRAIN", description=cmd_pixel_stats.__doc__
    )
    stats.add_argument("--max-images", type=int, default=0, metavar="N", help="use the first N images (0: all)")
    _add_config_arguments(stats)
    stats.set_defaults(func=cmd_pixel_stats)

    compare = commands.add_parser(
        "compare-norms",
        help="train GN / BN* / BN twins at several batch sizes and tabulate AP and FROC",
        description=cmd_compare_norms.__doc__
        + " BASE_LR is scaled linearly with the batch size (it is set for the config's IMS_PER_BATCH);"
        " the iterations stay. Each run's files go to OUTPUT/<label>_b<batch>.",
    )
    compare.add_argument("--configs", nargs="+", required=True, metavar="LABEL=CFG", help="configs to compare")
    compare.add_argument("--batches", nargs="+", type=int, default=[1, 2], metavar="B", help="global batch sizes (1 2)")
    compare.add_argument("--output", required=True, metavar="DIR", help="folder for the runs, table and plot")
    compare.add_argument("opts", nargs="*", metavar="KEY VALUE", help="overrides applied to every config")
    compare.set_defaults(func=cmd_compare_norms)

    bench = commands.add_parser(
        "benchmark",
        help="seconds per training step and inference image, and peak memory, side by side with other "
        "configs, precisions or torchvision's / detectron2's model",
        description=cmd_benchmark.__doc__
        + " Inputs are fixed synthetic images with rectangle instances, fed at their size (the INPUT"
        " sizes are set to it); the variants run interleaved (A B A B ...) after a warm-up, so only"
        " their ratios are comparable across machines. A step's optimizer has LR 0, so the models and"
        " their RoI loads stay the same, and frozen BN is calibrated on the images first.",
    )
    bench.add_argument(
        "--vs", nargs="+", metavar="CFG2",
        help="configs to measure side by side with the first, or 'torchvision' / 'detectron2': their "
        "Mask R-CNN with the first config's topology, in fp32 (detectron2 must be installed)",
    )
    bench.add_argument("--size", type=int, nargs="+", default=[320], metavar="S",
                       help="input size: S for S x S, or H W (320)")
    bench.add_argument("--batch", type=int, default=2, metavar="B", help="images per step (2)")
    bench.add_argument("--iters", type=int, default=5, metavar="N", help="measured steps per variant (5)")
    bench.add_argument("--warmup", type=int, default=2, metavar="W", help="unmeasured steps first (2)")
    bench.add_argument(
        "--precision", nargs="+", choices=["fp32", "bf16", "fp16"], default=["fp32"], metavar="P",
        help="fp32, bf16 or fp16 (CUDA only): autocast the configs' forward passes; several are measured "
        "side by side",
    )
    bench.add_argument("--json", metavar="OUT", help="also write the figures, the machine and the GPU to this JSON file")
    _add_config_arguments(bench)
    bench.set_defaults(func=cmd_benchmark)

    bench_eval = commands.add_parser(
        "benchmark-eval",
        help="the evaluator's speed with faster-coco-eval vs pycocotools, and that their APs agree",
        description=cmd_benchmark_eval.__doc__ + " Exits 1 if any AP differs.",
    )
    bench_eval.add_argument("--images", type=int, default=500, metavar="N", help="images of detections (500)")
    bench_eval.add_argument("--categories", type=int, default=80, metavar="K",
                            help="categories, each object's drawn at random (80, as COCO)")
    bench_eval.add_argument("--repeats", type=int, default=3, metavar="R", help="timed runs per backend (3)")
    bench_eval.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (0)")
    bench_eval.add_argument("--json", metavar="OUT", help="also write the figures and every metric to this JSON file")
    bench_eval.set_defaults(func=cmd_benchmark_eval)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging()
    try:
        return args.func(args)
    except ConfigError as e:  # its message names the file or the override already
        return _fail(args, str(e))
    except (UnknownNameError, ValueError, TypeError, FileNotFoundError, FloatingPointError) as e:
        source = getattr(args, "config_file", None)
        return _fail(args, f"{source}: {e}" if source else str(e))


def _fail(args, message: str) -> int:
    print(f"gn-detect {args.command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
