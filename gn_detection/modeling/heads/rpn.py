"""Region proposals: a shared conv head over every pyramid level, on torchvision's RPN."""
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.rpn import RegionProposalNetwork

from ...layers import ShapeSpec
from ..anchor_generator import GridAnchorGenerator

__all__ = ["RPNHead", "build_anchor_generator", "build_rpn"]


class RPNHead(nn.Module):
    """3x3 ``conv`` + ReLU, then per anchor an ``objectness_logits`` and four ``anchor_deltas``.

    Args:
        in_channels: channels of every level (they share the head).
        num_anchors: anchors per location.
    """

    def __init__(self, in_channels: int, num_anchors: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, kernel_size=3, padding=1)
        self.objectness_logits = nn.Conv2d(in_channels, num_anchors, kernel_size=1)
        self.anchor_deltas = nn.Conv2d(in_channels, num_anchors * 4, kernel_size=1)
        for layer in (self.conv, self.objectness_logits, self.anchor_deltas):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features: List[torch.Tensor]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """Per level: (N, A, H, W) logits and (N, 4A, H, W) deltas."""
        logits, deltas = [], []
        for x in features:
            x = F.relu(self.conv(x))
            logits.append(self.objectness_logits(x))
            deltas.append(self.anchor_deltas(x))
        return logits, deltas


def build_anchor_generator(cfg, input_shapes: Dict[str, ShapeSpec]) -> GridAnchorGenerator:
    """Anchors from ``MODEL.ANCHOR_GENERATOR``: SIZES per level, ASPECT_RATIOS shared or per level,
    at the strides of the backbone's levels."""
    num_levels = len(input_shapes)
    a = cfg.MODEL.ANCHOR_GENERATOR
    sizes = [tuple(s) for s in a.SIZES]
    ratios = [tuple(r) for r in a.ASPECT_RATIOS]
    if len(ratios) == 1:
        ratios = ratios * len(sizes)
    if len(sizes) != num_levels or len(ratios) != num_levels:
        raise ValueError(
            f"MODEL.ANCHOR_GENERATOR: {len(sizes)} SIZES and {len(ratios)} ASPECT_RATIOS entries for "
            f"{num_levels} feature levels; give one per level (ASPECT_RATIOS may have a single entry)"
        )
    anchors_per_level = {len(s) * len(r) for s, r in zip(sizes, ratios)}
    if len(anchors_per_level) != 1:
        raise ValueError(
            "MODEL.ANCHOR_GENERATOR: every level needs the same number of anchors (sizes x ratios), "
            "since one RPN head serves them all"
        )
    return GridAnchorGenerator(
        sizes, ratios, strides=[s.stride for s in input_shapes.values()], round_anchors=a.ROUND
    )


def build_rpn(cfg, input_shapes: Dict[str, ShapeSpec]) -> RegionProposalNetwork:
    """The RPN over all of the backbone's outputs, configured by ``MODEL.RPN``."""
    channels = {s.channels for s in input_shapes.values()}
    if len(channels) != 1:
        raise ValueError(f"the RPN head is shared across levels, but the backbone's levels have channels {channels}")
    anchor_generator = build_anchor_generator(cfg, input_shapes)
    r = cfg.MODEL.RPN
    bg_iou, fg_iou = r.IOU_THRESHOLDS
    return RegionProposalNetwork(
        anchor_generator,
        RPNHead(channels.pop(), anchor_generator.num_anchors_per_location()[0]),
        fg_iou_thresh=fg_iou,
        bg_iou_thresh=bg_iou,
        batch_size_per_image=r.BATCH_SIZE_PER_IMAGE,
        positive_fraction=r.POSITIVE_FRACTION,
        pre_nms_top_n=dict(training=r.PRE_NMS_TOPK_TRAIN, testing=r.PRE_NMS_TOPK_TEST),
        post_nms_top_n=dict(training=r.POST_NMS_TOPK_TRAIN, testing=r.POST_NMS_TOPK_TEST),
        nms_thresh=r.NMS_THRESH,
    )
