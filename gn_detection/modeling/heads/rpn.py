"""Region proposals (Ren et al. 2015) over every pyramid level, trained as detectron2 trains them.

Training labels each anchor by its IoU with the ground truth (``MODEL.RPN.IOU_THRESHOLDS``),
draws ``BATCH_SIZE_PER_IMAGE`` of them per image, at most ``POSITIVE_FRACTION`` foreground,
and sums a logistic loss over the drawn anchors and a smooth-L1 loss (``SMOOTH_L1_BETA``; 0 is
L1) over the drawn foreground ones, both divided by ``BATCH_SIZE_PER_IMAGE x images``: a fixed
normalizer, as in Detectron and detectron2, where torchvision divides by the anchors drawn.
Proposals are the top-scoring decoded anchors of each level, clipped, non-empty and kept by a
per-level NMS; they carry no gradient.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from fvcore.nn import smooth_l1_loss
from torch import nn
from torchvision.ops import box_iou, clip_boxes_to_image

from ...layers import ShapeSpec
from ...layers.nms import batched_nms
from ...utils.errors import UserError
from ..anchor_generator import GridAnchorGenerator
from ..box_regression import decode_boxes, encode_boxes
from ..sampling import Matcher, subsample_labels

__all__ = ["RPN", "RPNHead", "build_anchor_generator", "build_rpn", "find_top_proposals", "rpn_losses"]


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


def rpn_losses(
    anchors: torch.Tensor,
    logits: torch.Tensor,
    deltas: torch.Tensor,
    labels: torch.Tensor,
    matched_boxes: torch.Tensor,
    *,
    box_reg_weights: Sequence[float],
    smooth_l1_beta: float,
    normalizer: float,
) -> Dict[str, torch.Tensor]:
    """The RPN's two losses, summed over the drawn anchors and divided by ``normalizer``.

    Args:
        anchors: (A, 4) XYXY, shared by the images.
        logits: (N, A) objectness logits; deltas: (N, A, 4) predicted deltas.
        labels: (N, A) 1 foreground, 0 background, -1 not drawn.
        matched_boxes: (N, A, 4) each anchor's ground-truth box (read where labels is 1).
    Returns:
        ``loss_rpn_cls`` (logistic loss on objectness) and ``loss_rpn_loc`` (smooth L1 on deltas).
    """
    foreground = labels == 1
    image_index, anchor_index = torch.nonzero(foreground, as_tuple=True)
    target_deltas = encode_boxes(matched_boxes[foreground], anchors[anchor_index], box_reg_weights)
    localization = smooth_l1_loss(deltas[foreground].float(), target_deltas, smooth_l1_beta, reduction="sum")
    drawn = labels >= 0
    objectness = F.binary_cross_entropy_with_logits(
        logits[drawn].float(), labels[drawn].float(), reduction="sum"
    )
    return {"loss_rpn_cls": objectness / normalizer, "loss_rpn_loc": localization / normalizer}


@torch.no_grad()
def find_top_proposals(
    anchors: List[torch.Tensor],
    logits: List[torch.Tensor],
    deltas: List[torch.Tensor],
    image_sizes: List[Tuple[int, int]],
    *,
    box_reg_weights: Sequence[float],
    pre_nms_topk: int,
    post_nms_topk: int,
    nms_thresh: float,
) -> List[torch.Tensor]:
    """Each image's proposals: per level its ``pre_nms_topk`` best anchors, decoded, clipped to
    the image, those with a positive width and height, then NMS within each level and the
    ``post_nms_topk`` best over all levels.

    Args:
        anchors: per level (A_l, 4); logits: per level (N, A_l); deltas: per level (N, A_l, 4).
        image_sizes: (height, width) of each image before padding.
    Returns:
        per image, (P, 4) XYXY proposals by decreasing objectness.
    """
    boxes, scores, levels = [], [], []
    for level, (anchors_l, logits_l, deltas_l) in enumerate(zip(anchors, logits, deltas)):
        k = torch.sym_min(pre_nms_topk, logits_l.shape[1])  # no branch on the image size under torch.export
        top_scores, top = logits_l.topk(k, dim=1)
        top_deltas = torch.gather(deltas_l, 1, top[..., None].expand(-1, -1, 4))
        decoded = decode_boxes(top_deltas.reshape(-1, 4), anchors_l[top.reshape(-1)], box_reg_weights)
        boxes.append(decoded.view(top.shape[0], k, 4))
        scores.append(top_scores)
        levels.append(torch.full((k,), level, dtype=torch.int64, device=top.device))
    boxes, scores, levels = torch.cat(boxes, dim=1), torch.cat(scores, dim=1), torch.cat(levels)

    proposals = []
    for boxes_i, scores_i, size in zip(boxes, scores, image_sizes):
        # A diverged step's NaN boxes are dropped; its losses stop the run (engine/trainer.py).
        keep = torch.isfinite(boxes_i).all(dim=1) & torch.isfinite(scores_i)
        boxes_i = clip_boxes_to_image(boxes_i[keep], size)
        scores_i, levels_i = scores_i[keep], levels[keep]
        keep = (boxes_i[:, 2] > boxes_i[:, 0]) & (boxes_i[:, 3] > boxes_i[:, 1])
        boxes_i, scores_i, levels_i = boxes_i[keep], scores_i[keep], levels_i[keep]
        keep = batched_nms(boxes_i, scores_i.float(), levels_i, nms_thresh)[:post_nms_topk]
        proposals.append(boxes_i[keep])
    return proposals


class RPN(nn.Module):
    """The region proposal network: head, anchors, training targets, losses and proposals.

    Args:
        head: features -> per-level objectness logits and anchor deltas.
        anchor_generator: anchors on every level's grid.
        anchor_matcher: labels anchors by IoU (MODEL.RPN.IOU_THRESHOLDS / IOU_LABELS), with
            low-quality matches allowed.
        box_reg_weights: weights of the anchor deltas (MODEL.RPN.BBOX_REG_WEIGHTS).
        batch_size_per_image, positive_fraction: anchors drawn per image, and the largest
            foreground share of them.
        pre_nms_topk, post_nms_topk: (training, testing) proposals kept per level before NMS and
            per image after it.
        nms_thresh: IoU above which NMS drops the lower-scoring proposal.
        boundary_thresh: anchors reaching more than this many pixels outside the image are not
            trained on (Detectron's RPN_STRADDLE_THRESH); negative: all anchors are.
        smooth_l1_beta: beta of the box loss; 0 makes it L1.
        loss_weight: scales both losses; bbox_reg_loss_weight scales ``loss_rpn_loc`` again.
    """

    def __init__(
        self,
        *,
        head: nn.Module,
        anchor_generator: GridAnchorGenerator,
        anchor_matcher: Matcher,
        box_reg_weights: Sequence[float],
        batch_size_per_image: int,
        positive_fraction: float,
        pre_nms_topk: Tuple[int, int],
        post_nms_topk: Tuple[int, int],
        nms_thresh: float,
        boundary_thresh: float = -1.0,
        smooth_l1_beta: float = 0.0,
        loss_weight: float = 1.0,
        bbox_reg_loss_weight: float = 1.0,
    ):
        super().__init__()
        self.head = head
        self.anchor_generator = anchor_generator
        self.anchor_matcher = anchor_matcher
        self.box_reg_weights = tuple(box_reg_weights)
        self.batch_size_per_image = batch_size_per_image
        self.positive_fraction = positive_fraction
        self.pre_nms_topk = {True: pre_nms_topk[0], False: pre_nms_topk[1]}
        self.post_nms_topk = {True: post_nms_topk[0], False: post_nms_topk[1]}
        self.nms_thresh = nms_thresh
        self.boundary_thresh = boundary_thresh
        self.smooth_l1_beta = smooth_l1_beta
        self.loss_weights = {"loss_rpn_cls": loss_weight, "loss_rpn_loc": loss_weight * bbox_reg_loss_weight}

    def forward(
        self, images, features: Dict[str, torch.Tensor], targets: Optional[List[Dict[str, torch.Tensor]]] = None
    ) -> Tuple[List[torch.Tensor], Dict[str, torch.Tensor]]:
        """Proposals for a batch, and in training the losses.

        Args:
            images: an ImageList (its ``image_sizes`` clip the proposals).
            features: the pyramid, finest level first.
            targets: per image ``boxes`` (G, 4) XYXY in the resized image's pixels.
        Returns:
            per image (P, 4) proposals, and ``loss_rpn_cls``/``loss_rpn_loc`` (empty in eval).
        """
        features = list(features.values())
        anchors = self.anchor_generator(features)
        logits, deltas = self.head(features)
        # (N, A, H, W) -> (N, H * W * A) and (N, 4A, H, W) -> (N, H * W * A, 4): the anchors' order.
        logits = [x.permute(0, 2, 3, 1).flatten(1) for x in logits]
        deltas = [
            x.view(x.shape[0], -1, 4, x.shape[-2], x.shape[-1]).permute(0, 3, 4, 1, 2).flatten(1, -2) for x in deltas
        ]
        proposals = find_top_proposals(
            anchors,
            logits,
            deltas,
            images.image_sizes,
            box_reg_weights=self.box_reg_weights,
            pre_nms_topk=self.pre_nms_topk[self.training],
            post_nms_topk=self.post_nms_topk[self.training],
            nms_thresh=self.nms_thresh,
        )
        if not self.training:
            return proposals, {}
        all_anchors = torch.cat(anchors)
        labels, matched_boxes = self.label_and_sample_anchors(all_anchors, targets, images.image_sizes)
        losses = rpn_losses(
            all_anchors,
            torch.cat(logits, dim=1),
            torch.cat(deltas, dim=1),
            labels,
            matched_boxes,
            box_reg_weights=self.box_reg_weights,
            smooth_l1_beta=self.smooth_l1_beta,
            normalizer=self.batch_size_per_image * len(labels),
        )
        return proposals, {k: v * self.loss_weights[k] for k, v in losses.items()}

    @torch.no_grad()
    def label_and_sample_anchors(
        self, anchors: torch.Tensor, targets: List[Dict[str, torch.Tensor]], image_sizes: List[Tuple[int, int]]
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """(N, A) labels (1, 0, or -1 for anchors not drawn) and (N, A, 4) matched boxes."""
        labels, matched_boxes = [], []
        for target, (height, width) in zip(targets, image_sizes):
            gt_boxes = target["boxes"]
            matched, labels_i = self.anchor_matcher(box_iou(gt_boxes, anchors))
            if self.boundary_thresh >= 0:
                t = self.boundary_thresh
                x0, y0, x1, y1 = anchors.unbind(dim=1)
                labels_i[(x0 < -t) | (y0 < -t) | (x1 >= width + t) | (y1 >= height + t)] = -1
            foreground, background = subsample_labels(labels_i, self.batch_size_per_image, self.positive_fraction, 0)
            labels_i = torch.full_like(labels_i, -1)
            labels_i[foreground], labels_i[background] = 1, 0
            labels.append(labels_i)
            matched_boxes.append(gt_boxes[matched] if len(gt_boxes) else torch.zeros_like(anchors))
        return torch.stack(labels), torch.stack(matched_boxes)


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
        raise UserError(
            f"MODEL.ANCHOR_GENERATOR: {len(sizes)} SIZES and {len(ratios)} ASPECT_RATIOS entries for "
            f"{num_levels} feature levels; give one per level (ASPECT_RATIOS may have a single entry)"
        )
    anchors_per_level = {len(s) * len(r) for s, r in zip(sizes, ratios)}
    if len(anchors_per_level) != 1:
        raise UserError(
            "MODEL.ANCHOR_GENERATOR: every level needs the same number of anchors (sizes x ratios), "
            "since one RPN head serves them all"
        )
    return GridAnchorGenerator(
        sizes, ratios, strides=[s.stride for s in input_shapes.values()], round_anchors=a.ROUND
    )


def build_rpn(cfg, input_shapes: Dict[str, ShapeSpec]) -> RPN:
    """The RPN over all of the backbone's outputs, configured by ``MODEL.RPN``."""
    channels = {s.channels for s in input_shapes.values()}
    if len(channels) != 1:
        raise UserError(f"the RPN head is shared across levels, but the backbone's levels have channels {channels}")
    anchor_generator = build_anchor_generator(cfg, input_shapes)
    r = cfg.MODEL.RPN
    return RPN(
        head=RPNHead(channels.pop(), anchor_generator.num_anchors_per_location()[0]),
        anchor_generator=anchor_generator,
        anchor_matcher=Matcher(r.IOU_THRESHOLDS, r.IOU_LABELS, allow_low_quality_matches=True, key="MODEL.RPN"),
        box_reg_weights=r.BBOX_REG_WEIGHTS,
        batch_size_per_image=r.BATCH_SIZE_PER_IMAGE,
        positive_fraction=r.POSITIVE_FRACTION,
        pre_nms_topk=(r.PRE_NMS_TOPK_TRAIN, r.PRE_NMS_TOPK_TEST),
        post_nms_topk=(r.POST_NMS_TOPK_TRAIN, r.POST_NMS_TOPK_TEST),
        nms_thresh=r.NMS_THRESH,
        boundary_thresh=r.BOUNDARY_THRESH,
        smooth_l1_beta=r.SMOOTH_L1_BETA,
        loss_weight=r.LOSS_WEIGHT,
        bbox_reg_loss_weight=r.BBOX_REG_LOSS_WEIGHT,
    )
