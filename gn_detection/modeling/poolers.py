"""RoIAlign over FPN levels, each box read from the level that suits its size."""
import math
from typing import Dict, List, Sequence, Tuple

import torch
from torch import nn

from ..layers import ShapeSpec, roi_align
from ..utils.errors import UserError

__all__ = ["ROIPooler", "POOLER_TYPES", "assign_boxes_to_levels", "build_pooler"]

# POOLER_TYPE -> RoIAlign's `aligned`. V2 shifts box corners by half a pixel so that a box's
# continuous coordinates map onto pixel centres (detectron2's ROIAlignV2).
POOLER_TYPES = {"ROIAlign": False, "ROIAlignV2": True}


def assign_boxes_to_levels(
    boxes: torch.Tensor, min_level: int, max_level: int, canonical_box_size: int = 224, canonical_level: int = 4
) -> torch.Tensor:
    """FPN paper eq. 1: level = floor(k0 + log2(sqrt(area) / 224)), clamped.

    Args:
        boxes: (R, 4) XYXY in input pixels.
    Returns:
        (R,) int64 indices into the levels, 0 for ``min_level``.
    """
    box_sizes = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    # The epsilon keeps sizes that are exact powers of two on their own level despite rounding.
    levels = torch.floor(canonical_level + torch.log2(box_sizes / canonical_box_size + 1e-8))
    return (torch.clamp(levels, min=min_level, max=max_level) - min_level).to(torch.int64)


class ROIPooler(nn.Module):
    """Pools (R, C, output_size, output_size) features for a batch's boxes.

    Args:
        output_size: side of the pooled features.
        in_features: feature names to pool from, finest first.
        strides: the stride of each of them (powers of two, consecutive levels).
        sampling_ratio: samples per bin side; 0 picks ceil(bin size) adaptively.
        aligned: RoIAlign's half-pixel alignment (True for ROIAlignV2).
    """

    def __init__(
        self,
        output_size: int,
        *,
        in_features: Sequence[str],
        strides: Sequence[int],
        sampling_ratio: int = 0,
        aligned: bool = True,
    ):
        super().__init__()
        levels = [int(math.log2(s)) for s in strides]
        if levels != list(range(levels[0], levels[0] + len(levels))) or any(2**l != s for l, s in zip(levels, strides)):
            raise UserError(f"ROIPooler needs power-of-two strides of consecutive levels; got {list(strides)}")
        self.output_size = output_size
        self.in_features = list(in_features)
        self.scales = [1.0 / s for s in strides]
        self.min_level, self.max_level = levels[0], levels[-1]
        self.sampling_ratio = sampling_ratio
        self.aligned = aligned

    def forward(self, features: Dict[str, torch.Tensor], boxes: List[torch.Tensor]) -> torch.Tensor:
        """Pool ``boxes[i]`` (XYXY, input pixels) from image i's features."""
        x = [features[f] for f in self.in_features]
        rois = torch.cat(
            [torch.cat([torch.full_like(b[:, :1], i), b], dim=1) for i, b in enumerate(boxes)], dim=0
        )
        if len(x) == 1:
            return self._pool(x[0], rois, self.scales[0])
        levels = assign_boxes_to_levels(rois[:, 1:], self.min_level, self.max_level)
        out = x[0].new_zeros((rois.shape[0], x[0].shape[1], self.output_size, self.output_size))
        for level, (feature, scale) in enumerate(zip(x, self.scales)):
            index = torch.nonzero(levels == level, as_tuple=True)[0]
            out[index] = self._pool(feature, rois[index], scale).to(out.dtype)
        return out

    def _pool(self, feature: torch.Tensor, rois: torch.Tensor, scale: float) -> torch.Tensor:
        return roi_align(
            feature,
            rois,
            self.output_size,
            spatial_scale=scale,
            sampling_ratio=self.sampling_ratio,
            aligned=self.aligned,
        )


def build_pooler(cfg, head_key: str, input_shapes: Dict[str, ShapeSpec]) -> Tuple[ROIPooler, ShapeSpec]:
    """The pooler that ``MODEL.<head_key>`` describes over ``MODEL.ROI_HEADS.IN_FEATURES``.

    Returns:
        the pooler and the ShapeSpec of what it produces, (C, res, res).
    """
    head = cfg.MODEL[head_key]
    in_features = cfg.MODEL.ROI_HEADS.IN_FEATURES
    missing = [f for f in in_features if f not in input_shapes]
    if missing:
        raise UserError(
            f"MODEL.ROI_HEADS.IN_FEATURES {list(in_features)}: {missing} not produced by the backbone, "
            f"which gives {list(input_shapes)}"
        )
    channels = {input_shapes[f].channels for f in in_features}
    if len(channels) != 1:
        raise UserError(f"MODEL.ROI_HEADS.IN_FEATURES {list(in_features)} have different channel counts {channels}")
    if head.POOLER_TYPE not in POOLER_TYPES:
        raise UserError(f"MODEL.{head_key}.POOLER_TYPE={head.POOLER_TYPE!r}: expected one of {sorted(POOLER_TYPES)}")
    pooler = ROIPooler(
        head.POOLER_RESOLUTION,
        in_features=in_features,
        strides=[input_shapes[f].stride for f in in_features],
        sampling_ratio=head.POOLER_SAMPLING_RATIO,
        aligned=POOLER_TYPES[head.POOLER_TYPE],
    )
    shape = ShapeSpec(channels=channels.pop(), height=head.POOLER_RESOLUTION, width=head.POOLER_RESOLUTION)
    return pooler, shape
