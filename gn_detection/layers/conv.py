"""Convolutions with their norm inside, chosen by name (``CONV_REGISTRY``): the plain one, and
Weight Standardization (Qiao et al. 2019), which pairs with any norm. Each has a 3-D counterpart
for clips, built from a 2-D one by ``inflate_conv`` (I3D, Carreira & Zisserman 2017)."""
import numbers
from typing import Callable, Optional, Tuple, Type, Union

import torch
import torch.nn as nn

from ..utils.errors import UserError
from ..utils.registry import Registry, lookup
from .norm import NormSpec, get_norm

__all__ = [
    "CONV_REGISTRY",
    "Conv2d",
    "Conv3d",
    "WSConv2d",
    "WSConv3d",
    "conv_from_cfg",
    "inflate_conv",
    "standardize_weight",
]

CONV_REGISTRY = Registry("CONV")
CONV_REGISTRY.__doc__ = """Conv classes by config name (``MODEL.RESNETS.CONV``, ``MODEL.FPN.CONV``,
``MODEL.ROI_BOX_HEAD.CONV``, ``MODEL.ROI_MASK_HEAD.CONV``): "" is the plain Conv2d, "WS" WSConv2d.
An entry takes Conv2d's arguments."""

Activation = Optional[Callable[[torch.Tensor], torch.Tensor]]


class _ConvNormActivation:
    """What Conv2d and Conv3d add to torch's conv: the norm and activation after it. Placed
    before ``nn.ConvNd`` in the bases, so ``super().forward`` is torch's convolution."""

    def _set_norm_and_activation(self, norm: Optional[nn.Module], activation: Activation) -> None:
        # A norm with its own nonlinearity (EvoNorm-S0's swish, FRN's TLU) replaces the activation
        # instead of stacking on it; with no activation to replace, it only normalizes.
        if getattr(norm, "carries_activation", False):
            norm.apply_activation = activation is not None
            activation = None
        self.norm = norm
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


