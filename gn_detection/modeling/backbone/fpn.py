"""Feature Pyramid Network (Lin et al. 2017) whose lateral and output convs take a norm."""
import math
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Type

import torch
import torch.nn.functional as F
from fvcore.nn.weight_init import c2_xavier_fill
from torch import nn

from ...layers import Conv2d, NormSpec, ShapeSpec, conv_from_cfg, norm_from_cfg
from ...utils.errors import UserError
from .backbone import Backbone
from .build import BACKBONE_REGISTRY
from .resnet import build_resnet_backbone

__all__ = ["FPN", "LastLevelMaxPool", "build_resnet_fpn_backbone"]


class LastLevelMaxPool(nn.Module):
    """P6 as a stride-2 subsampling of P5, for the RPN's largest anchors (as in Mask R-CNN)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(x, kernel_size=1, stride=2, padding=0)


class FPN(Backbone):
    """Top-down pathway with lateral connections over a bottom-up backbone.

    Outputs ``p<k>`` for each input feature of stride 2^k, plus one more level from
    ``top_block``. Submodules are named ``fpn_lateral<k>`` and ``fpn_output<k>``, as in
    detectron2.

    Args:
        bottom_up: the backbone whose features feed the pyramid.
        in_features: its feature names, finest first (e.g. res2..res5).
        out_channels: channels of every pyramid level.
        norm: norm after each lateral and output conv ("" for none; "GN" in the GN paper).
        top_block: makes the extra coarsest level from the last one; None for none.
    """

    def __init__(
        self,
        bottom_up: Backbone,
        in_features: Sequence[str],
        out_channels: int,
        *,
        norm: NormSpec = "",
        top_block: Optional[nn.Module] = None,
        conv: Type[Conv2d] = Conv2d,
    ):
        super().__init__()
        shapes = bottom_up.output_shape()
        missing = [f for f in in_features if f not in shapes]
        if missing:
            raise UserError(
                f"MODEL.FPN.IN_FEATURES {list(in_features)}: {missing} not produced by the bottom-up "
                f"backbone, which gives {list(shapes)}"
            )
        self.bottom_up = bottom_up
        self.in_features = list(in_features)
        self.top_block = top_block
        stages = [int(math.log2(shapes[f].stride)) for f in in_features]
        self.lateral_convs, self.output_convs = [], []
        for feature, stage in zip(in_features, stages):
            lateral = conv(shapes[feature].channels, out_channels, 1, norm=norm)
            output = conv(out_channels, out_channels, 3, norm=norm)
            c2_xavier_fill(lateral)
            c2_xavier_fill(output)
            self.add_module(f"fpn_lateral{stage}", lateral)
            self.add_module(f"fpn_output{stage}", output)
            self.lateral_convs.append(lateral)
            self.output_convs.append(output)
        if top_block is not None:
            stages.append(stages[-1] + 1)
        self._shapes = OrderedDict((f"p{s}", ShapeSpec(channels=out_channels, stride=2**s)) for s in stages)
        self._size_divisibility = shapes[in_features[-1]].stride

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        bottom_up = self.bottom_up(x)
        features = [bottom_up[f] for f in self.in_features]
        merged = self.lateral_convs[-1](features[-1])
        outputs = [self.output_convs[-1](merged)]
        for feature, lateral, output in zip(
            features[-2::-1], self.lateral_convs[-2::-1], self.output_convs[-2::-1]
        ):
            top_down = F.interpolate(merged, size=feature.shape[-2:], mode="nearest")
            merged = lateral(feature) + top_down
            outputs.insert(0, output(merged))
        if self.top_block is not None:
            outputs.append(self.top_block(outputs[-1]))
        return OrderedDict(zip(self._shapes, outputs))

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return dict(self._shapes)


@BACKBONE_REGISTRY.register()
def build_resnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """ResNet (``MODEL.RESNETS``) under an FPN (``MODEL.FPN``) with P6 by max pooling: P2-P6."""
    return FPN(
        build_resnet_backbone(cfg, input_shape),
        cfg.MODEL.FPN.IN_FEATURES,
        cfg.MODEL.FPN.OUT_CHANNELS,
        norm=norm_from_cfg(cfg, "MODEL.FPN.NORM"),
        top_block=LastLevelMaxPool(),
        conv=conv_from_cfg(cfg, "MODEL.FPN.CONV"),
    )
