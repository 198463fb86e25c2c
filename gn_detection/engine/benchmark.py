"""Seconds per training step and per inference image, two configs measured side by side."""
import logging
import statistics
import time
from typing import Dict, List, Optional, Sequence

import torch

from ..modeling import build_model
from .solver import build_optimizer

__all__ = ["synthetic_batch", "benchmark"]

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


class _Variant:
    def __init__(self, name: str, cfg, images, targets):
        self.name = name
        torch.manual_seed(0)
        self.model = build_model(cfg)
        self.optimizer = build_optimizer(cfg, self.model)
        device = torch.device(cfg.MODEL.DEVICE)
        self.images = [i.to(device) for i in images]
        self.targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        self.device = device
        self.train_times: List[float] = []
        self.infer_times: List[float] = []

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def train_step(self) -> float:
        self.model.train()
        self._sync()
        start = time.perf_counter()
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
        with torch.no_grad():
            self.model(self.images)
        self._sync()
        return (time.perf_counter() - start) / len(self.images)


def benchmark(cfgs: Dict[str, object], *, size: int, batch: int, iters: int, warmup: int = 2) -> Dict[str, Dict]:
    """Median seconds per training step and per inference image of each config.

    The variants run interleaved (A B A B ...) in this process on the same fixed inputs, so
    drifts in the machine's speed hit them alike; only ratios between them are meaningful.
    """
    num_classes = {cfg.MODEL.ROI_HEADS.NUM_CLASSES for cfg in cfgs.values()}.pop()
    images, targets = synthetic_batch(batch, size, num_classes)
    variants = [_Variant(name, cfg, images, targets) for name, cfg in cfgs.items()]
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
