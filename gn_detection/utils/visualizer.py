"""Draw detections or ground truth on an image: masks, mask contours, boxes and captions.

Instance ``i`` is drawn in ``PALETTE[i % len(PALETTE)]``. The colour follows the instance's index,
not its class, so two overlapping instances of one class still look apart, and the same inputs
always give the same picture.
"""
import functools
from typing import TYPE_CHECKING, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .errors import UserError
from .file_io import atomic_write

__all__ = ["PALETTE", "draw_instances", "save_png"]

if TYPE_CHECKING:
    import torch
# torch tensors are taken but torch is not imported: the exported-model predictor runs without it
ArrayLike = Union[np.ndarray, "torch.Tensor"]
Color = Tuple[int, int, int]

# Saturated colours ordered so that neighbours contrast (Trubetskoy's "20 distinct colours",
# the 12 that read well on photographs).
PALETTE: Tuple[Color, ...] = (
    (230, 25, 75),  # red
    (60, 180, 75),  # green
    (0, 130, 200),  # blue
    (245, 130, 48),  # orange
    (145, 30, 180),  # purple
    (70, 240, 240),  # cyan
    (240, 50, 230),  # magenta
    (210, 245, 60),  # lime
    (0, 128, 128),  # teal
    (170, 110, 40),  # brown
    (128, 0, 0),  # maroon
    (0, 0, 128),  # navy
)

MASK_THRESHOLD = 0.5  # float masks are probabilities; >= this is foreground
CONTOUR_DARKEN = 0.6  # contour colour = instance colour * this, so the outline stands off the fill
BOX_WIDTH = 2  # box outline, pixels
CAPTION_PAD = 2  # pixels between the caption text and the edge of its background
TEXT_DARK, TEXT_LIGHT = (0, 0, 0), (255, 255, 255)
LIGHT_BACKGROUND = 150.0  # above this luma the caption text is dark


