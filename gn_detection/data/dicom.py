"""Read an X-ray DICOM file into an (H, W) float32 array of 0-255 gray values.

The output has the same scale as :func:`gn_detection.data.image_io.read_image`: float32 in
0-255, 0 = black on screen and 255 = white, fractions kept (nothing is rounded to 8 bits). The
steps, in order:

1. Read the file with pydicom and decode its pixel data (``ds.pixel_array``): 8-bit, 12-bit
   stored in 16, and 16-bit data, signed or unsigned, native or compressed (RLE is built in;
   JPEG, JPEG-LS and JPEG 2000 need a codec package, named in the error when it is missing).
2. Pick one frame of a multi-frame file (``NumberOfFrames > 1``). Colour images (3 samples per
   pixel, or PALETTE COLOR) become ITU-R 601-2 luminance, 0.299 R + 0.587 G + 0.114 B, as in
   ``read_image(..., format="L")``: X-rays are gray.
3. Modality LUT (Rescale Slope/Intercept, or the Modality LUT Sequence) gives float values in
   the modality's units (Hounsfield units for CT). Colour images skip it (DICOM defines it
   for gray images only).
4. Window to 0-255 as :class:`DicomWindow` says: the file's own VOI LUT or Window
   Center/Width, a fixed window, percentiles of the image, or its min-max.
5. MONOCHROME1 images (low values shown bright) are inverted after windowing, ``255 - x``,
   so that every output reads the same way: 0 = black.
"""
import logging
import os
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import pydicom
from pydicom import uid
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi

from ..utils.errors import UserError

__all__ = ["WINDOW_MODES", "DicomReadOptions", "DicomWindow", "MissingDecoderError", "is_dicom", "read_dicom"]

logger = logging.getLogger(__name__)

WINDOW_MODES = ("file", "fixed", "percentile", "none")

# A DICOM Part 10 file: a 128-byte preamble, then these 4 bytes (PS3.10 section 7.1).
_MAGIC = b"DICM"
_MAGIC_OFFSET = 128
_OUT_MAX = 255.0
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float64)
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# What ds.pixel_array raises: RuntimeError (no usable decoder plugin), NotImplementedError (no
# decoder for the transfer syntax), ValueError (fewer bytes than the header promises),
# AttributeError/KeyError (a required element missing), EOFError/OSError (broken fragments).
_DECODE_ERRORS = (RuntimeError, NotImplementedError, ValueError, AttributeError, KeyError, EOFError, OSError)

# pip packages that give pydicom a decoder for each compressed transfer syntax, alternatives in
# order of preference (pydicom's decoder docs list which plugin handles which syntax).
_LIBJPEG = "pip install pylibjpeg pylibjpeg-libjpeg"
_OPENJPEG = "pip install pylibjpeg pylibjpeg-openjpeg"
_GDCM = "pip install python-gdcm"
_DECODER_PACKAGES = (
    ((uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1),
     (_LIBJPEG, _GDCM)),
    ((uid.JPEGLSLossless, uid.JPEGLSNearLossless), (_LIBJPEG, "pip install pyjpegls", _GDCM)),
    ((uid.JPEG2000Lossless, uid.JPEG2000), (_OPENJPEG, _GDCM)),
    ((uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K), (_OPENJPEG,)),
    ((uid.RLELossless,), ("pip install pylibjpeg pylibjpeg-rle",)),
)


class MissingDecoderError(UserError, RuntimeError):
    """Compressed pixel data that no installed decoder reads; the message names the packages.
    A RuntimeError, as before, and a UserError: installing a package fixes it."""


