import torch
from torch import nn
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN

from ..backbone import Backbone, build_backbone
from ..heads import RPN, StandardROIHeads, build_roi_heads, build_rpn
from .build import META_ARCH_REGISTRY
from .transform import build_transform

__all__ = ["MaskRCNN"]


@META_ARCH_REGISTRY.register()
class MaskRCNN(GeneralizedRCNN):
    """Mask R-CNN (He et al. 2017); Faster R-CNN when the RoI heads have no mask branch
    (MODEL.MASK_ON: False). torchvision's GeneralizedRCNN runs the parts in order: transform,
    backbone, RPN, RoI heads, and maps detections back to the input images.

    ``model(images, targets)`` in training mode returns a dict of scalar losses, detectron2's:
    ``loss_rpn_cls``, ``loss_rpn_loc`` (heads/rpn.py), ``loss_cls``, ``loss_box_reg`` and
    ``loss_mask`` (heads/roi_heads.py). In eval mode ``model(images)`` returns one dict per image with, in the input
    image's pixels: ``boxes`` (R, 4) XYXY, ``labels`` (R,) in 1..NUM_CLASSES, ``scores`` (R,)
    and ``masks`` (R, 1, H, W) probabilities.

    Args:
        backbone: images -> named feature maps.
        rpn: proposals from the features.
        roi_heads: detections and masks from the features and proposals.
        transform: normalization, resizing and batching of the input images.
        channels_last: run the backbone in NHWC memory order.
        compile_backbone: torch.compile the backbone in place (parameter names do not change).

    Images are (C, H, W) float tensors in 0-255, channels in INPUT.FORMAT order; targets hold
    ``boxes`` (G, 4) XYXY float, ``labels`` (G,) int64 and either ``masks`` (G, H, W) uint8 or
    ``polygons``, per instance a list of float64 arrays ``[x0, y0, x1, y1, ...]`` in the
    image's pixels (modeling/mask_targets.py).
    """

    def __init__(
        self,
        *,
        backbone: Backbone,
        rpn: RPN,
        roi_heads: StandardROIHeads,
        transform: nn.Module,
        channels_last: bool = False,
        compile_backbone: bool = False,
    ):
        super().__init__(backbone, rpn, roi_heads, transform)
        if channels_last:
            backbone.to(memory_format=torch.channels_last)
            backbone.register_forward_pre_hook(_to_channels_last)
        if compile_backbone:
            backbone.compile()

    @classmethod
    def from_config(cls, cfg) -> dict:
        backbone = build_backbone(cfg)
        shapes = backbone.output_shape()
        return dict(
            backbone=backbone,
            rpn=build_rpn(cfg, shapes),
            roi_heads=build_roi_heads(cfg, shapes),
            transform=build_transform(cfg, backbone.size_divisibility),
            channels_last=cfg.MODEL.CHANNELS_LAST,
            compile_backbone=cfg.MODEL.COMPILE_BACKBONE,
        )


def _to_channels_last(module: nn.Module, inputs):
    return tuple(x.contiguous(memory_format=torch.channels_last) for x in inputs)
