"""The second stage: per-RoI classes, boxes and masks, trained as detectron2 trains them.

Training appends each image's ground-truth boxes to its proposals (``PROPOSAL_APPEND_GT``),
labels every RoI by its best IoU with the ground truth, and draws ``BATCH_SIZE_PER_IMAGE`` of
them, at most ``POSITIVE_FRACTION`` foreground. The losses:

- ``loss_cls``: cross-entropy over the drawn RoIs, averaged;
- ``loss_box_reg``: smooth L1 (``ROI_BOX_HEAD.SMOOTH_L1_BETA``; 0 is L1) on the foreground
  RoIs' deltas for their class, summed and divided by the number of drawn RoIs, so that each
  foreground RoI weighs the same whatever the batch's mix;
- ``loss_mask``: per-pixel logistic loss of the foreground RoIs' masks for their class against
  binary targets (``modeling/mask_targets.py``), averaged.

Classes follow torchvision: 0 is background, 1..K the foreground classes.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from fvcore.nn import smooth_l1_loss
from torch import nn
from torchvision.ops import box_iou, clip_boxes_to_image

from ...layers import ShapeSpec
from ...layers.nms import batched_nms
from ..box_regression import decode_boxes, encode_boxes
from ..mask_targets import mask_targets
from ..poolers import ROIPooler, build_pooler
from ..sampling import Matcher, subsample_labels
from .build import build_box_head, build_mask_head
from .predictors import BoxPredictor, MaskPredictor

__all__ = ["RoISample", "StandardROIHeads", "build_roi_heads", "detect_in_image", "fast_rcnn_losses"]


class RoISample(NamedTuple):
    """One image's drawn RoIs: ``boxes`` (S, 4), ``classes`` (S,) with 0 for background, and
    ``matched`` (S,), the index of each one's ground-truth box (meaningful for foreground)."""

    boxes: torch.Tensor
    classes: torch.Tensor
    matched: torch.Tensor


def fast_rcnn_losses(
    class_logits: torch.Tensor,
    box_deltas: torch.Tensor,
    samples: Sequence[RoISample],
    gt_boxes: Sequence[torch.Tensor],
    *,
    box_reg_weights: Sequence[float],
    smooth_l1_beta: float,
) -> Dict[str, torch.Tensor]:
    """``loss_cls`` and ``loss_box_reg`` of the box predictor's outputs for ``samples``.

    Args:
        class_logits: (S, K+1); box_deltas: (S, 4(K+1)) or (S, 4) class-agnostic.
        gt_boxes: per image, its (G, 4) ground-truth boxes, which ``samples[i].matched`` indexes.
    """
    classes = torch.cat([s.classes for s in samples])
    if len(classes) == 0:  # nothing drawn: zero losses that still reach the predictor
        zero = class_logits.sum() * 0 + box_deltas.sum() * 0
        return {"loss_cls": zero, "loss_box_reg": zero}
    foreground = torch.nonzero(classes > 0, as_tuple=True)[0]
    boxes = torch.cat([s.boxes for s in samples])[foreground]
    targets = torch.cat([g[s.matched[s.classes > 0]] for s, g in zip(samples, gt_boxes)])
    if box_deltas.shape[1] == 4:
        deltas = box_deltas[foreground]
    else:
        deltas = box_deltas.view(len(classes), -1, 4)[foreground, classes[foreground]]
    box_loss = smooth_l1_loss(
        deltas.float(), encode_boxes(targets, boxes, box_reg_weights), smooth_l1_beta, reduction="sum"
    )
    return {"loss_cls": F.cross_entropy(class_logits.float(), classes), "loss_box_reg": box_loss / len(classes)}


def detect_in_image(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    image_size: Tuple[int, int],
    *,
    score_thresh: float,
    nms_thresh: float,
    detections_per_image: int,
) -> Dict[str, torch.Tensor]:
    """One image's detections: every (RoI, foreground class) pair scoring above ``score_thresh``,
    its box clipped to the image, NMS within each class, the ``detections_per_image`` best.

    Args:
        boxes: (R, 4K) per-class boxes, or (R, 4) class-agnostic; scores: (R, K+1) probabilities.
    Returns:
        ``boxes`` (D, 4), ``scores`` (D,) and ``labels`` (D,) in 1..K, by decreasing score.
    """
    valid = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores).all(dim=1)
    boxes, scores = boxes[valid], scores[valid, 1:]
    per_roi = boxes.shape[1] // 4
    boxes = clip_boxes_to_image(boxes.reshape(-1, 4), image_size).view(-1, per_roi, 4)
    candidates = scores > score_thresh
    rows, classes = torch.nonzero(candidates, as_tuple=True)
    boxes = boxes[rows, 0] if per_roi == 1 else boxes[candidates]
    scores = scores[candidates]
    keep = batched_nms(boxes, scores, classes, nms_thresh)[:detections_per_image]
    return {"boxes": boxes[keep], "scores": scores[keep], "labels": classes[keep] + 1}


