"""Seconds per training step and per inference image, two configs measured side by side."""
import contextlib
import logging
import statistics
import time
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from ..modeling import build_model
from .solver import build_optimizer

__all__ = ["PRECISIONS", "synthetic_batch", "benchmark", "calibrate_frozen_batchnorm"]

# --precision -> autocast dtype (None: plain fp32)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

logger = logging.getLogger(__name__)


def synthetic_batch(num_images: int, size: int, num_classes: int, *, instances: int = 4, seed: int = 0):
    """``num_images`` images of ``size`` x ``size`` in 0-255 with ``instances`` rectangles each,
    and their targets (boxes, labels, masks): fixed for a seed."""
    g = torch.Generator().manual_seed(seed)
    images, targets = [], []
    for _ in range(num_images):
        image = torch.rand(3, size, size, generator=g) * 255
        boxes, masks = [], torch.zeros(instances, size, size, dtype=torch.uint8)
        for i in range(instances):
            w, h = (int(v) for v in torch.randint(size // 8, size // 2, (2,), generator=g))
            x0, y0 = (int(v) for v in torch.randint(0, size - max(w, h), (2,), generator=g))
            boxes.append([x0, y0, x0 + w, y0 + h])
            masks[i, y0 : y0 + h, x0 : x0 + w] = 1
        images.append(image)
        labels = torch.randint(1, num_classes + 1, (instances,), generator=g)
        targets.append(dict(boxes=torch.tensor(boxes, dtype=torch.float32), labels=labels, masks=masks))
    return images, targets


def calibrate_frozen_batchnorm(model: nn.Module, images: List[torch.Tensor]) -> int:
    """Set each FrozenBatchNorm2d's statistics to those of its input on ``images``, layer by
    layer in one forward pass; return how many were set.

    A freshly built frozen-BN network has identity norms, so its activations grow with depth, its
    RPN proposes degenerate boxes and NMS leaves a handful: the RoI heads would then run on far
    fewer RoIs than with pretrained weights. Calibrated, it normalizes like a trained network and
    the heads get their full share of proposals, as a GN network does from the start.
    """

    def set_statistics(module, inputs):
        x = inputs[0].detach()
        module.running_mean.copy_(x.mean(dim=(0, 2, 3)))
        module.running_var.copy_(x.var(dim=(0, 2, 3)))

    frozen = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    handles = [m.register_forward_pre_hook(set_statistics) for m in frozen]
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(images)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return len(frozen)


class _Variant:
    def __init__(self, name: str, cfg, images, targets, amp_dtype: Optional[torch.dtype] = None):
        self.name = name
        self.amp_dtype = amp_dtype
        torch.manual_seed(0)
        self.model = build_model(cfg)
        self.optimizer = build_optimizer(cfg, self.model)
        # The step does all its work but changes nothing: the timed model stays the one built,
        # so its proposals, and so the RoI heads' load, do not drift with training.
        for group in self.optimizer.param_groups:
            group["lr"] = 0.0
        device = torch.device(cfg.MODEL.DEVICE)
        self.images = [i.to(device) for i in images]
        self.targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        if calibrate_frozen_batchnorm(self.model, self.images):
            logger.info("%s: frozen BN statistics set from the benchmark images", name)
        self.device = device
        self.train_times: List[float] = []
        self.infer_times: List[float] = []

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def train_step(self) -> float:
        self.model.train()
        self._sync()
        start = time.perf_counter()
        with self._autocast():
            losses = self.model(self.images, self.targets)
        self.optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        self.optimizer.step()
        self._sync()
        return time.perf_counter() - start

    def inference(self) -> float:
        self.model.eval()
        self._sync()
        start = time.perf_counter()
        with torch.no_grad(), self._autocast():
            self.model(self.images)
        self._sync()
        return (time.perf_counter() - start) / len(self.images)


def benchmark(
    cfgs: Dict[str, object],
    *,
    size: int,
    batch: int,
    iters: int,
    warmup: int = 2,
    precisions: Sequence[str] = ("fp32",),
) -> Dict[str, Dict]:
    """Median seconds per training step and per inference image of each config at each precision.

    The variants run interleaved (A B A B ...) in this process on the same fixed inputs, so
    drifts in the machine's speed hit them alike; only ratios between them are meaningful. With
    several precisions a variant is named ``"<config> [<precision>]"``.
    """
    unknown = [p for p in precisions if p not in PRECISIONS]
    if unknown or not precisions:
        raise ValueError(f"--precision {list(precisions)}: expected some of {sorted(PRECISIONS)}")
    devices = {torch.device(cfg.MODEL.DEVICE).type for cfg in cfgs.values()}
    if "fp16" in precisions and devices != {"cuda"}:
        raise ValueError("--precision fp16 needs MODEL.DEVICE cuda; use bf16 on the CPU")
    num_classes = {cfg.MODEL.ROI_HEADS.NUM_CLASSES for cfg in cfgs.values()}.pop()
    images, targets = synthetic_batch(batch, size, num_classes)
    variants = [
        _Variant(name if len(precisions) == 1 else f"{name} [{p}]", cfg, images, targets, PRECISIONS[p])
        for name, cfg in cfgs.items()
        for p in precisions
    ]
    for i in range(warmup + iters):
        for v in variants:
            train, infer = v.train_step(), v.inference()
            if i >= warmup:
                v.train_times.append(train)
                v.infer_times.append(infer)
                logger.info("%s: step %d  train %.3f s  inference %.3f s/image", v.name, i - warmup + 1, train, infer)
    return {
        v.name: dict(
            train_step_s=statistics.median(v.train_times),
            inference_s_per_image=statistics.median(v.infer_times),
            parameters_m=sum(p.numel() for p in v.model.parameters()) / 1e6,
        )
        for v in variants
    }