@dataclass(frozen=True)
class DicomWindow:
    """Which gray values of a DICOM image map to 0-255.

    Attributes:
        mode: one of WINDOW_MODES.
            ``"file"``: the file's VOI LUT Sequence, else its Window Center/Width (the first
            pair when there are several) with its VOI LUT Function (LINEAR by default, also
            LINEAR_EXACT and SIGMOID); a file with neither falls back to ``"percentile"``.
            ``"fixed"``: ``center`` and ``width`` with DICOM's LINEAR function.
            ``"percentile"``: the image's ``percentiles`` map to 0 and 255, values beyond clip.
            ``"none"``: the image's min and max map to 0 and 255.
        center: window center for ``"fixed"``, in modality units (after the rescale, e.g. HU).
        width: window width for ``"fixed"``, same units; at least 1, as DICOM requires.
        percentiles: (low, high) in 0-100 for ``"percentile"`` and the ``"file"`` fallback.
    """

    mode: str = "file"
    center: Optional[float] = None
    width: Optional[float] = None
    percentiles: Tuple[float, float] = (0.5, 99.5)

    def __post_init__(self):
        if self.mode not in WINDOW_MODES:
            raise UserError(f"DicomWindow: unknown mode {self.mode!r}; valid modes: {', '.join(WINDOW_MODES)}")
        if self.width is not None and not self.width >= 1:
            raise UserError(f"DicomWindow: width={self.width} must be at least 1 (DICOM's LINEAR window)")
        if len(self.percentiles) != 2 or not 0 <= self.percentiles[0] < self.percentiles[1] <= 100:
            raise UserError(
                f"DicomWindow: percentiles={self.percentiles} must be (low, high) with 0 <= low < high <= 100"
            )


@dataclass(frozen=True)
class DicomReadOptions:
    """How a DICOM file becomes an image: the ``window`` to 0-255 and the ``frame`` of a
    multi-frame file (INPUT.DICOM)."""

    window: DicomWindow = DicomWindow()
    frame: int = 0

    @classmethod
    def from_config(cls, cfg) -> "DicomReadOptions":
        """INPUT.DICOM; a WINDOW_WIDTH of 0 means "not given", and so does its WINDOW_CENTER."""
        d = cfg.INPUT.DICOM
        window = DicomWindow(
            mode=d.WINDOW_MODE,
            center=d.WINDOW_CENTER if d.WINDOW_WIDTH else None,
            width=d.WINDOW_WIDTH or None,
            percentiles=tuple(d.PERCENTILES),
        )
        return cls(window=window, frame=d.FRAME)


def is_dicom(path: str) -> bool:
    """Whether ``path`` is a DICOM Part 10 file: ``b"DICM"`` at byte 128. False for a missing file."""
    if not os.path.isfile(path):
        return False
    with open(path, "rb") as f:
        f.seek(_MAGIC_OFFSET)
        return f.read(len(_MAGIC)) == _MAGIC


def read_dicom(path: str, window: DicomWindow = DicomWindow(), frame: int = 0) -> np.ndarray:
    """Read one frame of ``path`` as gray values on screen (the steps are in the module docstring).

    Args:
        path: a DICOM Part 10 file (with the 128-byte preamble and ``DICM``).
        window: how stored values map to 0-255; the default uses the file's own window.
        frame: index of the frame to read from a multi-frame file, from 0; must be 0 otherwise.

    Returns:
        (H, W) float32 array in 0-255, 0 = black on screen, whatever the Photometric
        Interpretation (MONOCHROME1 is inverted).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is not a DICOM file, is truncated or corrupt, holds no pixel data,
            ``frame`` is out of range, ``window`` is ``"fixed"`` without center and width, or
            the file's window is invalid.
        RuntimeError: the pixel data is compressed and no installed decoder can decode it; the
            message names the transfer syntax and the packages to install.
    """
    ds = _read_dataset(path)
    pixels = _decode_frame(ds, path, frame)
    gray = _to_gray(ds, pixels)
    windowed = _apply_window(ds, gray, window, path)
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":
        windowed = _OUT_MAX - windowed
    # float error in the scaling may step a hair outside 0-255
    return np.clip(windowed, 0.0, _OUT_MAX).astype(np.float32)


