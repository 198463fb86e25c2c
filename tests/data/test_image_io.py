import warnings

import numpy as np
import pytest
from PIL import Image

from gn_detection.data.image_io import IMAGE_FORMATS, read_image


def _rgb_pixels(height: int = 4, width: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601-2 luma, as PIL documents for convert("L"), in float64."""
    rgb = rgb.astype(np.float64)
    return rgb[..., 0] * 299 / 1000 + rgb[..., 1] * 587 / 1000 + rgb[..., 2] * 114 / 1000


def test_rgb_exact_values_and_bgr_reversal(tmp_path):
    pixels = _rgb_pixels()
    path = str(tmp_path / "rgb.png")
    Image.fromarray(pixels, "RGB").save(path)

    rgb = read_image(path)
    assert rgb.dtype == np.float32 and rgb.shape == (4, 5, 3)
    np.testing.assert_array_equal(rgb, pixels.astype(np.float32))

    bgr = read_image(path, format="BGR")
    np.testing.assert_array_equal(bgr[..., 0], pixels[..., 2])
    np.testing.assert_array_equal(bgr[..., 2], pixels[..., 0])
    assert bgr.flags["C_CONTIGUOUS"]


def test_rgb_to_luminance(tmp_path):
    pixels = _rgb_pixels(seed=1)
    path = str(tmp_path / "rgb.png")
    Image.fromarray(pixels, "RGB").save(path)

    gray = read_image(path, format="L")
    assert gray.shape == (4, 5, 1) and gray.dtype == np.float32
    np.testing.assert_allclose(gray[..., 0], _luma(pixels), atol=1e-3)


def test_grayscale_gives_equal_channels(tmp_path):
    pixels = np.arange(20, dtype=np.uint8).reshape(4, 5) * 12
    path = str(tmp_path / "gray.png")
    Image.fromarray(pixels, "L").save(path)

    rgb = read_image(path, format="RGB")
    assert rgb.shape == (4, 5, 3)
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], pixels)
    gray = read_image(path, format="L")
    assert gray.shape == (4, 5, 1)
    np.testing.assert_array_equal(gray[..., 0], pixels)


def test_rgba_drops_alpha(tmp_path):
    pixels = _rgb_pixels(seed=2)
    alpha = np.full((4, 5, 1), 7, dtype=np.uint8)  # nearly transparent: must not darken the RGB
    path = str(tmp_path / "rgba.png")
    Image.fromarray(np.concatenate([pixels, alpha], axis=2), "RGBA").save(path)

    np.testing.assert_array_equal(read_image(path), pixels)


def test_gray_alpha_drops_alpha(tmp_path):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
    path = str(tmp_path / "la.png")
    Image.fromarray(np.stack([gray, np.full_like(gray, 3)], axis=2), "LA").save(path)

    rgb = read_image(path)
    np.testing.assert_array_equal(rgb, np.repeat(gray[..., None], 3, axis=2))


def test_palette_converted_to_rgb(tmp_path):
    palette = [(10, 20, 30), (200, 100, 50), (0, 255, 7)]
    indices = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    image = Image.fromarray(indices, "P")
    image.putpalette([v for color in palette for v in color])
    path = str(tmp_path / "palette.png")
    image.save(path)

    expected = np.array([[palette[i] for i in row] for row in indices], dtype=np.float32)
    np.testing.assert_array_equal(read_image(path), expected)


def test_palette_with_transparency_drops_alpha_without_warning(tmp_path):
    image = Image.fromarray(np.array([[0, 1, 2]], dtype=np.uint8), "P")
    image.putpalette([10, 20, 30, 200, 100, 50, 0, 255, 7])
    image.info["transparency"] = bytes([0, 255, 128])
    path = str(tmp_path / "palette_alpha.png")
    image.save(path)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # PIL warns when such a palette goes straight to RGB
        rgb = read_image(path)
    np.testing.assert_array_equal(rgb[0], [[10, 20, 30], [200, 100, 50], [0, 255, 7]])


def test_one_bit_image(tmp_path):
    bits = np.array([[0, 1, 1], [1, 0, 0]], dtype=bool)
    path = str(tmp_path / "bits.png")
    Image.fromarray(bits).save(path)
    assert Image.open(path).mode == "1"

    gray = read_image(path, format="L")
    np.testing.assert_array_equal(gray[..., 0], bits * 255.0)


def test_cmyk_image(tmp_path):
    cmyk = np.array([[[0, 0, 0, 0], [255, 0, 0, 0], [0, 0, 0, 255]]], dtype=np.uint8)
    path = str(tmp_path / "cmyk.tif")
    Image.fromarray(cmyk, "CMYK").save(path)

    rgb = read_image(path)
    # white, cyan (no red), black
    np.testing.assert_array_equal(rgb[0], [[255, 255, 255], [0, 255, 255], [0, 0, 0]])


SIXTEEN_BIT = np.array([[0, 257, 65535, 300]], dtype=np.uint16)
SIXTEEN_BIT_SCALED = SIXTEEN_BIT.astype(np.float64) * 255 / 65535


@pytest.mark.parametrize(
    "name, mode",
    [("gray16.png", "I;16"), ("gray16.tif", "I;16"), ("gray16be.tif", "I;16B")],
)
def test_sixteen_bit_gray_keeps_precision(tmp_path, name, mode):
    path = str(tmp_path / name)
    raw = SIXTEEN_BIT.astype(">u2" if mode == "I;16B" else "<u2").tobytes()
    Image.frombytes(mode, (SIXTEEN_BIT.shape[1], SIXTEEN_BIT.shape[0]), raw).save(path)
    assert Image.open(path).mode == mode

    gray = read_image(path, format="L")[..., 0]
    np.testing.assert_allclose(gray, SIXTEEN_BIT_SCALED, rtol=1e-6)
    np.testing.assert_array_equal(gray[0, :3], [0.0, 1.0, 255.0])
    assert abs(gray[0, 3] - 300 * 255 / 65535) < 1e-5 and gray[0, 3] != round(gray[0, 3])
    rgb = read_image(path, format="RGB")
    for c in range(3):
        np.testing.assert_array_equal(rgb[..., c], gray)


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((4, 6, 3), dtype=np.uint8)  # stored: 4 high, 6 wide
    pixels[0, 0] = (255, 0, 0)  # mark the stored top-left
    image = Image.fromarray(pixels, "RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation 6: the viewer rotates 90 degrees clockwise
    path = str(tmp_path / "rotated.png")
    image.save(path, exif=exif)

    out = read_image(path)
    assert out.shape == (6, 4, 3)
    # Turned clockwise, the stored top-left corner ends at the top-right.
    expected = np.rot90(pixels, k=-1)
    np.testing.assert_array_equal(out, expected)
    assert tuple(out[0, 3]) == (255, 0, 0)


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.jpg")
    with pytest.raises(FileNotFoundError, match="nope.jpg"):
        read_image(path)


def test_truncated_file(tmp_path):
    full = tmp_path / "full.png"
    Image.fromarray(_rgb_pixels(64, 64, seed=3), "RGB").save(full)
    data = full.read_bytes()
    truncated = tmp_path / "half.png"
    truncated.write_bytes(data[: len(data) // 2])

    with pytest.raises(ValueError, match=r"half\.png.*corrupt or truncated"):
        read_image(str(truncated))


def test_non_image_file(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels")
    with pytest.raises(ValueError, match=r"notes\.jpg.*corrupt or truncated"):
        read_image(str(path))


def test_unknown_format(tmp_path):
    path = str(tmp_path / "rgb.png")
    Image.fromarray(_rgb_pixels(), "RGB").save(path)
    with pytest.raises(ValueError, match=r"'YUV'.*RGB, BGR, L"):
        read_image(path, format="YUV")
    assert IMAGE_FORMATS == ("RGB", "BGR", "L")
