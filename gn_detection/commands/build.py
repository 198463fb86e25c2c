"""Build the model, summarize it, and run one training and one inference forward pass. With
--save FILE, its initial weights (drawn with SEED) are written to FILE first, e.g. to export or
benchmark a config without a trained checkpoint."""
import logging
import time
from collections import Counter

import torch

from ..layers import is_norm
from ..modeling import build_model
from ..utils.file_io import atomic_write
from .common import add_config_arguments, at_least, input_size_opts, setup_cfg

HELP = "build a config's model and run one forward pass on a synthetic image"

logger = logging.getLogger("gn_detection")


def add_arguments(parser) -> None:
    parser.add_argument(
        "--image-size", type=at_least(1), metavar="S",
        help="run on an SxS image, with the INPUT sizes set to S (default: INPUT.MIN_SIZE_TEST, unchanged)",
    )
    parser.add_argument("--save", metavar="FILE", help="write the model's initial weights to FILE (a checkpoint)")
    add_config_arguments(parser)


def run(args) -> int:
    opts = list(args.opts) + (input_size_opts(args.image_size) if args.image_size else [])
    cfg = setup_cfg(args.config_file, opts)
    if cfg.SEED >= 0:
        torch.manual_seed(cfg.SEED)
    model = build_model(cfg)
    if args.save:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        atomic_write(args.save, lambda f: torch.save({"model": state}, f))
        logger.info("wrote the initial weights to %s", args.save)
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
        size, size, time.perf_counter() - start, ", ".join(f"{k}={v.item():.4f}" for k, v in losses.items()),
    )
    model.eval()
    start = time.perf_counter()
    with torch.no_grad():
        (detections,) = model([image])
    logger.info(
        "inference: %.2f s; %d detections with fields %s",
        time.perf_counter() - start, len(detections["boxes"]), {k: tuple(v.shape) for k, v in detections.items()},
    )
    return 0


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