class StandardROIHeads(nn.Module):
    """Box head and predictor, and optionally mask head and predictor, over pooled RoIs.

    Args:
        box_pooler, box_head, box_predictor: RoI features -> class logits and box deltas.
        proposal_matcher: labels RoIs by IoU (MODEL.ROI_HEADS.IOU_THRESHOLDS / IOU_LABELS).
        batch_size_per_image, positive_fraction: RoIs drawn per image, and the largest
            foreground share of them.
        proposal_append_gt: add the ground-truth boxes to the proposals before drawing.
        box_reg_weights: weights of the box deltas (ROI_BOX_HEAD.BBOX_REG_WEIGHTS).
        smooth_l1_beta: beta of the box loss; 0 makes it L1.
        bbox_reg_loss_weight: scales ``loss_box_reg``.
        score_thresh, nms_thresh, detections_per_image: inference's filters.
        mask_pooler, mask_head, mask_predictor: the mask branch, or None for Faster R-CNN.
    """

    def __init__(
        self,
        *,
        box_pooler: ROIPooler,
        box_head: nn.Module,
        box_predictor: BoxPredictor,
        proposal_matcher: Matcher,
        batch_size_per_image: int,
        positive_fraction: float,
        proposal_append_gt: bool = True,
        box_reg_weights: Sequence[float] = (10.0, 10.0, 5.0, 5.0),
        smooth_l1_beta: float = 0.0,
        bbox_reg_loss_weight: float = 1.0,
        score_thresh: float = 0.05,
        nms_thresh: float = 0.5,
        detections_per_image: int = 100,
        mask_pooler: Optional[ROIPooler] = None,
        mask_head: Optional[nn.Module] = None,
        mask_predictor: Optional[MaskPredictor] = None,
    ):
        super().__init__()
        self.box_pooler = box_pooler
        self.box_head = box_head
        self.box_predictor = box_predictor
        self.proposal_matcher = proposal_matcher
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.proposal_append_gt = proposal_append_gt
        self.box_reg_weights = tuple(box_reg_weights)
        self.smooth_l1_beta = smooth_l1_beta
        self.bbox_reg_loss_weight = bbox_reg_loss_weight
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_image = detections_per_image
        self.mask_pooler = mask_pooler
        self.mask_head = mask_head
        self.mask_predictor = mask_predictor

    def forward(
        self,
        features: Dict[str, torch.Tensor],
        proposals: List[torch.Tensor],
        image_shapes: List[Tuple[int, int]],
        targets: Optional[List[Dict[str, torch.Tensor]]] = None,
    ) -> Tuple[List[Dict[str, torch.Tensor]], Dict[str, torch.Tensor]]:
        """In training, no detections and the losses; in eval, per image ``boxes``, ``scores``,
        ``labels`` and, with a mask branch, ``masks`` (D, 1, M, M) probabilities."""
        if not self.training:
            return self.detect(features, proposals, image_shapes), {}
        samples = self.label_and_sample_proposals(proposals, targets)
        boxes = [s.boxes for s in samples]
        class_logits, box_deltas = self.box_predictor(self.box_head(self.box_pooler(features, boxes)))
        losses = fast_rcnn_losses(
            class_logits,
            box_deltas,
            samples,
            [t["boxes"] for t in targets],
            box_reg_weights=self.box_reg_weights,
            smooth_l1_beta=self.smooth_l1_beta,
        )
        losses["loss_box_reg"] = losses["loss_box_reg"] * self.bbox_reg_loss_weight
        if self.mask_head is not None:
            losses["loss_mask"] = self.mask_loss(features, samples, targets)
        return [], losses

    @torch.no_grad()
    def label_and_sample_proposals(
        self, proposals: List[torch.Tensor], targets: List[Dict[str, torch.Tensor]]
    ) -> List[RoISample]:
        samples = []
        for boxes, target in zip(proposals, targets):
            gt_boxes, gt_classes = target["boxes"], target["labels"]
            if self.proposal_append_gt:
                # Early on the proposals are poor: the ground truth guarantees some foreground.
                boxes = torch.cat([boxes, gt_boxes.to(boxes.dtype)])
            matched, match_labels = self.proposal_matcher(box_iou(gt_boxes, boxes))
            classes = gt_classes[matched] if len(gt_classes) else torch.zeros_like(matched)
            classes[match_labels == 0] = 0
            classes[match_labels == -1] = -1
            foreground, background = subsample_labels(classes, self.batch_size_per_image, self.positive_fraction, 0)
            drawn = torch.cat([foreground, background])
            samples.append(RoISample(boxes[drawn], classes[drawn], matched[drawn]))
        return samples

    def mask_loss(
        self,
        features: Dict[str, torch.Tensor],
        samples: List[RoISample],
        targets: List[Dict[str, torch.Tensor]],
    ) -> torch.Tensor:
        """``loss_mask`` over the foreground RoIs (zero, still reaching the branch, if none)."""
        foreground = [s.classes > 0 for s in samples]
        boxes = [s.boxes[f] for s, f in zip(samples, foreground)]
        logits = self.mask_predictor(self.mask_head(self.mask_pooler(features, boxes)))
        if len(logits) == 0:
            return logits.sum() * 0
        size = logits.shape[-1]
        gt = torch.cat([
            mask_targets(t, b, s.matched[f], size) for t, b, s, f in zip(targets, boxes, samples, foreground)
        ])
        classes = torch.cat([s.classes[f] for s, f in zip(samples, foreground)])
        return F.binary_cross_entropy_with_logits(_class_maps(logits, classes).float(), gt.float())

    def detect(
        self, features: Dict[str, torch.Tensor], proposals: List[torch.Tensor], image_shapes: List[Tuple[int, int]]
    ) -> List[Dict[str, torch.Tensor]]:
        class_logits, box_deltas = self.box_predictor(self.box_head(self.box_pooler(features, proposals)))
        if box_deltas.shape[1] > 4:
            box_deltas = box_deltas[:, 4:]  # the background's deltas are never trained
        boxes = decode_boxes(box_deltas, torch.cat(proposals), self.box_reg_weights)
        scores = F.softmax(class_logits.float(), dim=-1)
        counts = [p.shape[0] for p in proposals]
        detections = [
            detect_in_image(
                b,
                s,
                size,
                score_thresh=self.score_thresh,
                nms_thresh=self.nms_thresh,
                detections_per_image=self.detections_per_image,
            )
            for b, s, size in zip(_split(boxes, counts), _split(scores, counts), image_shapes)
        ]
        if self.mask_head is not None:
            boxes = [d["boxes"] for d in detections]
            logits = self._detected_mask_logits(features, boxes)
            maps = _class_maps(logits, torch.cat([d["labels"] for d in detections]))
            for d, masks in zip(detections, _split(maps[:, None].float().sigmoid(), [b.shape[0] for b in boxes])):
                d["masks"] = masks
        return detections

    def _detected_mask_logits(self, features: Dict[str, torch.Tensor], boxes: List[torch.Tensor]) -> torch.Tensor:
        if not torch.compiler.is_exporting():
            return self.mask_predictor(self.mask_head(self.mask_pooler(features, boxes)))
        # An exported graph (one image) pools one spare box after the detections: ONNX Runtime's
        # GroupNormalization cannot reshape a batch of zero RoIs, as an image with no detection gives.
        spare = boxes[0].new_tensor([[0.0, 0.0, 1.0, 1.0]])
        return self.mask_predictor(self.mask_head(self.mask_pooler(features, [torch.cat([boxes[0], spare])])))[:-1]


