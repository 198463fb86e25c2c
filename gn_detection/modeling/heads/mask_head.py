from typing import Sequence, Type

import torch
import torch.nn.functional as F
from fvcore.nn.weight_init import c2_msra_fill
from torch import nn

from ...layers import Conv2d, NormSpec, ShapeSpec, conv_from_cfg, norm_from_cfg
from .build import MASK_HEAD_REGISTRY

__all__ = ["MaskRCNNConvUpsampleHead"]


@MASK_HEAD_REGISTRY.register()
class MaskRCNNConvUpsampleHead(nn.Module):
    """``mask_fcn1..N`` (3x3 conv, norm, ReLU), then ``deconv`` (2x2 stride-2, ReLU).

    Doubles the RoI resolution (14x14 -> 28x28 in Mask R-CNN). The deconv has no norm, as in
    Detectron and detectron2.

    Args:
        input_shape: pooled RoI features (C, h, w).
        conv_dims: output channels of each conv (MODEL.ROI_MASK_HEAD: NUM_CONV x CONV_DIM);
            the deconv keeps the last of them.
        norm: norm after each conv (ROI_MASK_HEAD.NORM).
        conv: the conv class (ROI_MASK_HEAD.CONV: plain or Weight Standardization).
    """

    def __init__(
        self, input_shape: ShapeSpec, *, conv_dims: Sequence[int], norm: NormSpec = "", conv: Type[Conv2d] = Conv2d
    ):
        super().__init__()
        channels = input_shape.channels
        self.convs = []
        for k, dim in enumerate(conv_dims, start=1):
            layer = conv(channels, dim, 3, norm=norm, activation=F.relu)
            c2_msra_fill(layer)
            self.add_module(f"mask_fcn{k}", layer)
            self.convs.append(layer)
            channels = dim
        self.deconv = nn.ConvTranspose2d(channels, channels, kernel_size=2, stride=2)
        c2_msra_fill(self.deconv)
        self._output_shape = ShapeSpec(channels=channels, height=input_shape.height * 2, width=input_shape.width * 2)

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec) -> dict:
        h = cfg.MODEL.ROI_MASK_HEAD
        return dict(
            input_shape=input_shape,
            conv_dims=[h.CONV_DIM] * h.NUM_CONV,
            norm=norm_from_cfg(cfg, "MODEL.ROI_MASK_HEAD.NORM"),
            conv=conv_from_cfg(cfg, "MODEL.ROI_MASK_HEAD.CONV"),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(R, C, h, w) pooled features -> (R, C', 2h, 2w)."""
        for conv in self.convs:
            x = conv(x)
        return F.relu(self.deconv(x))

    def output_shape(self) -> ShapeSpec:
        return self._output_shape