def _read_dataset(path: str) -> pydicom.Dataset:
    """Parse ``path``; every failure is a ValueError naming the file."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such DICOM file")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, not a DICOM file")
    if not is_dicom(path):
        raise UserError(f"{path}: not a DICOM file (no {_MAGIC!r} marker at byte {_MAGIC_OFFSET})")
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: cannot be parsed as DICOM; the file is corrupt or truncated ({e})") from e
    if "TransferSyntaxUID" not in ds.file_meta:
        raise UserError(
            f"{path}: its file meta information has no Transfer Syntax UID (0002,0010); "
            "the file is truncated or malformed"
        )
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        raise UserError(
            f"{path}: has no pixel data (7FE0,0010); it is not an image "
            f"(SOP class {ds.get('SOPClassUID', 'unknown')!s}) or the file is truncated before its pixels"
        )
    return ds


def _decode_frame(ds: pydicom.Dataset, path: str, frame: int) -> np.ndarray:
    """Decode frame ``frame``: (H, W) or (H, W, samples), in the stored dtype."""
    try:
        num_frames = int(ds.get("NumberOfFrames") or 1)
    except ValueError:  # pydicom warns about a malformed IS and keeps its text, e.g. badVR.dcm's "1A"
        raise UserError(f"{path}: Number of Frames (0028,0008) is {ds.NumberOfFrames!r}, not an integer") from None
    if not 0 <= frame < num_frames:
        raise UserError(f"{path}: frame {frame} asked, but the file has {num_frames} frame(s)")
    if num_frames > 1:
        # decode only the frame asked for, not the whole series
        ds.pixel_array_options(index=frame)
    syntax = ds.file_meta.TransferSyntaxUID
    try:
        pixels = ds.pixel_array
    except _DECODE_ERRORS as e:
        # an unknown (e.g. private) transfer syntax is one pydicom cannot decode either
        if not syntax.is_transfer_syntax or syntax.is_compressed:
            raise MissingDecoderError(
                f"{path}: cannot decode its pixel data, compressed as {syntax.name} ({syntax}). "
                f"{_install_hint(syntax)} (pydicom: {_one_line(e)})"
            ) from e
        raise UserError(
            f"{path}: cannot decode its pixel data; the file is truncated or corrupt ({_one_line(e)})"
        ) from e
    return pixels


def _one_line(error: Exception) -> str:
    """pydicom lists its decoder plugins one per line; one line reads better in a log."""
    return " ".join(str(error).split())


def _install_hint(syntax: uid.UID) -> str:
    for syntaxes, packages in _DECODER_PACKAGES:
        if syntax in syntaxes:
            return f"To decode {syntax.name}: {', or '.join(packages)}."
    return (
        f"pydicom has no decoder for {syntax.name}; convert the file to an uncompressed transfer "
        "syntax first (e.g. gdcmconv --raw, or dcmtk's dcmdjpeg)."
    )


def _to_gray(ds: pydicom.Dataset, pixels: np.ndarray) -> np.ndarray:
    """Steps 2-3: luminance of colour images, modality LUT of gray ones; (H, W) float64."""
    if ds.get("PhotometricInterpretation") == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, ds)
    if pixels.ndim == 3:
        # pydicom already turned YBR into RGB
        return pixels.astype(np.float64) @ _LUMA_WEIGHTS
    return np.asarray(apply_modality_lut(pixels, ds), dtype=np.float64)


def _apply_window(ds: pydicom.Dataset, gray: np.ndarray, window: DicomWindow, path: str) -> np.ndarray:
    """Step 4: map modality values to 0-255 (float64)."""
    if window.mode == "fixed":
        if window.center is None or window.width is None:
            raise UserError(
                f"{path}: DicomWindow mode 'fixed' needs center and width; got "
                f"center={window.center}, width={window.width}"
            )
        return _linear_window(gray, window.center, window.width)
    if window.mode == "file":
        windowed = _file_window(ds, gray, path)
        if windowed is not None:
            return windowed
        logger.debug("%s: no VOI LUT or Window Center/Width; windowing by percentiles %s", path, window.percentiles)
    if window.mode in ("file", "percentile"):
        return _scale(gray, *np.percentile(gray, window.percentiles))
    return _scale(gray, gray.min(), gray.max())


def _file_window(ds: pydicom.Dataset, gray: np.ndarray, path: str) -> Optional[np.ndarray]:
    """The file's own window as 0-255, or None when it has none.

    The VOI LUT Sequence wins over Window Center/Width, as in pydicom's ``apply_voi_lut``. The
    window functions are computed here rather than by pydicom's ``apply_windowing``, whose
    output range depends on BitsStored and the rescale; here it is 0-255 directly, and
    ``"fixed"`` shares the same formula.
    """
    if ds.get("VOILUTSequence"):
        # LUT entries are indexed by integer modality values. Clip to the LUT's input range
        # first: pydicom indexes in the LUT's own dtype, so with an 8-bit LUT a value of 256
        # would wrap around to entry 0 instead of clamping to the last entry.
        num_entries, first_mapped, bits = (int(v) for v in ds.VOILUTSequence[0].LUTDescriptor)
        num_entries = num_entries or 2**16  # 0 means 65536 entries (PS3.3 C.11.2.1.1)
        indices = np.clip(np.rint(gray), first_mapped, first_mapped + num_entries - 1).astype(np.int64)
        try:
            lut_out = apply_voi(indices, ds, index=0)
        except NotImplementedError as e:
            raise UserError(f"{path}: its VOI LUT cannot be applied ({e}); use another DicomWindow mode") from e
        return _scale(lut_out.astype(np.float64), 0.0, 2.0**bits - 1)
    center, width = _first_value(ds, "WindowCenter"), _first_value(ds, "WindowWidth")
    if center is None or width is None:
        return None
    function = str(ds.get("VOILUTFunction") or "LINEAR").upper()
    if function == "LINEAR":
        if not width >= 1:
            raise UserError(f"{path}: Window Width {width} must be at least 1 for the LINEAR VOI LUT Function")
        return _linear_window(gray, center, width)
    if not width > 0:
        raise UserError(f"{path}: Window Width {width} must be positive for the {function} VOI LUT Function")
    if function == "LINEAR_EXACT":
        return _scale(gray, center - width / 2, center + width / 2)
    if function == "SIGMOID":
        # PS3.3 C.11.2.1.3.1; far below the center exp overflows to inf, which rightly gives 0
        with np.errstate(over="ignore"):
            return _OUT_MAX / (1.0 + np.exp(-4.0 * (gray - center) / width))
    raise UserError(
        f"{path}: unknown VOI LUT Function {function!r}; DICOM defines LINEAR, LINEAR_EXACT and SIGMOID"
    )


def _first_value(ds: pydicom.Dataset, keyword: str) -> Optional[float]:
    """The first value of a multi-valued element (the default of several alternative windows).

    None when the element is absent or empty.
    """
    if keyword not in ds or ds[keyword].VM == 0:
        return None
    value = ds[keyword].value
    return float(value[0] if ds[keyword].VM > 1 else value)


def _linear_window(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """DICOM's LINEAR window (PS3.3 C.11.2.1.2.1) with output 0-255.

    Values at or below ``center - 0.5 - (width - 1) / 2`` give 0, values above
    ``center - 0.5 + (width - 1) / 2`` give 255, and values between are scaled linearly:
    about ``[center - width/2, center + width/2]`` -> ``[0, 255]``.
    """
    low = center - 0.5 - (width - 1) / 2
    if width == 1:
        # a one-value window is a threshold
        return np.where(x > low, _OUT_MAX, 0.0)
    return np.clip(((x - (center - 0.5)) / (width - 1) + 0.5) * _OUT_MAX, 0.0, _OUT_MAX)


def _scale(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """Clip ``x`` to [low, high] and map it linearly to 0-255; a constant image (high == low) gives 0."""
    if not high > low:
        return np.zeros_like(x, dtype=np.float64)
    return (np.clip(x, low, high) - low) * (_OUT_MAX / (high - low))
