from typing import Dict

from torchvision.models.detection.roi_heads import RoIHeads

from ...layers import ShapeSpec
from ..poolers import build_pooler
from .build import build_box_head, build_mask_head
from .predictors import BoxPredictor, MaskPredictor

__all__ = ["build_roi_heads"]


def build_roi_heads(cfg, input_shapes: Dict[str, ShapeSpec]) -> RoIHeads:
    """torchvision's RoIHeads (sampling, losses, post-processing) around the registered heads.

    The box branch always exists; the mask branch when ``MODEL.MASK_ON``.
    """
    h = cfg.MODEL.ROI_HEADS
    if len(h.IOU_THRESHOLDS) != 1:
        raise ValueError(
            f"MODEL.ROI_HEADS.IOU_THRESHOLDS={list(h.IOU_THRESHOLDS)}: expected one threshold "
            "(IoU at or above it is foreground, below it background)"
        )
    box_pooler, pooled = build_pooler(cfg, "ROI_BOX_HEAD", input_shapes)
    box_head = build_box_head(cfg, pooled)
    mask_parts = {}
    if cfg.MODEL.MASK_ON:
        mask_pooler, mask_pooled = build_pooler(cfg, "ROI_MASK_HEAD", input_shapes)
        mask_head = build_mask_head(cfg, mask_pooled)
        mask_parts = dict(
            mask_roi_pool=mask_pooler,
            mask_head=mask_head,
            mask_predictor=MaskPredictor(mask_head.output_shape(), h.NUM_CLASSES),
        )
    return RoIHeads(
        box_pooler,
        box_head,
        BoxPredictor(box_head.output_shape(), h.NUM_CLASSES),
        fg_iou_thresh=h.IOU_THRESHOLDS[0],
        bg_iou_thresh=h.IOU_THRESHOLDS[0],
        batch_size_per_image=h.BATCH_SIZE_PER_IMAGE,
        positive_fraction=h.POSITIVE_FRACTION,
        bbox_reg_weights=tuple(cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS),
        score_thresh=h.SCORE_THRESH_TEST,
        nms_thresh=h.NMS_THRESH_TEST,
        detections_per_img=cfg.TEST.DETECTIONS_PER_IMAGE,
        **mask_parts,
    )
