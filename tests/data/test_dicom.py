import os
import re
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import JPEG2000, MPEG2MPML, JPEGLossless, JPEGLSLossless

from gn_detection.data.dicom import WINDOW_MODES, DicomWindow, is_dicom, read_dicom
from tests.helpers import write_dicom

LUMA = np.array([0.299, 0.587, 0.114])


def _testdata(name: str) -> str:
    """Path of a file pydicom ships; skip when this install lacks it (never download)."""
    path = get_testdata_file(name, read=False, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} is not installed")
    return path


def _dicom_linear(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR window with output range 0-255, branch by branch."""
    x = np.asarray(x, dtype=np.float64)
    low, high = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    middle = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.where(x <= low, 0.0, np.where(x > high, 255.0, middle))


def _percentile_scale(x: np.ndarray, low_q: float, high_q: float) -> np.ndarray:
    low, high = np.percentile(x, [low_q, high_q])
    return (np.clip(x, low, high) - low) / (high - low) * 255


def _ramp(height: int = 6, width: int = 7, seed: int = 0, high: int = 4096) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high, size=(height, width)).astype(np.uint16)


# ---- real files shipped with pydicom ----


def test_ct_slice_file_window_matches_numpy(tmp_path):
    # CT_small.dcm has a rescale (HU) but no window: give it two alternative windows, of which
    # the first is the default one
    ds = pydicom.dcmread(_testdata("CT_small.dcm"))
    assert ds.BitsAllocated == 16 and ds.PixelRepresentation == 1
    ds.WindowCenter, ds.WindowWidth = [40, -600], [400, 1500]
    path = str(tmp_path / "ct.dcm")
    ds.save_as(path)

    out = read_dicom(path)
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = _dicom_linear(hu, 40, 400)
    assert out.shape == (128, 128) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, atol=1e-3)
    assert out.min() == 0 and out.max() == 255  # the window clips at both ends of this slice

    # and pydicom's own windowing, whose output range differs, agrees once scaled to 0-255
    by_pydicom = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds, index=0)
    y_min, y_max = -(2**15) + float(ds.RescaleIntercept), 2**15 - 1 + float(ds.RescaleIntercept)
    np.testing.assert_allclose(out, (by_pydicom - y_min) / (y_max - y_min) * 255, atol=1e-3)

    # the file's own (fallback) window differs from a fixed one
    fixed = read_dicom(path, DicomWindow("fixed", center=-600, width=1500))
    np.testing.assert_allclose(fixed, _dicom_linear(hu, -600, 1500), atol=1e-3)


def test_ct_slice_without_window_falls_back_to_percentiles():
    path = _testdata("CT_small.dcm")
    ds = pydicom.dcmread(path)
    assert "WindowCenter" not in ds
    hu = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(read_dicom(path), _percentile_scale(hu, 0.5, 99.5), atol=1e-3)


def test_mr_slice_uses_its_window():
    path = _testdata("MR_small.dcm")
    ds = pydicom.dcmread(path)
    out = read_dicom(path)
    expected = _dicom_linear(ds.pixel_array, float(ds.WindowCenter), float(ds.WindowWidth))
    assert out.shape == (64, 64)
    np.testing.assert_allclose(out, expected, atol=1e-3)


def test_rle_compressed_equals_its_uncompressed_twin():
    compressed, native = _testdata("MR_small_RLE.dcm"), _testdata("MR_small.dcm")
    assert pydicom.dcmread(compressed).file_meta.TransferSyntaxUID.is_compressed
    out = read_dicom(compressed, DicomWindow("none"))
    assert out.shape == (64, 64) and out.min() == 0 and out.max() == 255
    np.testing.assert_array_equal(out, read_dicom(native, DicomWindow("none")))


def test_rgb_file_becomes_luminance():
    path = _testdata("SC_rgb_rle.dcm")
    rgb = pydicom.dcmread(path).pixel_array
    assert rgb.ndim == 3 and rgb.shape[2] == 3
    out = read_dicom(path, DicomWindow("none"))
    luma = rgb.astype(np.float64) @ LUMA
    expected = (luma - luma.min()) / (luma.max() - luma.min()) * 255
    assert out.shape == rgb.shape[:2]
    np.testing.assert_allclose(out, expected, atol=1e-3)


def test_missing_codec_names_the_package(monkeypatch):
    path = _testdata("MR_small_jpeg_ls_lossless.dcm")

    def no_decoder(self):
        raise RuntimeError("Unable to decode the pixel data as there are no pixel data decoders available")

    # as on an install without the [medical] extra (CI installs it: see the tests below)
    monkeypatch.setattr(pydicom.Dataset, "pixel_array", property(no_decoder))
    message = r"MR_small_jpeg_ls_lossless\.dcm.*JPEG-LS Lossless.*pip install pylibjpeg pylibjpeg-libjpeg"
    with pytest.raises(RuntimeError, match=message):
        read_dicom(path)


# pydicom's compressed test files and an uncompressed (or differently, losslessly compressed)
# file of the same image. Hospital archives hold mostly JPEG Lossless and JPEG 2000.
LOSSLESS_TWINS = [
    ("MR_small_jp2klossless.dcm", "MR_small.dcm"),  # JPEG 2000 Lossless, 16 bit
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),  # JPEG-LS Lossless, 16 bit
    ("MR_small_RLE.dcm", "MR_small.dcm"),  # RLE Lossless
    ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm"),  # JPEG Lossless (Process 14, SV1), RGB
    ("SC_rgb_gdcm_KY.dcm", "SC_rgb_rle.dcm"),  # JPEG 2000, RGB
]
# (lossy file, its twin, the largest mean absolute difference allowed in the 0-255 output)
LOSSY_TWINS = [
    # JPEG Extended (Process 2 and 4), 12 bit; its twin is lossy too (JPEG 2000, not lossless-only):
    # pydicom ships no uncompressed copy of this image, so the bound is looser
    ("JPGExtended.dcm", "JPEG2000.dcm", 6.0),
    ("SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_rle.dcm", 1.0),  # JPEG Baseline, YBR_FULL
    ("SC_rgb_jls_lossy_line.dcm", "SC_rgb_rle.dcm", 1.0),  # JPEG-LS Near-Lossless, RGB
]


@pytest.mark.parametrize("compressed, twin", LOSSLESS_TWINS)
def test_lossless_compressed_files_read_as_their_twin(compressed, twin):
    compressed_path, twin_path = _testdata(compressed), _testdata(twin)
    assert pydicom.dcmread(compressed_path).file_meta.TransferSyntaxUID.is_compressed
    for window in (DicomWindow("none"), DicomWindow("file")):
        np.testing.assert_array_equal(read_dicom(compressed_path, window), read_dicom(twin_path, window))


@pytest.mark.parametrize("compressed, twin, tolerance", LOSSY_TWINS)
def test_lossy_compressed_files_read_close_to_their_twin(compressed, twin, tolerance):
    # the same fixed range for both, so that a few lossy extremes do not rescale everything
    stored = pydicom.dcmread(_testdata(twin)).pixel_array
    window = DicomWindow("fixed", center=(float(stored.min()) + float(stored.max())) / 2,
                         width=float(stored.max()) - float(stored.min()))
    lossy, exact = read_dicom(_testdata(compressed), window), read_dicom(_testdata(twin), window)
    assert lossy.shape == exact.shape
    difference = np.abs(lossy.astype(np.float64) - exact)
    assert 0 < difference.mean() <= tolerance, difference.mean()  # lossy, yet the same image


@pytest.mark.parametrize(
    "syntax, package",
    [(JPEGLSLossless, "pyjpegls"), (JPEG2000, "pylibjpeg-openjpeg"), (JPEGLossless, "pylibjpeg-libjpeg")],
)
def test_undecodable_compressed_data_names_syntax_and_package(tmp_path, syntax, package):
    # a compressed transfer syntax with junk fragments: either no decoder is installed or the
    # installed one fails; both must name the syntax and a package that decodes it
    path = write_dicom(tmp_path / "junk.dcm", _ramp())
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([b"\xff\xd8 not an image \xff\xd9" * 4])
    ds["PixelData"].VR = "OB"
    ds.save_as(path)
    with pytest.raises(RuntimeError, match=rf"junk\.dcm.*{re.escape(syntax.name)}.*pip install[^(]*{package}"):
        read_dicom(path)


@pytest.mark.parametrize("syntax", [MPEG2MPML, "1.2.3.4.5"])
def test_syntax_pydicom_cannot_decode_says_convert(tmp_path, syntax):
    path = write_dicom(tmp_path / "video.dcm", _ramp())
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([b"\0" * 16])
    ds["PixelData"].VR = "OB"
    ds.save_as(path)
    with pytest.raises(RuntimeError, match=r"video\.dcm.*no decoder.*convert the file"):
        read_dicom(path)


# ---- files written here ----


def test_is_dicom(tmp_path):
    assert is_dicom(write_dicom(tmp_path / "a.dcm", _ramp()))
    (tmp_path / "a.txt").write_text("x" * 200)
    assert not is_dicom(str(tmp_path / "a.txt"))
    (tmp_path / "short").write_bytes(b"\0" * 130)
    assert not is_dicom(str(tmp_path / "short"))
    assert not is_dicom(str(tmp_path / "missing.dcm"))


def test_rescale_and_fixed_window_exact_values(tmp_path):
    # HU = 2 p - 1024; the window center 0.5, width 511 maps HU x to x / 2 + 127.5 in (-255, 255]
    pixels = np.array([[0, 384, 385, 400], [512, 600, 639, 1000]], dtype=np.uint16)
    path = write_dicom(tmp_path / "r.dcm", pixels, RescaleSlope=2, RescaleIntercept=-1024)
    out = read_dicom(path, DicomWindow("fixed", center=0.5, width=511))
    expected = np.array([[0.0, 0.0, 0.5, 15.5], [127.5, 215.5, 254.5, 255.0]])
    np.testing.assert_allclose(out, expected, atol=1e-4)
    np.testing.assert_allclose(out, _dicom_linear(2.0 * pixels - 1024, 0.5, 511), atol=1e-4)


def test_monochrome1_is_inverted_after_windowing(tmp_path):
    pixels = _ramp(seed=1)
    window = DicomWindow("fixed", center=2000, width=3000)
    mono2 = read_dicom(write_dicom(tmp_path / "m2.dcm", pixels), window)
    mono1 = read_dicom(write_dicom(tmp_path / "m1.dcm", pixels, photometric="MONOCHROME1"), window)
    np.testing.assert_allclose(mono2, _dicom_linear(pixels, 2000, 3000), atol=1e-3)
    np.testing.assert_allclose(mono1, 255 - _dicom_linear(pixels, 2000, 3000), atol=1e-3)
    # the brightest stored value is black on screen
    assert mono1.flat[np.argmax(pixels)] == 0


def test_percentile_mode(tmp_path):
    pixels = _ramp(20, 30, seed=2)
    out = read_dicom(write_dicom(tmp_path / "p.dcm", pixels), DicomWindow("percentile", percentiles=(5, 95)))
    np.testing.assert_allclose(out, _percentile_scale(pixels.astype(np.float64), 5, 95), atol=1e-3)
    assert out.min() == 0 and out.max() == 255


def test_file_mode_without_window_uses_percentiles(tmp_path):
    pixels = _ramp(20, 30, seed=3)
    path = write_dicom(tmp_path / "f.dcm", pixels)
    np.testing.assert_allclose(read_dicom(path), _percentile_scale(pixels.astype(np.float64), 0.5, 99.5), atol=1e-3)
    custom = read_dicom(path, DicomWindow("file", percentiles=(10, 90)))
    np.testing.assert_allclose(custom, _percentile_scale(pixels.astype(np.float64), 10, 90), atol=1e-3)


def test_none_mode_is_min_max(tmp_path):
    pixels = np.array([[100, 200], [300, 500]], dtype=np.uint16)
    out = read_dicom(write_dicom(tmp_path / "n.dcm", pixels), DicomWindow("none"))
    np.testing.assert_allclose(out, [[0, 63.75], [127.5, 255]], atol=1e-4)


def test_file_window_functions(tmp_path):
    pixels = _ramp(seed=4)
    linear = write_dicom(tmp_path / "lin.dcm", pixels, WindowCenter=[1500, 3000], WindowWidth=[2000, 100])
    np.testing.assert_allclose(read_dicom(linear), _dicom_linear(pixels, 1500, 2000), atol=1e-3)
    # 0 is so far below the center that exp(-4 (x - c) / w) overflows
    steep = np.array([[0, 3990, 3999], [4000, 4010, 4095]], dtype=np.uint16)
    sigmoid = write_dicom(tmp_path / "sig.dcm", steep, WindowCenter=4000, WindowWidth=20, VOILUTFunction="SIGMOID")
    expected = 255 / (1 + np.exp(-4 * (steep - 4000.0).clip(-500, 500) / 20))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # exp overflowing far below the center must not warn
        np.testing.assert_allclose(read_dicom(sigmoid), expected, atol=1e-3)
    exact = write_dicom(tmp_path / "exact.dcm", pixels, WindowCenter=1500, WindowWidth=2000, VOILUTFunction="LINEAR_EXACT")
    np.testing.assert_allclose(read_dicom(exact), np.clip((pixels - 500.0) / 2000, 0, 1) * 255, atol=1e-3)


def test_voi_lut_sequence_wins_over_window(tmp_path):
    lut = (255 - np.arange(256)).astype(np.uint16)  # an inverting 8-bit LUT
    item = Dataset()
    item.LUTDescriptor = [256, 0, 8]
    item.add_new("LUTData", "US", lut.tolist())  # LUTData's VR is ambiguous (US or OW)
    pixels = np.array([[0, 10, 100], [255, 256, 4000]], dtype=np.uint16)
    path = write_dicom(tmp_path / "lut.dcm", pixels, VOILUTSequence=[item], WindowCenter=100, WindowWidth=50)
    np.testing.assert_allclose(read_dicom(path), lut[np.clip(pixels, 0, 255)], atol=1e-4)

    item.LUTDescriptor = [256, 0, 9]  # 9 bits per entry: not allowed by PS3.3 C.11.2.1.1
    bad = write_dicom(tmp_path / "bad_lut.dcm", pixels, VOILUTSequence=[item])
    with pytest.raises(ValueError, match=r"bad_lut\.dcm.*VOI LUT"):
        read_dicom(bad)


def test_multi_frame_picks_the_frame(tmp_path):
    frames = np.stack([_ramp(seed=s) for s in range(3)])
    path = write_dicom(tmp_path / "mf.dcm", frames)
    window = DicomWindow("fixed", center=2048, width=4096)
    second = read_dicom(path, window, frame=1)
    assert second.shape == (6, 7)
    np.testing.assert_allclose(second, _dicom_linear(frames[1], 2048, 4096), atol=1e-3)
    assert not np.allclose(second, read_dicom(path, window, frame=0))
    for frame in (3, -1):
        with pytest.raises(ValueError, match=rf"mf\.dcm.*frame {frame}.*3 frame"):
            read_dicom(path, window, frame=frame)


def test_single_frame_rejects_other_frames(tmp_path):
    with pytest.raises(ValueError, match=r"one\.dcm.*frame 1.*1 frame"):
        read_dicom(write_dicom(tmp_path / "one.dcm", _ramp()), frame=1)


def test_eight_bit(tmp_path):
    pixels = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    out = read_dicom(write_dicom(tmp_path / "u8.dcm", pixels), DicomWindow("fixed", center=128, width=256))
    np.testing.assert_allclose(out, _dicom_linear(pixels, 128, 256), atol=1e-3)


def test_twelve_bit_ignores_unused_high_bits(tmp_path):
    pixels = _ramp(seed=5, high=4096)
    # old modalities keep overlays in the 4 unused bits: they are not pixel values
    noisy = pixels | np.uint16(0xA000)
    window = DicomWindow("fixed", center=2048, width=4096)
    out = read_dicom(write_dicom(tmp_path / "u12.dcm", noisy, bits_stored=12), window)
    np.testing.assert_allclose(out, _dicom_linear(pixels, 2048, 4096), atol=1e-3)


def test_signed_data(tmp_path):
    pixels = np.array([[-1000, -200, 0], [5, 300, 1000]], dtype=np.int16)
    window = DicomWindow("fixed", center=0.5, width=511)
    out16 = read_dicom(write_dicom(tmp_path / "s16.dcm", pixels), window)
    np.testing.assert_allclose(out16, [[0, 27.5, 127.5], [130, 255, 255]], atol=1e-4)
    # 12-bit two's complement in 16 bits without sign extension: -200 is stored as 0x0F38
    stored = (pixels.astype(np.int32) & 0x0FFF).astype(np.uint16).view(np.int16)
    assert stored[0, 1] == 0x0F38
    out12 = read_dicom(write_dicom(tmp_path / "s12.dcm", stored, bits_stored=12), window)
    np.testing.assert_allclose(out12, out16, atol=1e-4)


# ---- errors ----


def test_no_pixel_data(tmp_path):
    path = write_dicom(tmp_path / "nopix.dcm", _ramp())
    ds = pydicom.dcmread(path)
    del ds.PixelData
    ds.save_as(path)
    with pytest.raises(ValueError, match=r"nopix\.dcm.*no pixel data"):
        read_dicom(path)


def test_truncated_file(tmp_path):
    whole = open(write_dicom(tmp_path / "whole.dcm", _ramp(60, 60)), "rb").read()
    (tmp_path / "half.dcm").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=r"half\.dcm.*truncated"):
        read_dicom(str(tmp_path / "half.dcm"))
    # cut inside the file meta: no transfer syntax left
    (tmp_path / "head.dcm").write_bytes(whole[:150])
    with pytest.raises(ValueError, match=r"head\.dcm.*truncated"):
        read_dicom(str(tmp_path / "head.dcm"))


def test_truncated_real_file():
    with pytest.raises(ValueError, match=r"MR_truncated\.dcm.*truncated"):
        read_dicom(_testdata("MR_truncated.dcm"))


def test_malformed_element_names_the_file():
    # badVR.dcm's Number of Frames is the IS "1A"; pydicom warns and keeps the text
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match=r"badVR\.dcm: Number of Frames \(0028,0008\) is '1A'"):
            read_dicom(_testdata("badVR.dcm"))


def test_every_pydicom_test_file_reads_or_names_itself():
    folder = os.path.dirname(_testdata("CT_small.dcm"))
    names = sorted(n for n in os.listdir(folder) if n.endswith(".dcm"))
    failures = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            try:
                read_dicom(os.path.join(folder, name))
            except (ValueError, RuntimeError) as e:
                failures[name] = str(e)
    assert len(names) > 50 and 0 < len(failures) < len(names)
    assert {name: message for name, message in failures.items() if name not in message} == {}


def test_not_dicom(tmp_path):
    (tmp_path / "notes.dcm").write_text("not an image\n" * 40)
    with pytest.raises(ValueError, match=r"notes\.dcm.*not a DICOM file"):
        read_dicom(str(tmp_path / "notes.dcm"))
    with pytest.raises(FileNotFoundError, match="nope.dcm"):
        read_dicom(str(tmp_path / "nope.dcm"))


def test_fixed_window_needs_center_and_width(tmp_path):
    path = write_dicom(tmp_path / "fx.dcm", _ramp())
    with pytest.raises(ValueError, match=r"fx\.dcm.*center and width"):
        read_dicom(path, DicomWindow("fixed", center=10))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mode="auto"), "'auto'.*" + ", ".join(WINDOW_MODES)),
        (dict(mode="fixed", center=0, width=0.5), "width=0.5"),
        (dict(mode="percentile", percentiles=(90, 10)), r"percentiles=\(90, 10\)"),
    ],
)
def test_invalid_window(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DicomWindow(**kwargs)
