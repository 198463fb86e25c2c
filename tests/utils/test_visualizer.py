import os

import numpy as np
import pytest
import torch
from PIL import Image, ImageFont

from gn_detection.utils.visualizer import PALETTE, draw_instances, save_png

H, W = 120, 160
CLASS_NAMES = ["person", "dog"]
# two instances; each mask is a rectangle 5 px inside its box
BOXES = np.array([[20, 40, 60, 80], [90, 50, 140, 100]], dtype=np.float32)
LABELS = np.array([1, 2])
SCORES = np.array([0.93, 0.5])


def make_image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), dtype=np.uint8)


def make_masks() -> np.ndarray:
    masks = np.zeros((len(BOXES), H, W), dtype=bool)
    for mask, (x0, y0, x1, y1) in zip(masks, BOXES.astype(int)):
        mask[y0 + 5 : y1 - 5, x0 + 5 : x1 - 5] = True
    return masks


def far_from_everything() -> np.ndarray:
    """Pixels left of every box and caption, or below every box."""
    far = np.zeros((H, W), dtype=bool)
    far[:, :15] = True
    far[105:, :] = True
    return far


def test_masks_blend_towards_instance_colour_and_far_pixels_stay():
    image = make_image()
    before = image.copy()
    masks = make_masks()
    out = draw_instances(
        image, boxes=BOXES, labels=LABELS, class_names=CLASS_NAMES, scores=SCORES, masks=masks
    )

    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(image, before)
    assert not np.shares_memory(out, image)
    far = far_from_everything()
    np.testing.assert_array_equal(out[far], image[far])

    for i, (x0, y0, x1, y1) in enumerate(BOXES.astype(int)):
        color = np.array(PALETTE[i], dtype=np.float64)
        inner = (slice(y0 + 7, y1 - 7), slice(x0 + 7, x1 - 7))  # inside the mask, off its contour
        expected = np.round(0.5 * image[inner] + 0.5 * color)
        np.testing.assert_allclose(out[inner], expected, atol=1)
        dist_before = np.abs(image[inner] - color).sum(axis=-1)
        dist_after = np.abs(out[inner].astype(np.float64) - color).sum(axis=-1)
        assert (dist_after < dist_before)[dist_before > 4].all()


def test_mask_alpha_weights_the_colour():
    image = make_image()
    masks = make_masks()
    args = dict(boxes=BOXES, labels=LABELS, class_names=CLASS_NAMES, masks=masks)
    opaque = draw_instances(image, **args, mask_alpha=1.0)
    clear = draw_instances(image, **args, mask_alpha=0.0)
    np.testing.assert_array_equal(opaque[60, 40], PALETTE[0])
    np.testing.assert_array_equal(clear[60, 40], image[60, 40])


def test_mask_contour_is_a_darker_instance_colour():
    image = make_image()
    out = draw_instances(image, boxes=BOXES, labels=LABELS, class_names=CLASS_NAMES, masks=make_masks())
    color = np.array(PALETTE[0], dtype=np.float64)
    # mask 0 spans rows 45..74, cols 25..54: (45, 40) is on its top edge, (46, 40) just inside
    for y, x in [(45, 40), (74, 40), (60, 25), (60, 54)]:
        contour = out[y, x].astype(np.float64)
        assert contour.sum() < color.sum()
        np.testing.assert_allclose(contour / contour.max(), color / color.max(), atol=0.03)
    assert not np.array_equal(out[46, 40], out[45, 40])


def test_box_outline_is_two_pixels_of_instance_colour():
    image = make_image()
    out = draw_instances(image, boxes=BOXES, labels=LABELS, class_names=CLASS_NAMES, scores=SCORES)
    for i, (x0, y0, x1, y1) in enumerate(BOXES.astype(int)):
        mid_x, mid_y = (x0 + x1) // 2, (y0 + y1) // 2
        for y, x in [(y0, mid_x), (y0 + 1, mid_x), (y1 - 1, mid_x), (y1 - 2, mid_x),
                     (mid_y, x0), (mid_y, x0 + 1), (mid_y, x1 - 1), (mid_y, x1 - 2)]:
            np.testing.assert_array_equal(out[y, x], PALETTE[i], err_msg=f"instance {i} at ({y}, {x})")
        # the third pixel in is the image again
        np.testing.assert_array_equal(out[y0 + 2, mid_x], image[y0 + 2, mid_x])
        np.testing.assert_array_equal(out[mid_y, x0 + 2], image[mid_y, x0 + 2])
    assert PALETTE[0] != PALETTE[1]


def test_ground_truth_without_masks_or_scores():
    image = make_image()
    out = draw_instances(image, boxes=BOXES, labels=LABELS, class_names=CLASS_NAMES)
    x0, y0, x1, y1 = BOXES[0].astype(int)
    inside = (slice(y0 + 3, y1 - 3), slice(x0 + 3, x1 - 3))
    np.testing.assert_array_equal(out[inside], image[inside])
    np.testing.assert_array_equal(out[y0, x0 + 5], PALETTE[0])
    far = far_from_everything()
    np.testing.assert_array_equal(out[far], image[far])

    scored = draw_instances(image, boxes=BOXES, labels=LABELS, class_names=CLASS_NAMES, scores=SCORES)
    assert not np.array_equal(out[:y0, x0:x1], scored[:y0, x0:x1])  # "person" vs "person 93%"


