"""The GN paper's ImageNet experiments at small scale: a narrow ResNet classifier, trained with a
norm at a batch size, its validation error measured; and, for the norms that use batch
statistics, how far those statistics stray from the running ones the network is tested with.

The recipe follows the paper's Sec. 4.1 where a small net allows: SGD with momentum 0.9, weight
decay 1e-4 on every parameter, LR 0.1 x batch / 32 (linear scaling), divided by 10 at 30, 60 and
90 % of the run (the paper's epochs 30, 60, 90 of 100), and the last norm of each residual block
starting at zero scale. The paper keeps the epochs fixed as the batch changes; ``iterations``
fixes the steps instead.
"""
import functools
import inspect
import logging
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import NORM_REGISTRY, Conv2d, FrozenBatchNorm2d, WSConv2d
from ..modeling.backbone.resnet import BasicBlock, BasicStem, ResNet, make_stage
from ..utils.errors import UserError
from ..utils.registry import lookup

__all__ = ["Classifier", "Schedule", "build_classifier", "evaluate", "moment_gaps", "norm_has_groups", "train_classifier"]

logger = logging.getLogger(__name__)

BASE_LR, BASE_BATCH = 0.1, 32  # the paper's: 0.1 for 32 images, scaled linearly
LR_DROPS = (0.3, 0.6, 0.9)  # fractions of the run; the paper's epochs 30, 60 and 90 of 100
DEFAULT_GROUPS = 32  # the paper's G


def _split_norm(norm: str) -> Tuple[str, type]:
    """``"GN+WS"`` -> ("GN", WSConv2d); ``"BN"`` -> ("BN", Conv2d)."""
    base, ws, rest = norm.partition("+")
    if ws and rest != "WS":
        raise UserError(f"--norms {norm!r}: expected a registered name, or one followed by +WS")
    return base, (WSConv2d if ws else Conv2d)


def norm_has_groups(norm: str) -> bool:
    """Whether ``norm`` (a registered name, maybe with +WS) takes a group count, as GN does."""
    return "num_groups" in inspect.signature(lookup(NORM_REGISTRY, _split_norm(norm)[0], "--norms")).parameters


def norm_spec(norm: str, groups: Optional[int] = None, channels_per_group: Optional[int] = None):
    """The norm constructor and conv class for ``norm``, G or C/G bound where it has groups."""
    base, conv = _split_norm(norm)
    ctor = lookup(NORM_REGISTRY, base, "--norms")
    if norm_has_groups(norm):
        if channels_per_group is not None:
            ctor = functools.partial(ctor, num_groups=None, channels_per_group=channels_per_group)
        else:
            ctor = functools.partial(ctor, num_groups=groups or DEFAULT_GROUPS)
    return ctor, conv


class Classifier(nn.Module):
    """A ResNet (``backbone``) whose last stage is averaged over every position, then a linear
    layer. The pooling takes images and clips alike, so an inflated backbone fits (``inflate_resnet``)."""

    def __init__(self, backbone: ResNet, num_classes: int):
        super().__init__()
        self.backbone = backbone
        (self.last,) = backbone.output_shape()
        self.fc = nn.Linear(backbone.output_shape()[self.last].channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.backbone(x)[self.last].flatten(2).mean(2))


def build_classifier(norm: str, *, in_channels: int, num_classes: int, width: int = 64, groups: Optional[int] = None,
                     channels_per_group: Optional[int] = None) -> Classifier:
    """A stem (stride 4) and three stages of two basic blocks, widths ``width`` x 1, 2, 4 (64 keeps
    every layer divisible by the paper's G = 64), each block's last norm starting at zero scale."""
    spec, conv = norm_spec(norm, groups, channels_per_group)
    stages = [make_stage(BasicBlock, 2, in_channels=w_in, out_channels=w_out, stride=s, norm=spec, conv=conv)
              for w_in, w_out, s in ((width, width, 1), (width, width * 2, 2), (width * 2, width * 4, 2))]
    backbone = ResNet(BasicStem(in_channels, width, norm=spec, conv=conv), stages, out_features=["res4"])
    for block in (b for stage in stages for b in stage):
        last = block.conv2.norm
        if getattr(last, "weight", None) is not None and not isinstance(last, FrozenBatchNorm2d):
            nn.init.zeros_(last.weight)
    return Classifier(backbone, num_classes)


