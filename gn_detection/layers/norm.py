"""Normalization layers chosen by name: the factory every conv of the model goes through.

A norm is given as a ``NormSpec``: a registered name (``"GN"``, ``"LN"``, ``"IN"``, ``"FrozenBN"``,
``"BN"``, ``"BRN"``, ``"SyncBN"``, ...), ``""``/``None`` for none, or a callable that takes the
channel count. Every entry of ``NORM_REGISTRY`` is called as ``ctor(channels)``, channels first,
so GN is a drop-in for BN, and each takes (N, C, H, W) images and (N, C, T, H, W) clips alike.

The GN paper defines GN between two limits, both here as GN with a fixed group count: LN (one
group: statistics over C, H, W) and IN (one group per channel: over H, W).
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
    "LayerNorm",
    "InstanceNorm",
    "BatchNorm",
    "FrozenBatchNorm2d",
    "group_count",
    "group_norm_settings",
    "get_norm",
    "norm_from_cfg",
    "is_norm",
    "convert_frozen_batchnorm",
]

NormSpec = Union[str, Callable[[int], nn.Module], None]

NORM_REGISTRY = Registry("NORM")
NORM_REGISTRY.__doc__ = """
Norm layers by config name. An entry is called as ``entry(channels)`` and returns an
``nn.Module`` that maps (N, C, H, W), and (N, C, T, H, W), to the same shape. An entry may define a classmethod
``from_config(cfg) -> dict`` of keyword arguments; ``norm_from_cfg`` binds them.
Register a new one with ``@NORM_REGISTRY.register_as("MyNorm")``.
"""


def group_norm_settings(cfg) -> dict:
    """GN's keyword arguments from ``MODEL.GROUP_NORM``: a fixed group count (NUM_GROUPS) or, as
    Detectron's DIM_PER_GP, a fixed number of channels per group; the other key is -1.

    Raises:
        UserError: both keys or neither are set.
    """
    g = cfg.MODEL.GROUP_NORM
    if (g.NUM_GROUPS == -1) == (g.DIM_PER_GP == -1):
        raise UserError(
            f"MODEL.GROUP_NORM.NUM_GROUPS={g.NUM_GROUPS} and MODEL.GROUP_NORM.DIM_PER_GP={g.DIM_PER_GP}: a layer's "
            f"groups come from exactly one of them, the other set to -1 (NUM_GROUPS 32 and DIM_PER_GP -1 is the "
            f"paper's G=32; NUM_GROUPS -1 and DIM_PER_GP 16 gives each layer C/16 groups)"
        )
    if g.DIM_PER_GP != -1:
        return dict(num_groups=None, channels_per_group=g.DIM_PER_GP, eps=g.EPSILON)
    return dict(num_groups=g.NUM_GROUPS, eps=g.EPSILON)


@NORM_REGISTRY.register_as("GN")
class GroupNorm(nn.GroupNorm):
    """Group Normalization (Wu & He, 2018) with the channel count first.

    Channels come first so that ``GroupNorm(C)`` is built like ``BatchNorm2d(C)``; the paper's
    defaults are G=32 groups and eps=1e-5. The paper's Table 3 also fixes the channels per group
    instead (Detectron's ``DIM_PER_GP``), so that G = C / channels_per_group varies by layer.

    Args:
        num_channels: C of the (N, C, H, W) or (N, C, T, H, W) input.
        num_groups: G; must divide C. Ignored when ``channels_per_group`` is given.
        eps: added to the variance.
        affine: learn per-channel scale and shift.
        channels_per_group: C / G; must divide C.
    """

    def __init__(self, num_channels: int, num_groups: Optional[int] = 32, eps: float = 1e-5, affine: bool = True,
                 *, channels_per_group: Optional[int] = None):
        num_groups = group_count(type(self).__name__, num_channels, num_groups, channels_per_group)
        super().__init__(num_groups, num_channels, eps=eps, affine=affine)

    @classmethod
    def from_config(cls, cfg) -> dict:
        return group_norm_settings(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Statistics in fp32: a group's mean and variance sum thousands of values, which bf16's
        # 8-bit mantissa (or fp16's range) cannot hold. The CPU kernel takes bf16 input with fp32
        # parameters and accumulates in fp32 (tested); elsewhere the input is cast up, as CUDA
        # autocast would do itself. Casting on the CPU would cost more than the kernel.
        if x.dtype in (torch.float16, torch.bfloat16) and not (x.device.type == "cpu" and x.dtype == torch.bfloat16):
            return F.group_norm(x.float(), self.num_groups, self.weight, self.bias, self.eps).to(x.dtype)
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


@NORM_REGISTRY.register_as("LN")
class LayerNorm(GroupNorm):
    """The GN paper's Layer Normalization (Ba et al. 2016) for images: each sample normalized over
    all of (C, H, W), with a per-channel scale and shift; GN with one group. (detectron2's
    ``get_norm("LN")`` normalizes over C at each pixel instead, as ConvNeXt does.)"""

    def __init__(self, num_channels: int, eps: float = 1e-5, affine: bool = True):
        super().__init__(num_channels, num_groups=1, eps=eps, affine=affine)

    @classmethod
    def from_config(cls, cfg) -> dict:
        return dict(eps=cfg.MODEL.GROUP_NORM.EPSILON)


@NORM_REGISTRY.register_as("IN")
class InstanceNorm(GroupNorm):
    """Instance Normalization (Ulyanov et al. 2016) with a per-channel scale and shift: each sample
    and channel normalized over (H, W); GN with one group per channel."""

    def __init__(self, num_channels: int, eps: float = 1e-5, affine: bool = True):
        super().__init__(num_channels, num_groups=num_channels, eps=eps, affine=affine)

    @classmethod
    def from_config(cls, cfg) -> dict:
        return dict(eps=cfg.MODEL.GROUP_NORM.EPSILON)


class BatchNorm(nn.BatchNorm2d):
    """torch's BatchNorm2d that also takes (N, C, T, H, W) clips: the statistics are per channel
    over every other axis either way, and the parameters and buffers keep BatchNorm2d's names."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (4, 5):
            raise ValueError(f"BatchNorm: expected (N, C, H, W) or (N, C, T, H, W) input, got {input.dim()}-D")


class FrozenBatchNorm2d(ops.FrozenBatchNorm2d):
    """torchvision's frozen BN (fixed statistics and affine), computed as detectron2 computes it:
    where no gradient flows through it (the frozen stages of a backbone), PyTorch's fused
    inference kernel, which is also faster; elsewhere ``x * scale + shift``. The two round
    differently, so this keeps a frozen-BN step bit for bit equal to detectron2's. Clips
    (N, C, T, H, W) are computed the same way."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.requires_grad:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        if x.dim() == 4:
            return super().forward(x)
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        per_channel = (1, -1) + (1,) * (x.dim() - 2)
        return x * scale.view(per_channel) + shift.view(per_channel)


def group_count(layer: str, num_channels: int, num_groups: Optional[int], channels_per_group: Optional[int]) -> int:
    """G of a group-normalizing ``layer`` (its class name, for the message): ``num_groups``, or
    C / ``channels_per_group`` when that is given.

    Raises:
        UserError: the one given does not divide ``num_channels``.
    """
    if channels_per_group is not None:
        if channels_per_group <= 0 or num_channels % channels_per_group:
            raise UserError(
                f"{layer}: MODEL.GROUP_NORM.DIM_PER_GP={channels_per_group} does not divide the {num_channels} "
                f"channels of this layer; pick a divisor of every layer's channel count"
            )
        return num_channels // channels_per_group
    if num_groups is None or num_groups <= 0 or num_channels % num_groups:
        raise UserError(
            f"{layer}: MODEL.GROUP_NORM.NUM_GROUPS={num_groups} does not divide the {num_channels} channels of "
            f"this layer; pick a divisor of {num_channels} (e.g. {_largest_divisor_at_most(num_channels, 32)})"
        )
    return num_groups


def _largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


NORM_REGISTRY.register_as("FrozenBN")(FrozenBatchNorm2d)
NORM_REGISTRY.register_as("BN")(BatchNorm)
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
