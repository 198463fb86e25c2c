"""Box deltas (Girshick et al. 2014, R-CNN appendix C): how far, in units of a reference box, a
target box's centre lies and how much wider and taller it is.

Written out here rather than taken from torchvision's BoxCoder, which casts the reference boxes
down to the deltas' dtype: under bf16 autocast that moves a decoded 800-px box by pixels.
Decoding is always in fp32, as in detectron2.
"""
import math
from typing import Sequence

import torch

__all__ = ["SCALE_CLAMP", "decode_boxes", "encode_boxes"]

# exp(dw) at most 1000/16: no box grows from a 16-px anchor past 1000 px (detectron2's clamp).
SCALE_CLAMP = math.log(1000.0 / 16)


def encode_boxes(targets: torch.Tensor, references: torch.Tensor, weights: Sequence[float]) -> torch.Tensor:
    """The deltas that move ``references`` onto ``targets``.

    Args:
        targets, references: (R, 4) XYXY boxes, paired row by row.
        weights: (wx, wy, ww, wh), multiplying (dx, dy, dw, dh).
    Returns:
        (R, 4) deltas (dx, dy, dw, dh).
    """
    wx, wy, ww, wh = weights
    ref_w = references[:, 2] - references[:, 0]
    ref_h = references[:, 3] - references[:, 1]
    ref_x = references[:, 0] + 0.5 * ref_w
    ref_y = references[:, 1] + 0.5 * ref_h
    w = targets[:, 2] - targets[:, 0]
    h = targets[:, 3] - targets[:, 1]
    x = targets[:, 0] + 0.5 * w
    y = targets[:, 1] + 0.5 * h
    return torch.stack(
        (wx * (x - ref_x) / ref_w, wy * (y - ref_y) / ref_h, ww * torch.log(w / ref_w), wh * torch.log(h / ref_h)),
        dim=1,
    )


def decode_boxes(
    deltas: torch.Tensor, references: torch.Tensor, weights: Sequence[float], scale_clamp: float = SCALE_CLAMP
) -> torch.Tensor:
    """Apply ``deltas`` to ``references``; the inverse of :func:`encode_boxes`.

    Args:
        deltas: (R, 4k) fp32 or lower: k sets of deltas per reference box (one per class).
        references: (R, 4) XYXY boxes.
    Returns:
        (R, 4k) fp32 XYXY boxes.
    """
    deltas = deltas.float()
    references = references.to(deltas.dtype)
    wx, wy, ww, wh = weights
    widths = (references[:, 2] - references[:, 0])[:, None]
    heights = (references[:, 3] - references[:, 1])[:, None]
    ctr_x = references[:, 0, None] + 0.5 * widths
    ctr_y = references[:, 1, None] + 0.5 * heights
    dx, dy = deltas[:, 0::4] / wx, deltas[:, 1::4] / wy
    dw = torch.clamp(deltas[:, 2::4] / ww, max=scale_clamp)
    dh = torch.clamp(deltas[:, 3::4] / wh, max=scale_clamp)
    x = dx * widths + ctr_x
    y = dy * heights + ctr_y
    w = torch.exp(dw) * widths
    h = torch.exp(dh) * heights
    return torch.stack((x - 0.5 * w, y - 0.5 * h, x + 0.5 * w, y + 0.5 * h), dim=-1).reshape(deltas.shape)
