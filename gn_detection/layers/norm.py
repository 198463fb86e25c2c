"""Normalization layers chosen by name: the factory every conv of the model goes through.

A norm is given as a ``NormSpec``: a registered name (``"GN"``, ``"FrozenBN"``, ``"BN"``,
``"SyncBN"``), ``""``/``None`` for none, or a callable that takes the channel count. Every entry
of ``NORM_REGISTRY`` is called as ``ctor(channels)``, channels first, so GN is a drop-in for BN.
"""
import functools
from typing import Callable, Optional, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision import ops

from ..utils.errors import UserError
from ..utils.registry import Registry, lookup

__all__ = [
    "NORM_REGISTRY",
    "NormSpec",
    "GroupNorm",
    "FrozenBatchNorm2d",
    "get_norm",
    "norm_from_cfg",
    "is_norm",
    "convert_frozen_batchnorm",
]

NormSpec = Union[str, Callable[[int], nn.Module], None]

NORM_REGISTRY = Registry("NORM")
NORM_REGISTRY.__doc__ = """
Norm layers by config name. An entry is called as ``entry(channels)`` and returns an
``nn.Module`` that maps (N, C, H, W) to the same shape. An entry may define a classmethod
``from_config(cfg) -> dict`` of keyword arguments; ``norm_from_cfg`` binds them.
Register a new one with ``@NORM_REGISTRY.register_as("MyNorm")``.
"""


@NORM_REGISTRY.register_as("GN")
class GroupNorm(nn.GroupNorm):
    """Group Normalization (Wu & He, 2018) with the channel count first.

    Channels come first so that ``GroupNorm(C)`` is built like ``BatchNorm2d(C)``; the paper's
    defaults are G=32 groups and eps=1e-5.

    Args:
        num_channels: C of the (N, C, H, W) input.
        num_groups: G; must divide C.
        eps: added to the variance.
        affine: learn per-channel scale and shift.
    """

    def __init__(self, num_channels: int, num_groups: int = 32, eps: float = 1e-5, affine: bool = True):
        if num_groups <= 0 or num_channels % num_groups:
            raise UserError(
                f"GroupNorm: MODEL.GROUP_NORM.NUM_GROUPS={num_groups} does not divide the "
                f"{num_channels} channels of this layer; pick a divisor of {num_channels} "
                f"(e.g. {_largest_divisor_at_most(num_channels, 32)})"
            )
        super().__init__(num_groups, num_channels, eps=eps, affine=affine)

    @classmethod
    def from_config(cls, cfg) -> dict:
        return dict(num_groups=cfg.MODEL.GROUP_NORM.NUM_GROUPS, eps=cfg.MODEL.GROUP_NORM.EPSILON)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Statistics in fp32: a group's mean and variance sum thousands of values, which bf16's
        # 8-bit mantissa (or fp16's range) cannot hold. The CPU kernel takes bf16 input with fp32
        # parameters and accumulates in fp32 (tested); elsewhere the input is cast up, as CUDA
        # autocast would do itself. Casting on the CPU would cost more than the kernel.
        if x.dtype in (torch.float16, torch.bfloat16) and not (x.device.type == "cpu" and x.dtype == torch.bfloat16):
            return F.group_norm(x.float(), self.num_groups, self.weight, self.bias, self.eps).to(x.dtype)
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


class FrozenBatchNorm2d(ops.FrozenBatchNorm2d):
    """torchvision's frozen BN (fixed statistics and affine), computed as detectron2 computes it:
    where no gradient flows through it (the frozen stages of a backbone), PyTorch's fused
    inference kernel, which is also faster; elsewhere ``x * scale + shift``. The two round
    differently, so this keeps a frozen-BN step bit for bit equal to detectron2's."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            return super().forward(x)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)


def _largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


NORM_REGISTRY.register_as("FrozenBN")(FrozenBatchNorm2d)
NORM_REGISTRY.register_as("BN")(nn.BatchNorm2d)
NORM_REGISTRY.register_as("SyncBN")(nn.SyncBatchNorm)


def get_norm(norm: NormSpec, channels: int) -> Optional[nn.Module]:
    """Build the norm layer for ``channels`` channels, or None when ``norm`` is ``""``/None.

    Raises:
        UnknownNameError: ``norm`` is a name nobody registered (the message lists the names).
        TypeError: ``norm`` is neither a name, a callable nor None.
    """
    if norm is None or norm == "":
        return None
    if isinstance(norm, str):
        norm = lookup(NORM_REGISTRY, norm)
    if not callable(norm):
        raise TypeError(
            f"norm must be a registered name, a callable taking the channel count, or None; "
            f"got {type(norm).__name__}"
        )
    return norm(channels)


def norm_from_cfg(cfg, key: str) -> NormSpec:
    """Resolve the norm named at config ``key`` (e.g. ``"MODEL.FPN.NORM"``) into a NormSpec.

    Entries with ``from_config`` get their settings bound here (GN's group count and epsilon from
    ``MODEL.GROUP_NORM``), so no layer reads a global.
    """
    name = functools.reduce(getattr, key.split("."), cfg)
    if not name:
        return None
    ctor = lookup(NORM_REGISTRY, name, key)
    from_config = getattr(ctor, "from_config", None)
    return functools.partial(ctor, **from_config(cfg)) if from_config else ctor


_TORCH_NORMS = (
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.GroupNorm,
    nn.LayerNorm,
    FrozenBatchNorm2d,
)


def is_norm(module: nn.Module) -> bool:
    """True for torch's norm layers and for any class registered in NORM_REGISTRY."""
    registered = tuple(
        entry.func if isinstance(entry, functools.partial) else entry for _, entry in NORM_REGISTRY
    )
    return isinstance(module, _TORCH_NORMS + tuple(c for c in registered if isinstance(c, type)))


def convert_frozen_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d/SyncBatchNorm in ``module`` with a FrozenBatchNorm2d holding its
    statistics and affine parameters. Other norms, GN among them, are left as they are.

    Returns:
        the converted module (a new one when ``module`` itself is a BatchNorm).
    """
    if isinstance(module, (nn.BatchNorm2d, nn.SyncBatchNorm)):
        frozen = FrozenBatchNorm2d(module.num_features, eps=module.eps)
        if module.affine:
            frozen.weight.copy_(module.weight.detach())
            frozen.bias.copy_(module.bias.detach())
        if module.track_running_stats:
            frozen.running_mean.copy_(module.running_mean)
            frozen.running_var.copy_(module.running_var)
        return frozen
    for name, child in module.named_children():
        converted = convert_frozen_batchnorm(child)
        if converted is not child:
            setattr(module, name, converted)
    return module
