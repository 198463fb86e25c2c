from typing import Sequence, Type

import torch
import torch.nn.functional as F
from fvcore.nn.weight_init import c2_msra_fill, c2_xavier_fill
from torch import nn

from ...layers import Conv2d, NormSpec, ShapeSpec, conv_from_cfg, norm_from_cfg
from .build import BOX_HEAD_REGISTRY

__all__ = ["FastRCNNConvFCHead"]


@BOX_HEAD_REGISTRY.register()
class FastRCNNConvFCHead(nn.Module):
    """``conv1..convN`` (3x3 conv, norm, ReLU), then ``fc1..fcM`` (fc, ReLU).

    The GN paper's head is 4conv1fc with GN in every conv; the BN* baseline is 2fc with no norm.

    Args:
        input_shape: pooled RoI features (C, h, w).
        conv_dims: output channels of each conv (MODEL.ROI_BOX_HEAD: NUM_CONV x CONV_DIM).
        fc_dims: output size of each fc (NUM_FC x FC_DIM).
        norm: norm after each conv (ROI_BOX_HEAD.NORM).
        conv: the conv class (ROI_BOX_HEAD.CONV: plain or Weight Standardization).
    """

    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        conv_dims: Sequence[int],
        fc_dims: Sequence[int],
        norm: NormSpec = "",
        conv: Type[Conv2d] = Conv2d,
    ):
        super().__init__()
        channels = input_shape.channels
        self.convs = []
        for k, dim in enumerate(conv_dims, start=1):
            layer = conv(channels, dim, 3, norm=norm, activation=F.relu)
            c2_msra_fill(layer)
            self.add_module(f"conv{k}", layer)
            self.convs.append(layer)
            channels = dim
        size = channels * input_shape.height * input_shape.width
        self.fcs = []
        for k, dim in enumerate(fc_dims, start=1):
            fc = nn.Linear(size, dim)
            c2_xavier_fill(fc)
            self.add_module(f"fc{k}", fc)
            self.fcs.append(fc)
            size = dim
        self._output_size = size

    @classmethod
    def from_config(cls, cfg, input_shape: ShapeSpec) -> dict:
        h = cfg.MODEL.ROI_BOX_HEAD
        return dict(
            input_shape=input_shape,
            conv_dims=[h.CONV_DIM] * h.NUM_CONV,
            fc_dims=[h.FC_DIM] * h.NUM_FC,
            norm=norm_from_cfg(cfg, "MODEL.ROI_BOX_HEAD.NORM"),
            conv=conv_from_cfg(cfg, "MODEL.ROI_BOX_HEAD.CONV"),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(R, C, h, w) pooled features -> (R, D)."""
        for conv in self.convs:
            x = conv(x)
        x = torch.flatten(x, start_dim=1)
        for fc in self.fcs:
            x = F.relu(fc(x))
        return x

    def output_shape(self) -> ShapeSpec:
        return ShapeSpec(channels=self._output_size)
