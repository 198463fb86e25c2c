from .box_head import FastRCNNConvFCHead
from .build import BOX_HEAD_REGISTRY, MASK_HEAD_REGISTRY, build_box_head, build_mask_head
from .mask_head import MaskRCNNConvUpsampleHead
from .predictors import BoxPredictor, MaskPredictor
from .roi_heads import StandardROIHeads, build_roi_heads
from .rpn import RPN, RPNHead, build_anchor_generator, build_rpn

__all__ = [
    "BOX_HEAD_REGISTRY",
    "MASK_HEAD_REGISTRY",
    "BoxPredictor",
    "FastRCNNConvFCHead",
    "MaskPredictor",
    "MaskRCNNConvUpsampleHead",
    "RPN",
    "RPNHead",
    "StandardROIHeads",
    "build_anchor_generator",
    "build_box_head",
    "build_mask_head",
    "build_roi_heads",
    "build_rpn",
]