class Conv2d(_ConvNormActivation, nn.Conv2d):
    """A conv followed by its norm and activation, with the norm kept as the submodule ``norm``.

    Keeping the norm inside the conv gives detectron2's parameter names (``conv1.weight``,
    ``conv1.norm.weight``), which the checkpoint converters rely on. The bias is dropped when a
    norm follows (the norm's shift replaces it) and padding keeps the spatial size per stride.

    A norm that carries its own nonlinearity (``carries_activation``: EvoNorm-S0's swish, FRN's
    TLU) replaces ``activation`` instead of stacking on it; where this conv has no activation,
    the norm's is switched off too, so it normalizes only.

    Args:
        in_channels, out_channels, kernel_size, stride, groups: as for ``nn.Conv2d``.
        norm: a NormSpec resolved with ``get_norm(norm, out_channels)``.
        activation: applied last, e.g. ``torch.relu``; None for none.
        bias: defaults to True exactly when there is no norm.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        groups: int = 1,
        norm: NormSpec = None,
        activation: Activation = None,
        bias: Optional[bool] = None,
    ):
        norm_layer = get_norm(norm, out_channels)
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            groups=groups,
            bias=norm_layer is None if bias is None else bias,
        )
        self._set_norm_and_activation(norm_layer, activation)


Size3 = Union[int, Tuple[int, int, int]]


class Conv3d(_ConvNormActivation, nn.Conv3d):
    """Conv2d for clips (N, C, T, H, W): the same norm, activation, bias rule and parameter names.
    Padding is kernel // 2 along each of (T, H, W), which keeps the clip length for an odd
    temporal kernel and a temporal stride of 1.

    Args:
        kernel_size, stride: one int for all of (T, H, W), or one per axis.
        in_channels, out_channels, groups, norm, activation, bias: as for Conv2d.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size3,
        *,
        stride: Size3 = 1,
        groups: int = 1,
        norm: NormSpec = None,
        activation: Activation = None,
        bias: Optional[bool] = None,
    ):
        kernel = (kernel_size,) * 3 if isinstance(kernel_size, int) else tuple(kernel_size)
        norm_layer = get_norm(norm, out_channels)
        super().__init__(
            in_channels,
            out_channels,
            kernel,
            stride=stride,
            padding=tuple(k // 2 for k in kernel),
            groups=groups,
            bias=norm_layer is None if bias is None else bias,
        )
        self._set_norm_and_activation(norm_layer, activation)


def standardize_weight(weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each output filter minus its mean, divided by its standard deviation (unbiased) plus
    ``eps``, as the WS authors' code computes it; in fp32.

    Args:
        weight: (C_out, C_in / groups, *kernel), a 2-D (kh, kw) or 3-D (kt, kh, kw) kernel; the
            statistics of a filter are over all of its axes but the first.
    """
    w = weight.float()
    per_filter = (-1,) + (1,) * (w.dim() - 1)
    w = w - w.mean(dim=tuple(range(1, w.dim())), keepdim=True)
    std = w.flatten(1).std(dim=1).view(per_filter) + eps
    return (w / std).to(weight.dtype)


class _WeightStandardized:
    """Standardizes the filters at every forward pass (``standardize_weight``); the stored
    weights stay as trained, so checkpoints keep the plain conv's names and shapes. Placed before
    Conv2d/Conv3d in the bases, so ``super()._conv_forward`` is torch's."""

    eps = 1e-5

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        return super()._conv_forward(input, standardize_weight(weight, self.eps), bias)


@CONV_REGISTRY.register_as("WS")
class WSConv2d(_WeightStandardized, Conv2d):
    """Conv2d whose filters are standardized at every forward pass (``standardize_weight``);
    the stored weights stay as trained, so checkpoints keep Conv2d's names and shapes."""


class WSConv3d(_WeightStandardized, Conv3d):
    """Conv3d whose filters are standardized at every forward pass, each over its
    (C_in, T, H, W) weights, as WSConv2d's are over (C_in, H, W)."""


CONV_REGISTRY.register_as("")(Conv2d)


def conv_from_cfg(cfg, key: str) -> Type[Conv2d]:
    """The conv class named at config ``key``, e.g. ``"MODEL.RESNETS.CONV"``."""
    name = cfg
    for part in key.split("."):
        name = name[part]
    return lookup(CONV_REGISTRY, name, key)


def inflate_conv(conv: Conv2d, time: int) -> Conv3d:
    """The I3D inflation (Carreira & Zisserman 2017) of a 2-D conv: its (kh, kw) kernel becomes
    (time, kh, kw), the 2-D weights repeated ``time`` times and divided by ``time``, so that away
    from the first and last frames a clip whose frames are all equal gets the 2-D response at
    every frame. The temporal stride is 1 and the temporal padding ``time // 2`` (zeros), so the
    clip keeps its length; the spatial stride, padding, dilation and groups, the bias, and
    whether the weights train are the 2-D conv's.

    The norm module and activation are carried over as they are: the same module, shared with
    ``conv`` (copy the network first, as ``inflate_resnet`` does, to keep the 2-D one apart).

    With WSConv2d the standardization (over C_in, T, H, W) undoes the division by ``time``: on a
    constant clip the 3-D response is sqrt(time * (n * time - 1) / (n - 1)) times the 2-D one
    (n = C_in / groups * kh * kw), about ``time`` times, the same factor for every filter, which
    the norm that follows a WS conv (GN, BN) removes up to its epsilon.

    Args:
        conv: a Conv2d or WSConv2d (exactly: a subclass may change the forward, which the 3-D
            conv would then drop), weight (C_out, C_in / groups, kh, kw).
        time: the temporal kernel size; odd and >= 1.

    Returns:
        a Conv3d (WSConv3d for a WSConv2d), weight (C_out, C_in / groups, time, kh, kw), on the
        2-D weight's device and dtype.

    Raises:
        TypeError: ``conv`` is not exactly a Conv2d or WSConv2d.
        UserError: ``time`` is not an odd integer >= 1.
    """
    if type(conv) not in (Conv2d, WSConv2d):
        kind = type(conv)
        raise TypeError(
            "inflate_conv: expected gn_detection's Conv2d or WSConv2d (exactly), "
            f"got {kind.__module__}.{kind.__qualname__}"
        )
    if isinstance(time, bool) or not isinstance(time, numbers.Integral) or time < 1 or time % 2 == 0:
        raise UserError(
            f"inflate_conv: time={time!r}; expected an odd temporal kernel size >= 1 (1, 3, 5, ...): "
            f"padding time // 2 keeps the clip length only for an odd kernel"
        )
    time = int(time)
    inflated = (WSConv3d if isinstance(conv, WSConv2d) else Conv3d)(
        conv.in_channels,
        conv.out_channels,
        (time, *conv.kernel_size),
        stride=(1, *conv.stride),
        groups=conv.groups,
        bias=conv.bias is not None,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    # Conv2d derives its padding from the kernel; copying keeps any padding or dilation set later.
    inflated.padding, inflated.dilation = (time // 2, *conv.padding), (1, *conv.dilation)
    if isinstance(conv, WSConv2d):
        inflated.eps = conv.eps
    with torch.no_grad():
        inflated.weight.copy_(conv.weight.unsqueeze(2).repeat(1, 1, time, 1, 1) / time)
        if conv.bias is not None:
            inflated.bias.copy_(conv.bias)
    for new, old in ((inflated.weight, conv.weight), (inflated.bias, conv.bias)):
        if old is not None:
            new.requires_grad_(old.requires_grad)
    inflated.norm, inflated.activation, inflated.training = conv.norm, conv.activation, conv.training
    return inflated