def draw_instances(
    image: ArrayLike,
    *,
    boxes: ArrayLike,
    labels: ArrayLike,
    class_names: Sequence[str],
    scores: Optional[ArrayLike] = None,
    masks: Optional[ArrayLike] = None,
    mask_alpha: float = 0.5,
) -> np.ndarray:
    """Draw R instances on a copy of ``image``.

    Each instance gets its mask blended in its colour, a 1-px darker outline of the mask, a
    ``BOX_WIDTH``-px box outline and a caption (``"name 93%"``, or ``"name"`` when ``scores`` is
    None) on a filled rectangle at the box's top-left, above the box where there is room, moved
    to stay inside the image. Masks are drawn first and captions last, so no caption is covered.

    Args:
        image: (H, W, 3) RGB, uint8 or float in 0-255; (H, W, 1) or (H, W) gray is made RGB.
        boxes: (R, 4) XYXY in image pixels.
        labels: (R,) ints in 1..K; label k is ``class_names[k - 1]``.
        class_names: the K class names, without background.
        scores: (R,) in [0, 1], or None for ground truth.
        masks: (R, H, W) or (R, 1, H, W), bool/uint8 or float probabilities (foreground where
            >= 0.5), or None.
        mask_alpha: weight of the instance colour where a mask is on, in [0, 1].
    All of the arrays may be NumPy arrays or torch tensors.

    Returns:
        a new (H, W, 3) uint8 RGB image; ``image`` is left as it was.

    Raises:
        ValueError: a shape or length that does not match, a label outside 1..K, or a
            ``mask_alpha`` outside [0, 1].
    """
    canvas = _to_rgb_uint8(image)
    height, width = canvas.shape[:2]
    boxes = _to_numpy(boxes, "boxes").astype(np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise UserError(f"draw_instances: boxes must be (R, 4) XYXY; got shape {tuple(boxes.shape)}")
    num = len(boxes)
    labels = _check_labels(_to_numpy(labels, "labels").reshape(-1), num, len(class_names))
    if scores is not None:
        scores = _to_numpy(scores, "scores").reshape(-1).astype(np.float64)
        _check_length("scores", len(scores), num)
    if masks is not None:
        masks = _binarize_masks(_to_numpy(masks, "masks"), num, height, width)
    if not 0.0 <= mask_alpha <= 1.0:
        raise UserError(f"draw_instances: mask_alpha must be in [0, 1]; got {mask_alpha}")
    colors = [PALETTE[i % len(PALETTE)] for i in range(num)]

    if masks is not None:
        blended = canvas.astype(np.float64)
        for mask, color in zip(masks, colors):
            blended[mask] = (1.0 - mask_alpha) * blended[mask] + mask_alpha * np.asarray(color)
        canvas = np.round(blended).astype(np.uint8)
        for mask, color in zip(masks, colors):
            canvas[_contour(mask)] = np.round(np.asarray(color) * CONTOUR_DARKEN).astype(np.uint8)

    pil = Image.fromarray(canvas)
    draw = ImageDraw.Draw(pil)
    pixel_boxes = [_pixel_box(box, height, width) for box in boxes]
    for box, color in zip(pixel_boxes, colors):
        draw.rectangle(box, outline=color, width=BOX_WIDTH)
    font = _font()
    for i, (box, color) in enumerate(zip(pixel_boxes, colors)):
        caption = class_names[labels[i] - 1]
        if scores is not None:
            caption = f"{caption} {scores[i] * 100:.0f}%"
        _draw_caption(draw, font, caption, box, color, height, width)
    return np.asarray(pil, dtype=np.uint8).copy()


def save_png(image: ArrayLike, path: str) -> None:
    """Write ``image`` (any form ``draw_instances`` accepts) to ``path`` as an RGB PNG.

    The parent folder is created. The file is written to a temporary name in that folder and
    renamed over ``path``, so a reader never sees half a file.
    """
    rgb = _to_rgb_uint8(image)
    atomic_write(path, lambda f: Image.fromarray(rgb).save(f, format="PNG"))


def _to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    if type(x).__module__ == "torch" and hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    if isinstance(x, (np.ndarray, list, tuple)):
        return np.asarray(x)
    raise TypeError(f"{name} must be a NumPy array or a torch tensor; got {type(x).__name__}")


def _to_rgb_uint8(image: ArrayLike) -> np.ndarray:
    """A new (H, W, 3) uint8 copy of an (H, W, 3), (H, W, 1) or (H, W) image in 0-255."""
    array = _to_numpy(image, "image")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        channels_first = array.ndim == 3 and array.shape[0] == 3
        hint = "; a (3, H, W) tensor needs .permute(1, 2, 0)" if channels_first else ""
        raise UserError(
            f"image must be (H, W, 3), (H, W, 1) or (H, W); got shape {tuple(array.shape)}{hint}"
        )
    if array.dtype != np.uint8:
        array = np.round(np.clip(array.astype(np.float64), 0, 255)).astype(np.uint8)
    return np.array(np.broadcast_to(array, array.shape[:2] + (3,)))  # always a copy


def _check_length(name: str, length: int, num_boxes: int) -> None:
    if length != num_boxes:
        raise UserError(f"draw_instances: {name} has {length} entries but boxes has {num_boxes}")


def _check_labels(labels: np.ndarray, num_boxes: int, num_classes: int) -> np.ndarray:
    _check_length("labels", len(labels), num_boxes)
    if labels.size and not np.array_equal(labels, np.round(labels)):
        raise UserError(f"draw_instances: labels must be integers; got {labels.tolist()}")
    labels = labels.astype(np.int64)
    bad = labels[(labels < 1) | (labels > num_classes)]
    if bad.size:
        raise UserError(
            f"draw_instances: label {int(bad[0])} is outside 1..K with K={num_classes} "
            f"(len(class_names)); label k is class_names[k - 1], background is not drawn"
        )
    return labels


def _binarize_masks(masks: np.ndarray, num_boxes: int, height: int, width: int) -> np.ndarray:
    """(R, H, W) or (R, 1, H, W) masks as an (R, H, W) bool array."""
    if masks.ndim == 4 and masks.shape[1] == 1:
        masks = masks[:, 0]
    if masks.ndim != 3:
        raise UserError(
            f"draw_instances: masks must be (R, H, W) or (R, 1, H, W); got shape {tuple(masks.shape)}"
        )
    _check_length("masks", len(masks), num_boxes)
    if masks.shape[1:] != (height, width):
        raise UserError(
            f"draw_instances: masks are {masks.shape[1]}x{masks.shape[2]} but the image is {height}x{width}"
        )
    if np.issubdtype(masks.dtype, np.floating):
        return masks >= MASK_THRESHOLD
    return masks != 0


def _contour(mask: np.ndarray) -> np.ndarray:
    """The mask's pixels that have a 4-neighbour outside it (the image border counts as outside)."""
    padded = np.pad(mask, 1, constant_values=False)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def _pixel_box(box: np.ndarray, height: int, width: int) -> Tuple[int, int, int, int]:
    """XYXY in continuous pixel coordinates -> the inclusive pixel rectangle, clipped to the image."""
    x0, y0, x1, y1 = box
    x0 = int(np.clip(np.floor(x0), 0, width - 1))
    y0 = int(np.clip(np.floor(y0), 0, height - 1))
    x1 = int(np.clip(np.ceil(x1) - 1, x0, width - 1))
    y1 = int(np.clip(np.ceil(y1) - 1, y0, height - 1))
    return x0, y0, x1, y1


@functools.lru_cache(maxsize=1)
def _font() -> ImageFont.ImageFont:
    return ImageFont.load_default()


def _draw_caption(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont,
    caption: str,
    box: Tuple[int, int, int, int],
    color: Color,
    height: int,
    width: int,
) -> None:
    left, top, right, bottom = draw.textbbox((0, 0), caption, font=font)
    label_w = right - left + 2 * CAPTION_PAD
    label_h = bottom - top + 2 * CAPTION_PAD
    x = min(box[0], width - label_w)
    # above the box when it fits, else just inside its top edge
    y = box[1] - label_h if box[1] >= label_h else box[1]
    x, y = max(x, 0), max(min(y, height - label_h), 0)
    draw.rectangle((x, y, x + label_w - 1, y + label_h - 1), fill=color)
    luma = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    text_color = TEXT_DARK if luma > LIGHT_BACKGROUND else TEXT_LIGHT
    draw.text((x + CAPTION_PAD - left, y + CAPTION_PAD - top), caption, fill=text_color, font=font)
