"""``gn-detect``: the command line. Each subcommand is a function here; tools/ only calls them."""
import argparse
import logging
import sys
import time
from collections import Counter
from typing import List, Optional

import torch

from .config import ConfigError, get_cfg
from .layers import is_norm
from .modeling import build_model
from .utils.registry import UnknownNameError

__all__ = ["main", "setup_cfg"]

logger = logging.getLogger("gn_detection")


def setup_cfg(config_file: str, opts: List[str]):
    """The defaults, then ``config_file`` (with its ``_BASE_`` chain), then KEY VALUE overrides."""
    cfg = get_cfg()
    if config_file:
        cfg.merge_from_file(config_file)
    cfg.merge_from_list(opts)
    cfg.freeze()
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


def cmd_build(args) -> int:
    """Build the model, summarize it, and run one training and one inference forward pass."""
    opts = list(args.opts)
    if args.image_size:
        s = args.image_size
        opts += ["INPUT.MIN_SIZE_TRAIN", f"({s},)", "INPUT.MAX_SIZE_TRAIN", str(s)]
        opts += ["INPUT.MIN_SIZE_TEST", str(s), "INPUT.MAX_SIZE_TEST", str(s)]
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gn-detect", description="Mask R-CNN with Group Normalization.")
    commands = parser.add_subparsers(dest="command", required=True)

    build = commands.add_parser(
        "build",
        help="build a config's model and run one forward pass on a synthetic image",
        description=cmd_build.__doc__,
    )
    build.add_argument("--config-file", required=True, metavar="CFG", help="YAML config (may use _BASE_)")
    build.add_argument(
        "--image-size", type=int, default=0, metavar="S",
        help="run on an SxS image, with the INPUT sizes set to S (default: INPUT.MIN_SIZE_TEST, unchanged)",
    )
    build.add_argument("opts", nargs=argparse.REMAINDER, metavar="KEY VALUE", help="config overrides")
    build.set_defaults(func=cmd_build)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s", datefmt="%H:%M:%S")
    try:
        return args.func(args)
    except ConfigError as e:  # its message names the file or the override already
        return _fail(args, str(e))
    except (UnknownNameError, ValueError, TypeError) as e:
        return _fail(args, f"{args.config_file}: {e}")


def _fail(args, message: str) -> int:
    print(f"gn-detect {args.command}: error: {message}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
