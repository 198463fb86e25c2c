"""The last layers of the RoI heads: per-class scores, boxes and mask logits.

Class order is torchvision's: index 0 is background, foreground classes are 1..num_classes.
"""
from typing import Tuple

import torch
from torch import nn

from ...layers import ShapeSpec

__all__ = ["BoxPredictor", "MaskPredictor"]


class BoxPredictor(nn.Module):
    """``cls_score``: (R, D) -> (R, K+1) logits; ``bbox_pred``: (R, D) -> (R, 4(K+1)) deltas, one
    set per class, background's included and never trained; or (R, 4) when class-agnostic.

    Args:
        input_shape: the box head's output (channels D).
        num_classes: K foreground classes.
        cls_agnostic_bbox_reg: one set of deltas for all classes (ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG).
    """

    def __init__(self, input_shape: ShapeSpec, num_classes: int, *, cls_agnostic_bbox_reg: bool = False):
        super().__init__()
        self.cls_score = nn.Linear(input_shape.channels, num_classes + 1)
        self.bbox_pred = nn.Linear(input_shape.channels, 4 * (1 if cls_agnostic_bbox_reg else num_classes + 1))
        # Small initial outputs keep the first losses near chance level (as in Detectron).
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.normal_(self.bbox_pred.weight, std=0.001)
        nn.init.zeros_(self.cls_score.bias)
        nn.init.zeros_(self.bbox_pred.bias)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        x = torch.flatten(x, start_dim=1)
        return self.cls_score(x), self.bbox_pred(x)


class MaskPredictor(nn.Module):
    """``mask_fcn_logits``: a 1x1 conv from mask features to one logit map per class (K+1, the
    background's never trained), or a single map when class-agnostic (ROI_MASK_HEAD.CLS_AGNOSTIC_MASK)."""

    def __init__(self, input_shape: ShapeSpec, num_classes: int, *, cls_agnostic_mask: bool = False):
        super().__init__()
        maps = 1 if cls_agnostic_mask else num_classes + 1
        self.mask_fcn_logits = nn.Conv2d(input_shape.channels, maps, kernel_size=1)
        nn.init.normal_(self.mask_fcn_logits.weight, std=0.001)
        nn.init.zeros_(self.mask_fcn_logits.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mask_fcn_logits(x)
