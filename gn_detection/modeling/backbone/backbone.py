from abc import ABCMeta, abstractmethod
from typing import Dict

import torch
import torch.nn as nn

from ...layers import ShapeSpec

__all__ = ["Backbone"]


class Backbone(nn.Module, metaclass=ABCMeta):
    """Maps images (N, C, H, W) to named feature maps, described by ``output_shape()``."""

    @abstractmethod
    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        ...

    @abstractmethod
    def output_shape(self) -> Dict[str, ShapeSpec]:
        """Channels and stride of each output feature, by name."""

    @property
    def size_divisibility(self) -> int:
        """Input height and width must be multiples of this; 0 means any size works."""
        return 0