def test_no_instances_returns_an_unchanged_copy():
    image = make_image()
    out = draw_instances(image, boxes=np.zeros((0, 4)), labels=np.zeros(0, dtype=np.int64),
                         class_names=CLASS_NAMES, scores=np.zeros(0), masks=np.zeros((0, H, W), dtype=bool))
    np.testing.assert_array_equal(out, image)
    assert not np.shares_memory(out, image)
    out = draw_instances(
        torch.from_numpy(image), boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.int64),
        class_names=CLASS_NAMES,
    )
    np.testing.assert_array_equal(out, image)


def test_caption_shows_the_class_name():
    image = make_image()
    box = np.array([[30, 40, 100, 90]])
    cat = draw_instances(image, boxes=box, labels=[1], class_names=["cat", "elephant"])
    elephant = draw_instances(image, boxes=box, labels=[2], class_names=["cat", "elephant"])
    # the caption sits above the box; the rest of the picture is the same
    assert not np.array_equal(cat[:40, 30:100], elephant[:40, 30:100])
    np.testing.assert_array_equal(cat[40:], elephant[40:])
    np.testing.assert_array_equal(cat[:40, :30], image[:40, :30])


def test_caption_stays_inside_the_image():
    image = make_image()
    # a box in the top-right corner: no room above it nor to its right
    out = draw_instances(image, boxes=np.array([[150, 0, 160, 10]]), labels=[1], class_names=["elephant"])
    changed_columns = np.nonzero((out != image).any(axis=(0, 2)))[0]
    text_width = ImageFont.load_default().getlength("elephant")
    assert changed_columns.min() <= W - text_width
    assert changed_columns.max() == W - 1


def test_gray_and_float_images_become_rgb_uint8():
    gray = np.full((H, W), 100.4)
    out = draw_instances(gray, boxes=BOXES, labels=LABELS, class_names=CLASS_NAMES)
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out[far_from_everything()], 100)

    one_channel = np.full((H, W, 1), 7, dtype=np.uint8)
    out = draw_instances(one_channel, boxes=BOXES, labels=LABELS, class_names=CLASS_NAMES)
    np.testing.assert_array_equal(out[far_from_everything()], 7)

    over = np.full((H, W, 3), 300.0)
    out = draw_instances(over, boxes=BOXES[:0], labels=LABELS[:0], class_names=CLASS_NAMES)
    np.testing.assert_array_equal(out, 255)


def test_torch_inputs_and_float_masks_match_numpy():
    image = make_image()
    masks = make_masks()
    expected = draw_instances(
        image, boxes=BOXES, labels=LABELS, class_names=CLASS_NAMES, scores=SCORES, masks=masks
    )
    # probabilities, (R, 1, H, W): 0.6 inside the mask, 0.4 elsewhere
    probs = torch.from_numpy(np.where(masks, 0.6, 0.4).astype(np.float32))[:, None]
    out = draw_instances(
        torch.from_numpy(image), boxes=torch.from_numpy(BOXES), labels=torch.from_numpy(LABELS),
        class_names=CLASS_NAMES, scores=torch.from_numpy(SCORES), masks=probs,
    )
    np.testing.assert_array_equal(out, expected)


def test_label_outside_classes_is_an_error():
    for bad in (0, 3):
        with pytest.raises(ValueError, match=rf"label {bad} .*K=2"):
            draw_instances(make_image(), boxes=BOXES, labels=[1, bad], class_names=CLASS_NAMES)


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("labels", dict(labels=[1, 2, 1])),
        ("scores", dict(scores=[0.5, 0.6, 0.7])),
        ("masks", dict(masks=np.zeros((3, H, W), dtype=bool))),
    ],
)
def test_mismatched_lengths_are_an_error(name, kwargs):
    args = dict(boxes=BOXES, labels=LABELS, class_names=CLASS_NAMES) | kwargs
    with pytest.raises(ValueError, match=rf"{name} has 3 entries but boxes has 2"):
        draw_instances(make_image(), **args)


def test_mask_size_must_match_image():
    with pytest.raises(ValueError, match=r"masks are 60x80 but the image is 120x160"):
        draw_instances(make_image(), boxes=BOXES, labels=LABELS, class_names=CLASS_NAMES,
                       masks=np.zeros((2, 60, 80), dtype=bool))


def test_save_png_round_trip(tmp_path):
    image = make_image()
    path = tmp_path / "new" / "folder" / "vis.png"
    save_png(image, str(path))
    with Image.open(path) as png:
        assert png.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(png), image)
    assert os.listdir(path.parent) == ["vis.png"]  # no temporary file left behind

    save_png(np.zeros_like(image), str(path))  # replaces the old file
    with Image.open(path) as png:
        np.testing.assert_array_equal(np.asarray(png), 0)
