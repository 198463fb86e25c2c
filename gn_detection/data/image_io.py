"""Read an image file into an (H, W, C) float32 array of 0-255 pixel values.

Every PIL mode a dataset is likely to hold is accepted: 8-bit RGB, gray (``L``), ``RGBA``/``LA``
(alpha dropped), palette (``P``/``PA``), 1-bit, ``CMYK``, and 16-bit gray PNG/TIFF. 16-bit values
are scaled into 0-255 as floats rather than rounded to 8 bits, so their precision survives.
"""
import os
from typing import TYPE_CHECKING, Optional

import numpy as np
from PIL import Image, ImageOps

from ..utils.errors import UserError

if TYPE_CHECKING:
    from .dicom import DicomReadOptions

__all__ = ["IMAGE_FORMATS", "read_image", "to_rgb"]

IMAGE_FORMATS = ("RGB", "BGR", "L")

# PIL's modes for 16-bit gray (little/big/native endian) and the 32-bit int and float modes that
# some PNG/TIFF readers give for the same data; all hold values in 0-65535.
_WIDE_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_WIDE_GRAY_MAX = 65535.0
_GRAY_MODES = ("1", "L", "LA", "La")
# The ITU-R 601-2 luma weights of PIL's convert("L"), applied in float so nothing is rounded.
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float64)


def read_image(path: str, format: str = "RGB", dicom: Optional["DicomReadOptions"] = None) -> np.ndarray:
    """Read ``path``, apply its EXIF orientation and return its pixels.

    Args:
        path: an image file PIL can read, or a DICOM file (recognised by its content; read as
            ``dicom`` says, by default the file's own window and its first frame; see
            data/dicom.py).
        format: ``"RGB"``, ``"BGR"`` (channels reversed, as Caffe2-trained weights expect) or
            ``"L"`` (luminance). Gray images give three equal channels for RGB/BGR; colour images
            give ITU-R 601-2 luminance for ``"L"``.

    Returns:
        (H, W, C) float32 array in 0-255, C = 3 for RGB/BGR and 1 for L; H and W are after the
        EXIF rotation. 16-bit images are scaled by 255/65535 and keep their fractions.

    Raises:
        ValueError: ``format`` is not one of IMAGE_FORMATS; the file is not an image, is corrupt
            or truncated, or has a mode that cannot be turned into RGB.
        FileNotFoundError: ``path`` does not exist.
    """
    if format not in IMAGE_FORMATS:
        raise UserError(f"read_image: unknown format {format!r}; valid formats: {', '.join(IMAGE_FORMATS)}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such image file")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, not an image file")
    from .dicom import DicomReadOptions, is_dicom, read_dicom

    if is_dicom(path):
        dicom = dicom or DicomReadOptions()
        gray = read_dicom(path, dicom.window, frame=dicom.frame)
        return _gray_as(gray.astype(np.float64), format)
    try:
        with Image.open(path) as image:
            # PIL decodes lazily; load() now so a truncated file fails here, not in a data worker.
            image.load()
            image = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, EOFError, ValueError) as e:
        raise UserError(f"{path}: cannot be read as an image; the file is corrupt or truncated ({e})") from e

    gray, rgb = _to_gray_or_rgb(image, path)
    if rgb is None:
        return _gray_as(gray, format)
    if format == "L":
        return (rgb @ _LUMA_WEIGHTS)[:, :, None].astype(np.float32)
    if format == "BGR":
        rgb = rgb[:, :, ::-1]
    # contiguous: a reversed view has negative strides, which torch.from_numpy refuses
    return np.ascontiguousarray(rgb, dtype=np.float32)


def _gray_as(gray: np.ndarray, format: str) -> np.ndarray:
    """(H, W) gray pixels as (H, W, 1) for "L", or three equal channels for RGB/BGR."""
    channels = 1 if format == "L" else 3
    return np.ascontiguousarray(np.repeat(gray[:, :, None], channels, axis=2), dtype=np.float32)


def _to_gray_or_rgb(image: Image.Image, path: str):
    """Return ``(gray, None)`` with gray (H, W) or ``(None, rgb)`` with rgb (H, W, 3), float64 0-255."""
    mode = image.mode
    if mode in _WIDE_GRAY_MODES:
        return np.asarray(image, dtype=np.float64) * (255.0 / _WIDE_GRAY_MAX), None
    if mode in _GRAY_MODES:
        return np.asarray(image.convert("L"), dtype=np.float64), None
    if mode in ("P", "PA"):
        # via RGBA: a palette with transparency warns when converted straight to RGB
        image = image.convert("RGBA")
    try:
        rgb = image.convert("RGB")
    except ValueError as e:
        raise UserError(f"{path}: PIL mode {mode!r} cannot be converted to RGB ({e})") from e
    return None, np.asarray(rgb, dtype=np.float64)


def to_rgb(image: np.ndarray, format: str) -> np.ndarray:
    """``read_image``'s (H, W, C) pixels in ``format`` as RGB uint8 (H, W, 3), for drawing."""
    if format not in IMAGE_FORMATS:
        raise UserError(f"to_rgb: unknown format {format!r}; valid formats: {', '.join(IMAGE_FORMATS)}")
    rgb = {"RGB": image, "BGR": image[..., ::-1], "L": np.repeat(image, 3, axis=-1)}[format]
    return np.clip(rgb, 0, 255).round().astype(np.uint8)
