"""The part of a Mask R-CNN that goes into an exported graph: from a resized image to boxes,
scores, labels and M x M mask probabilities in that image's pixels.

Resizing (its output size is decided in Python from the input size) and pasting masks into the
original image (an H x W output per detection) stay outside, in ``gn_detection.deploy``, which
runs without torch. Everything else is inside: normalization, padding, backbone, FPN, RPN with
its NMS, RoIAlign, both heads and the per-class NMS.
"""
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.transform import GeneralizedRCNNTransform

from ..modeling import MaskRCNN

__all__ = ["DetectorGraph"]


class DetectorGraph(nn.Module):
    """``graph(image)`` with ``image`` (1, C, H, W) float 0-255, already resized as the model's
    INPUT.MIN/MAX_SIZE_TEST ask, returns ``boxes`` (D, 4) XYXY in its pixels, ``scores`` (D,),
    ``labels`` (D,) int64 in 1..K and ``masks`` (D, 1, M, M) probabilities (all zeros without a
    mask head), by decreasing score."""

    def __init__(self, model: MaskRCNN):
        super().__init__()
        self.model = model.eval()

    def forward(self, image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        height, width = image.shape[-2:]
        # torchvision's normalization: ResizeNormalize's own skips it in the detectron2 style,
        # which normalizes while resizing
        normalized = GeneralizedRCNNTransform.normalize(self.model.transform, image[0])
        divisor = self.model.transform.size_divisible
        pad_height, pad_width = (height + divisor - 1) // divisor * divisor, (width + divisor - 1) // divisor * divisor
        padded = F.pad(normalized, (0, pad_width - width, 0, pad_height - height))[None]
        images = ImageList(padded, [(height, width)])
        features = self.model.backbone(padded)
        proposals, _ = self.model.rpn(images, features)
        (detections,), _ = self.model.roi_heads(features, proposals, images.image_sizes)
        boxes = detections["boxes"]
        masks = detections.get("masks", boxes.new_zeros((boxes.shape[0], 1, 1, 1)))
        return boxes, detections["scores"], detections["labels"], masks
