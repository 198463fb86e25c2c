"""Labelling predictions by their overlap with the ground truth, and drawing the training sample.

Both follow detectron2 (modeling/matcher.py, sampling.py), so that a step trains on what
detectron2's would: the same labels, and the same numbers of positives and negatives.
"""
from typing import Sequence, Tuple

import torch

from ..utils.errors import UserError

__all__ = ["Matcher", "subsample_labels"]


class Matcher:
    """Gives each prediction the ground-truth box it overlaps most, and a label from that IoU.

    ``thresholds`` cut [0, 1] into intervals, ``labels`` name them: with thresholds (0.3, 0.7)
    and labels (0, -1, 1), an IoU below 0.3 is background (0), one of 0.7 or more foreground
    (1), anything between ignored (-1).

    Args:
        thresholds: increasing IoU thresholds.
        labels: one per interval, each -1, 0 or 1 (one more than ``thresholds``).
        allow_low_quality_matches: also make foreground every prediction that is the best match
            of some ground-truth box, whatever its IoU, so each box has a positive (Faster R-CNN's
            RPN rule).
        key: the config node the settings come from (``MODEL.RPN``), named by the errors.
    """

    def __init__(
        self,
        thresholds: Sequence[float],
        labels: Sequence[int],
        *,
        allow_low_quality_matches: bool = False,
        key: str = "Matcher",
    ):
        thresholds = list(thresholds)
        if thresholds != sorted(thresholds) or not all(0 <= t <= 1 for t in thresholds):
            raise UserError(f"{key}.IOU_THRESHOLDS={thresholds}: expected increasing values in [0, 1]")
        if len(labels) != len(thresholds) + 1 or not set(labels) <= {-1, 0, 1}:
            raise UserError(
                f"{key}.IOU_LABELS={list(labels)} for IOU_THRESHOLDS={thresholds}: expected "
                f"{len(thresholds) + 1} labels, one per interval, each -1 (ignore), 0 (background) or 1 (foreground)"
            )
        self.thresholds = [-float("inf")] + thresholds + [float("inf")]
        self.labels = list(labels)
        self.allow_low_quality_matches = allow_low_quality_matches

    def __call__(self, iou: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Match the columns of ``iou`` (G ground-truth boxes x N predictions).

        Returns:
            (N,) int64 index of each prediction's best ground-truth box (0 when G is 0), and
            (N,) int8 labels.
        """
        if iou.shape[0] == 0:  # no ground truth: everything is what the lowest interval says
            matched = iou.new_zeros(iou.shape[1], dtype=torch.int64)
            return matched, torch.full_like(matched, self.labels[0], dtype=torch.int8)
        best_iou, matched = iou.max(dim=0)
        labels = torch.empty_like(matched, dtype=torch.int8)
        for label, low, high in zip(self.labels, self.thresholds[:-1], self.thresholds[1:]):
            labels[(best_iou >= low) & (best_iou < high)] = label
        if self.allow_low_quality_matches:
            best_per_gt = iou.max(dim=1, keepdim=True).values
            # Ties count too: every prediction that reaches some box's best IoU.
            labels[(iou == best_per_gt).any(dim=0)] = 1
        return matched, labels


def subsample_labels(
    labels: torch.Tensor, num_samples: int, positive_fraction: float, bg_label: int
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Draw at most ``num_samples`` labelled predictions at random: up to ``positive_fraction``
    of them foreground, the rest background (more background where foreground runs short).

    Args:
        labels: (N,) -1 for ignored, ``bg_label`` for background, anything else foreground.
    Returns:
        the indices of the drawn foreground and of the drawn background predictions.
    """
    positive = torch.nonzero((labels != -1) & (labels != bg_label), as_tuple=True)[0]
    negative = torch.nonzero(labels == bg_label, as_tuple=True)[0]
    num_pos = min(positive.numel(), int(num_samples * positive_fraction))
    num_neg = min(negative.numel(), num_samples - num_pos)
    # Positives first, then negatives, each one randperm on the labels' device: detectron2's
    # order of draws, so a shared seed samples the same predictions.
    pos = positive[torch.randperm(positive.numel(), device=positive.device)[:num_pos]]
    neg = negative[torch.randperm(negative.numel(), device=negative.device)[:num_neg]]
    return pos, neg
