from typing import Callable, Optional

import torch
import torch.nn as nn

from .norm import NormSpec, get_norm

__all__ = ["Conv2d"]


class Conv2d(nn.Conv2d):
    """A conv followed by its norm and activation, with the norm kept as the submodule ``norm``.

    Keeping the norm inside the conv gives detectron2's parameter names (``conv1.weight``,
    ``conv1.norm.weight``), which the checkpoint converters rely on. The bias is dropped when a
    norm follows (the norm's shift replaces it) and padding keeps the spatial size per stride.

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
        self.norm = norm_layer
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x
