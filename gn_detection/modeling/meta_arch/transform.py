from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.models.detection.transform import GeneralizedRCNNTransform, resize_boxes

from ...utils.errors import UserError

__all__ = ["ResizeNormalize", "RESIZE_STYLES", "build_transform", "paste_masks_grid_sample", "scale_polygons"]

# "torchvision": its resize (floor of the scaled size, bilinear on float pixels) and its mask
# pasting. "detectron2": detectron2's ResizeShortestEdge (rounded size, PIL's bilinear on uint8
# pixels, then normalized) and its grid-sample mask pasting, with boxes clipped to the image and
# empty ones dropped.
RESIZE_STYLES = ("torchvision", "detectron2")
MASK_PASTE_CHUNK = 16  # masks pasted at once: each costs H x W floats


def _resize_like_detectron2(image: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    """detectron2's ResizeShortestEdge: PIL's bilinear filter on uint8 pixels, each channel as an
    8-bit image ("L"), so the output matches it exactly. Returns float 0-255 on the input's device."""
    pixels = image.round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    channels = [np.asarray(Image.fromarray(c).resize((size[1], size[0]), Image.BILINEAR)) for c in pixels]
    return torch.from_numpy(np.stack(channels)).to(image.device, torch.float32)


def paste_masks_grid_sample(masks: torch.Tensor, boxes: torch.Tensor, image_size: Tuple[int, int]) -> torch.Tensor:
    """Paste (R, 1, M, M) mask probabilities into (R, 1, H, W) at their boxes (XYXY, image
    pixels) by sampling each image pixel's centre bilinearly in its box (detectron2's method)."""
    height, width = image_size
    out = masks.new_zeros((masks.shape[0], 1, height, width))
    ys = torch.arange(height, device=masks.device, dtype=torch.float32) + 0.5
    xs = torch.arange(width, device=masks.device, dtype=torch.float32) + 0.5
    for start in range(0, masks.shape[0], MASK_PASTE_CHUNK):
        chunk = slice(start, start + MASK_PASTE_CHUNK)
        x0, y0, x1, y1 = boxes[chunk].float().unbind(dim=1)
        gy = (ys[None, :] - y0[:, None]) / (y1 - y0)[:, None] * 2 - 1
        gx = (xs[None, :] - x0[:, None]) / (x1 - x0)[:, None] * 2 - 1
        n = gx.shape[0]
        grid = torch.stack([gx[:, None, :].expand(n, height, width), gy[:, :, None].expand(n, height, width)], dim=3)
        out[chunk] = F.grid_sample(masks[chunk].float(), grid, align_corners=False).to(out.dtype)
    return out


def scale_polygons(polygons: List[List[np.ndarray]], scale_x: float, scale_y: float) -> List[List[np.ndarray]]:
    """Per instance, its [x0, y0, x1, y1, ...] float64 polygons with x and y scaled (new arrays)."""
    scale = np.array([scale_x, scale_y], dtype=np.float64)
    return [[(p.reshape(-1, 2) * scale).reshape(-1) for p in instance] for instance in polygons]


class ResizeNormalize(GeneralizedRCNNTransform):
    """torchvision's batching transform with separate train and test sizes.

    Normalizes with the pixel mean and std, resizes each image so its shorter edge is one of
    ``train_min_sizes`` (drawn per image) or ``test_min_size`` while the longer edge stays within
    the max size, and pads the batch to a multiple of ``size_divisibility``. Detections are
    mapped back to the input image's pixels.
    """

    def __init__(
        self,
        *,
        train_min_sizes: Sequence[int],
        train_max_size: int,
        test_min_size: int,
        test_max_size: int,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        size_divisibility: int,
        resize_style: str = "torchvision",
    ):
        if resize_style not in RESIZE_STYLES:
            raise UserError(f"INPUT.RESIZE_STYLE={resize_style!r}: expected one of {RESIZE_STYLES}")
        self.resize_style = resize_style
        super().__init__(
            tuple(train_min_sizes),
            train_max_size,
            list(pixel_mean),
            list(pixel_std),
            size_divisible=max(size_divisibility, 1),
        )
        self._sizes = {True: (tuple(train_min_sizes), train_max_size), False: ((test_min_size,), test_max_size)}

    def train(self, mode: bool = True) -> "ResizeNormalize":
        super().train(mode)
        self.min_size, self.max_size = self._sizes[mode]
        return self

    def resize(self, image: torch.Tensor, target: Optional[Dict[str, torch.Tensor]] = None):
        height, width = image.shape[-2:]
        image, target = self._resize(image, target)
        if target is not None and "polygons" in target:
            scale_x, scale_y = image.shape[-1] / width, image.shape[-2] / height
            target = dict(target, polygons=scale_polygons(target["polygons"], scale_x, scale_y))
        return image, target

    def _resize(self, image: torch.Tensor, target: Optional[Dict[str, torch.Tensor]]):
        height, width = image.shape[-2:]
        # An image longer than max size : 1 has its short side scaled below 1 px whatever size is
        # drawn, and torchvision's floor would make it 0 px; it takes the path below.
        elongated = min(height, width) * self.max_size < max(height, width)
        if self.resize_style == "torchvision" and not elongated:
            return super().resize(image, target)
        short = self.torch_choice(self.min_size) if self.training else self.min_size[-1]
        scale = short / min(height, width)
        if max(height, width) * scale > self.max_size:
            scale = self.max_size / max(height, width)
        size = (max(1, int(height * scale + 0.5)), max(1, int(width * scale + 0.5)))
        if self.resize_style == "detectron2":
            resized = super().normalize(_resize_like_detectron2(image, size))
        else:  # normalized already
            resized = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]
        if target is not None:
            target = dict(target, boxes=resize_boxes(target["boxes"], [height, width], list(size)))
            if "masks" in target:
                masks = target["masks"][:, None].float()
                target["masks"] = F.interpolate(masks, size=size, mode="nearest")[:, 0].byte()
        return resized, target

    def normalize(self, image: torch.Tensor) -> torch.Tensor:
        # torchvision normalizes before resizing; the detectron2 style does it in resize().
        return image if self.resize_style == "detectron2" else super().normalize(image)

    def postprocess(
        self, result: List[Dict[str, torch.Tensor]], image_shapes: List[Tuple[int, int]], original_image_sizes
    ) -> List[Dict[str, torch.Tensor]]:
        if self.training or self.resize_style == "torchvision":
            return super().postprocess(result, image_shapes, original_image_sizes)
        for i, (pred, resized, original) in enumerate(zip(result, image_shapes, original_image_sizes)):
            boxes = resize_boxes(pred["boxes"], resized, original)
            boxes[:, 0::2] = boxes[:, 0::2].clamp(0, original[1])
            boxes[:, 1::2] = boxes[:, 1::2].clamp(0, original[0])
            keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            pred = {k: v[keep] for k, v in pred.items()}
            pred["boxes"] = boxes[keep]
            if "masks" in pred:
                pred["masks"] = paste_masks_grid_sample(pred["masks"], pred["boxes"], tuple(original))
            result[i] = pred
        return result


def build_transform(cfg, size_divisibility: int) -> ResizeNormalize:
    i = cfg.INPUT
    if len(cfg.MODEL.PIXEL_MEAN) != len(cfg.MODEL.PIXEL_STD):
        raise UserError(
            f"MODEL.PIXEL_MEAN has {len(cfg.MODEL.PIXEL_MEAN)} entries but MODEL.PIXEL_STD has "
            f"{len(cfg.MODEL.PIXEL_STD)}; give one of each per input channel"
        )
    return ResizeNormalize(
        train_min_sizes=i.MIN_SIZE_TRAIN,
        train_max_size=i.MAX_SIZE_TRAIN,
        test_min_size=i.MIN_SIZE_TEST,
        test_max_size=i.MAX_SIZE_TEST,
        pixel_mean=cfg.MODEL.PIXEL_MEAN,
        pixel_std=cfg.MODEL.PIXEL_STD,
        size_divisibility=size_divisibility,
        resize_style=i.RESIZE_STYLE,
    )
