"""Time training steps and inference of a config, side by side with other configs, precisions or
reference models, and the training step's working memory. Inputs are fixed synthetic images with
rectangle instances, fed at their size (the INPUT sizes are set to it); the variants run
interleaved (A B A B ...) after a warm-up, so only their ratios are comparable across machines. A
step's optimizer has LR 0, so the models and their RoI loads stay the same, and frozen BN is
calibrated on the images first."""
import os

import torch

from ..benchmark.models import benchmark, describe_machine, format_report, ratios_to_first
from ..benchmark.references import REFERENCES
from ..utils.errors import UserError
from ..utils.file_io import atomic_write_json
from .common import add_config_arguments, at_least, input_size_opts, setup_cfg

HELP = (
    "seconds per training step and inference image, and peak memory, side by side with other "
    "configs, precisions or torchvision's / detectron2's model"
)


def add_arguments(parser) -> None:
    parser.add_argument(
        "--vs", nargs="+", metavar="CFG2",
        help="configs to measure side by side with the first, or 'torchvision' / 'detectron2': their "
        "Mask R-CNN with the first config's topology, in fp32 (detectron2 must be installed)",
    )
    parser.add_argument(
        "--size", type=at_least(1), nargs="+", default=[320], metavar="S", help="input size: S for S x S, or H W (320)"
    )
    parser.add_argument("--batch", type=at_least(1), default=2, metavar="B", help="images per step (2)")
    parser.add_argument("--iters", type=at_least(1), default=5, metavar="N", help="measured steps per variant (5)")
    parser.add_argument("--warmup", type=at_least(0), default=2, metavar="W", help="unmeasured steps first (2)")
    parser.add_argument(
        "--precision", nargs="+", choices=["fp32", "bf16", "fp16"], default=["fp32"], metavar="P",
        help="fp32, bf16 or fp16 (CUDA only): autocast the configs' forward passes; several are measured "
        "side by side",
    )
    parser.add_argument(
        "--json", metavar="OUT", help="also write the figures, the machine and the GPU to this JSON file"
    )
    add_config_arguments(parser)


def run(args) -> int:
    if len(args.size) > 2:
        raise UserError(f"--size {' '.join(map(str, args.size))}: give S, or H W")
    size = tuple(args.size) if len(args.size) == 2 else args.size[0]
    opts = list(args.opts) + input_size_opts(size)
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