def _split(tensor: torch.Tensor, counts: List[int]) -> List[torch.Tensor]:
    # One image needs no split, and torch.export cannot split by a count that depends on the data.
    return [tensor] if len(counts) == 1 else list(tensor.split(counts))


def _class_maps(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """(M, h, w): each RoI's map for its class, from (M, K+1, h, w) logits or one class-agnostic map."""
    if logits.shape[1] == 1:
        return logits[:, 0]
    return logits[torch.arange(classes.shape[0], device=classes.device), classes]


def build_roi_heads(cfg, input_shapes: Dict[str, ShapeSpec]) -> StandardROIHeads:
    """The RoI heads of ``MODEL.ROI_HEADS``, ``ROI_BOX_HEAD`` and, when ``MODEL.MASK_ON``,
    ``ROI_MASK_HEAD``, around the registered box and mask heads."""
    h, box = cfg.MODEL.ROI_HEADS, cfg.MODEL.ROI_BOX_HEAD
    box_pooler, pooled = build_pooler(cfg, "ROI_BOX_HEAD", input_shapes)
    box_head = build_box_head(cfg, pooled)
    mask_parts = {}
    if cfg.MODEL.MASK_ON:
        mask_pooler, mask_pooled = build_pooler(cfg, "ROI_MASK_HEAD", input_shapes)
        mask_head = build_mask_head(cfg, mask_pooled)
        mask_parts = dict(
            mask_pooler=mask_pooler,
            mask_head=mask_head,
            mask_predictor=MaskPredictor(
                mask_head.output_shape(), h.NUM_CLASSES, cls_agnostic_mask=cfg.MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK
            ),
        )
    return StandardROIHeads(
        box_pooler=box_pooler,
        box_head=box_head,
        box_predictor=BoxPredictor(
            box_head.output_shape(), h.NUM_CLASSES, cls_agnostic_bbox_reg=box.CLS_AGNOSTIC_BBOX_REG
        ),
        proposal_matcher=Matcher(h.IOU_THRESHOLDS, h.IOU_LABELS, key="MODEL.ROI_HEADS"),
        batch_size_per_image=h.BATCH_SIZE_PER_IMAGE,
        positive_fraction=h.POSITIVE_FRACTION,
        proposal_append_gt=h.PROPOSAL_APPEND_GT,
        box_reg_weights=box.BBOX_REG_WEIGHTS,
        smooth_l1_beta=box.SMOOTH_L1_BETA,
        bbox_reg_loss_weight=box.BBOX_REG_LOSS_WEIGHT,
        score_thresh=h.SCORE_THRESH_TEST,
        nms_thresh=h.NMS_THRESH_TEST,
        detections_per_image=cfg.TEST.DETECTIONS_PER_IMAGE,
        **mask_parts,
    )
