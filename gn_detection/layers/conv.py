"""Convolutions with their norm inside, chosen by name (``CONV_REGISTRY``): the plain one, and
Weight Standardization (Qiao et al. 2019), which pairs with any norm."""
from typing import Callable, Optional, Type

import torch
import torch.nn as nn

from ..utils.registry import Registry, lookup
from .norm import NormSpec, get_norm

__all__ = ["CONV_REGISTRY", "Conv2d", "WSConv2d", "conv_from_cfg", "standardize_weight"]

CONV_REGISTRY = Registry("CONV")
CONV_REGISTRY.__doc__ = """Conv classes by config name (``MODEL.RESNETS.CONV``, ``MODEL.FPN.CONV``,
``MODEL.ROI_BOX_HEAD.CONV``, ``MODEL.ROI_MASK_HEAD.CONV``): "" is the plain Conv2d, "WS" WSConv2d.
An entry takes Conv2d's arguments."""


class Conv2d(nn.Conv2d):
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
        activation: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
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
        if getattr(norm_layer, "carries_activation", False):
            norm_layer.apply_activation = activation is not None
            activation = None
        self.norm = norm_layer
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


def standardize_weight(weight: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Each output filter minus its mean, divided by its standard deviation (unbiased) plus
    ``eps``, as the WS authors' code computes it; in fp32."""
    w = weight.float()
    w = w - w.mean(dim=(1, 2, 3), keepdim=True)
    std = w.flatten(1).std(dim=1).view(-1, 1, 1, 1) + eps
    return (w / std).to(weight.dtype)


@CONV_REGISTRY.register_as("WS")
class WSConv2d(Conv2d):
    """Conv2d whose filters are standardized at every forward pass (``standardize_weight``);
    the stored weights stay as trained, so checkpoints keep Conv2d's names and shapes."""

    eps = 1e-5

    def _conv_forward(self, input: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        return super()._conv_forward(input, standardize_weight(weight, self.eps), bias)


CONV_REGISTRY.register_as("")(Conv2d)


def conv_from_cfg(cfg, key: str) -> Type[Conv2d]:
    """The conv class named at config ``key``, e.g. ``"MODEL.RESNETS.CONV"``."""
    name = cfg
    for part in key.split("."):
        name = name[part]
    return lookup(CONV_REGISTRY, name, key)
