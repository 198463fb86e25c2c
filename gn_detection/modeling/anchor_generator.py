"""Anchors on each feature level's grid, at the stride the backbone reports."""
from typing import List, Sequence

import torch
from torchvision.models.detection.anchor_utils import AnchorGenerator

__all__ = ["GridAnchorGenerator"]


class GridAnchorGenerator(AnchorGenerator):
    """torchvision's AnchorGenerator with two changes that detectron2 checkpoints need.

    - Each level's stride is the backbone's (4, 8, ..., 64), not the padded image size divided
      by the grid size, which is wrong where a level's grid is rounded up (an 800-px side gives
      P6 13 cells and a stride of 61 instead of 64).
    - ``round_anchors=False`` keeps the cell anchors' exact corners (detectron2); torchvision
      rounds them to whole pixels.

    Cell anchors are ordered sizes first, then aspect ratios, as in detectron2; with one size per
    level (the FPN default) this is also torchvision's order.

    Args:
        sizes: anchor sizes (sqrt of area, in pixels) for each level.
        aspect_ratios: height / width ratios for each level.
        strides: each level's stride in input pixels.
        round_anchors: round the cell anchors' corners to integers.
    """

    def __init__(
        self,
        sizes: Sequence[Sequence[float]],
        aspect_ratios: Sequence[Sequence[float]],
        *,
        strides: Sequence[int],
        round_anchors: bool = True,
    ):
        self.round_anchors = round_anchors
        super().__init__(tuple(tuple(s) for s in sizes), tuple(tuple(r) for r in aspect_ratios))
        self.strides = list(strides)

    def generate_anchors(self, scales, aspect_ratios, dtype=torch.float32, device=torch.device("cpu")) -> torch.Tensor:
        anchors = []
        for size in scales:
            for ratio in aspect_ratios:
                # width * height = size^2 and height / width = ratio
                width = (size * size / ratio) ** 0.5
                height = ratio * width
                anchors.append([-width / 2, -height / 2, width / 2, height / 2])
        anchors = torch.tensor(anchors, dtype=dtype, device=device)
        return anchors.round() if self.round_anchors else anchors

    def forward(self, feature_maps: List[torch.Tensor]) -> List[torch.Tensor]:
        """Per level, (H * W * A, 4) XYXY anchors in input pixels, A per location, locations in
        row-major order (the order of the RPN head's outputs flattened from (A, H, W) to (H, W, A)).
        Always fp32: under autocast the features are bf16, which would move an 800-px anchor by
        pixels."""
        grid_sizes = [list(f.shape[-2:]) for f in feature_maps]
        device = feature_maps[0].device
        strides = [[torch.tensor(s, dtype=torch.int64, device=device)] * 2 for s in self.strides]
        self.set_cell_anchors(torch.float32, device)
        return self.grid_anchors(grid_sizes, strides)