class Schedule:
    """How long a run trains: ``epochs`` passes over the data, or ``iterations`` steps, whatever
    the batch; exactly one is given."""

    def __init__(self, *, epochs: Optional[float] = None, iterations: Optional[int] = None):
        if (epochs is None) == (iterations is None):
            raise ValueError("Schedule: give exactly one of epochs and iterations")
        self.epochs, self.iterations = epochs, iterations

    def steps(self, num_images: int, batch: int) -> int:
        return self.iterations if self.iterations is not None else max(1, math.ceil(self.epochs * (num_images // batch)))


def train_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch: int, steps: int,
                     seed: int) -> nn.Module:
    """``steps`` SGD steps of ``batch`` samples each, drawn epoch by epoch without replacement
    (every batch full: BN needs it); the recipe of the module docstring."""
    if batch > len(images):
        raise ValueError(f"--batches {batch}: the training set has only {len(images)} samples")
    optimizer = torch.optim.SGD(model.parameters(), lr=BASE_LR * batch / BASE_BATCH, momentum=0.9, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [round(f * steps) for f in LR_DROPS], gamma=0.1)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    order, position = torch.randperm(len(images), generator=generator), 0
    for _ in range(steps):
        if position + batch > len(images):
            order, position = torch.randperm(len(images), generator=generator), 0
        index = order[position : position + batch]
        position += batch
        loss = F.cross_entropy(model(images[index]), labels[index])
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the loss is {loss.item()}")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return model


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch: Optional[int] = None) -> float:
    """Error (%) with the test-time statistics (eval mode); with ``batch``, with each batch's own
    statistics instead (train mode, in batches of that size, the running moments left as they
    are), which is what BN normalized with while it trained."""
    if batch is None:
        model.eval()
        predicted = torch.cat([model(chunk).argmax(1) for chunk in images.split(256)])
    else:
        saved = _running_moments(model)
        model.train()
        usable = len(images) // batch * batch
        predicted = torch.cat([model(chunk).argmax(1) for chunk in images[:usable].split(batch)])
        labels = labels[:usable]
        _restore(model, saved)
        model.eval()
    return 100 * int((predicted != labels).sum()) / len(labels)


@torch.no_grad()
def moment_gaps(model: nn.Module, images: torch.Tensor, batch: int) -> Dict[str, float]:
    """How far batches of ``batch`` samples stray from the running moments, in Batch Renorm's
    terms: per channel d = (mu_B - mu) / sigma and r = sigma_B / sigma, at each BN-like layer's
    input. Returns the mean over layers, channels and batches of |d| and |log r| (0 and 0 when the
    batch statistics equal the running ones)."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    gaps = {"d": [], "log_r": []}

    def record(layer, inputs, output):
        x = inputs[0].float()
        axes = [0] + list(range(2, x.dim()))
        sigma = (layer.running_var + layer.eps).sqrt()
        gaps["d"].append(((x.mean(axes) - layer.running_mean) / sigma).abs().mean())
        gaps["log_r"].append(((x.var(axes, unbiased=False) + layer.eps).sqrt() / sigma).log().abs().mean())

    handles = [layer.register_forward_hook(record) for layer in layers]
    model.eval()  # the inputs each layer sees at test time; the statistics are measured on them
    try:
        for chunk in images[: len(images) // batch * batch].split(batch):
            model(chunk)
    finally:
        for h in handles:
            h.remove()
    return {k: float(torch.stack(v).mean()) if v else 0.0 for k, v in gaps.items()}


def _running_moments(model: nn.Module):
    return [(m, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
            for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]


def _restore(model: nn.Module, saved) -> None:
    for m, mean, var, count in saved:
        m.running_mean.copy_(mean), m.running_var.copy_(var), m.num_batches_tracked.copy_(count)
