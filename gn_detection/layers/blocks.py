import torch.nn as nn

from .norm import convert_frozen_batchnorm

__all__ = ["CNNBlockBase"]


class CNNBlockBase(nn.Module):
    """A block that states its channels and stride and can be frozen as a unit.

    Attributes:
        in_channels, out_channels: channels of its input and output.
        stride: input pixels per output pixel.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

    def freeze(self) -> "CNNBlockBase":
        """Stop training this block: no parameter gets a gradient, and BatchNorm becomes
        FrozenBatchNorm so its statistics stop updating. GN stays GN, since it has no statistics
        to freeze."""
        for p in self.parameters():
            p.requires_grad_(False)
        convert_frozen_batchnorm(self)
        return self
