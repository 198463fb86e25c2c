"""Classification sources: each loaded, split and standardized as a NumPy recomputation says, and
each malformed input refused with a message naming the file and what was wrong."""
import json
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from gn_detection.data.catalog import get_dataset_spec
from gn_detection.datasets import SHAPE_CLASSES
from gn_detection.datasets.classification import crops_of, load_classification_data
from gn_detection.utils.errors import UserError


def _standardized(train: np.ndarray, val: np.ndarray):
    """The reference: both splits standardized per channel (axis 1) with the training stats."""
    mean = train.mean(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    std = train.std(axis=(0, 2, 3), keepdims=True, dtype=np.float64)
    return (train - mean) / std, (val - mean) / std


def _assert_equal(actual: torch.Tensor, expected: np.ndarray):
    torch.testing.assert_close(actual, torch.from_numpy(np.asarray(expected, dtype=np.float32)), atol=1e-4, rtol=1e-4)


# --- scikit-learn's digits -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_classification_data("digits")


def test_digits_are_split_stratified_and_resized(digits):
    assert digits.train_images.shape == (1437, 1, 32, 32) and digits.val_images.shape == (360, 1, 32, 32)
    assert digits.train_images.dtype == torch.float32 and digits.train_labels.dtype == torch.int64
    assert digits.classes == [str(k) for k in range(10)]
    counts = np.bincount(load_digits().target, minlength=10)
    val_counts = np.bincount(digits.val_labels.numpy(), minlength=10)
    np.testing.assert_array_equal(np.bincount(digits.train_labels.numpy(), minlength=10) + val_counts, counts)
    assert np.all(np.abs(val_counts - 0.2 * counts) <= 1)  # stratified: each class held out in proportion


def test_digits_train_stats_standardize_both_splits(digits):
    images = digits.train_images
    torch.testing.assert_close(images.mean(dim=(0, 2, 3)), torch.zeros(1), atol=1e-4, rtol=0)
    torch.testing.assert_close(images.std(dim=(0, 2, 3), unbiased=False), torch.ones(1), atol=1e-4, rtol=0)
    # At 8x8 nothing is resized: against the raw digits, split as the brief prescribes, in NumPy.
    raw = load_digits()
    train, val = train_test_split(np.arange(len(raw.target)), test_size=0.2, random_state=0, stratify=raw.target)
    images = raw.images[:, None].astype(np.float64)
    expected_train, expected_val = _standardized(images[train], images[val])
    data = load_classification_data("digits", image_size=8)
    _assert_equal(data.train_images, expected_train)
    _assert_equal(data.val_images, expected_val)
    np.testing.assert_array_equal(data.val_labels.numpy(), raw.target[val])
    assert abs(float(data.val_images.mean())) > 1e-3  # not re-standardized with its own stats


def test_the_digits_split_is_deterministic_and_follows_the_seed(digits):
    again, other = load_classification_data("digits"), load_classification_data("digits", seed=1)
    assert torch.equal(again.val_images, digits.val_images) and torch.equal(again.val_labels, digits.val_labels)
    assert not torch.equal(other.val_labels, digits.val_labels)


def test_digits_without_scikit_learn_say_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)  # makes `import sklearn...` fail
    with pytest.raises(UserError, match=r"pip install 'gn_detection\[studies\]'"):
        load_classification_data("digits")


# --- ImageFolder -----------------------------------------------------------------------------------

COLOURS = {"cat": (200, 30, 60), "dog": (20, 90, 240)}


def _write_images(folder, counts):
    """``counts[class]`` solid-colour PNGs per class of assorted sizes; a solid colour stays itself
    when resized, so the expected pixels are known."""
    for name, count in counts.items():
        os.makedirs(folder / name)
        for k in range(count):
            colour = tuple(c + 5 * k for c in COLOURS.get(name, (128, 128, 128)))
            Image.new("RGB", (10 + k, 12), colour).save(folder / name / f"{k}.png")


@pytest.mark.parametrize("val_name", ["val", "test"])
def test_an_image_folder_with_train_and_val(tmp_path, val_name):
    _write_images(tmp_path / "train", {"cat": 3, "dog": 2})
    _write_images(tmp_path / val_name, {"cat": 1, "dog": 2})
    data = load_classification_data(str(tmp_path), image_size=6)
    assert data.classes == ["cat", "dog"] and str(tmp_path / val_name) in data.source
    assert data.train_labels.tolist() == [0, 0, 0, 1, 1] and data.val_labels.tolist() == [0, 1, 1]
    colour = lambda name, k: np.array([c + 5 * k for c in COLOURS[name]], dtype=np.float64) / 255  # noqa: E731
    raw_train = np.stack([colour("cat", 0), colour("cat", 1), colour("cat", 2), colour("dog", 0), colour("dog", 1)])
    raw_val = np.stack([colour("cat", 0), colour("dog", 0), colour("dog", 1)])
    solid = lambda colours: np.broadcast_to(colours[:, :, None, None], (len(colours), 3, 6, 6))  # noqa: E731
    expected_train, expected_val = _standardized(solid(raw_train), solid(raw_val))
    _assert_equal(data.train_images, expected_train)
    _assert_equal(data.val_images, expected_val)


def test_an_image_folder_without_splits_is_split_stratified(tmp_path):
    _write_images(tmp_path, {"cat": 5, "dog": 5})
    data = load_classification_data(str(tmp_path), image_size=4, val_fraction=0.4)
    assert data.train_images.shape == (6, 3, 4, 4) and data.val_images.shape == (4, 3, 4, 4)
    assert sorted(data.val_labels.tolist()) == [0, 0, 1, 1] and sorted(data.train_labels.tolist()) == [0, 0, 0, 1, 1, 1]
    # red over blue tells the class: cat is red, dog blue, in both splits
    for images, labels in ((data.train_images, data.train_labels), (data.val_images, data.val_labels)):
        red_minus_blue = images[:, 0].mean(dim=(1, 2)) - images[:, 2].mean(dim=(1, 2))
        assert ((red_minus_blue > 0) == (labels == 0)).all()


def test_image_folders_with_different_classes_are_refused(tmp_path):
    _write_images(tmp_path / "train", {"cat": 2, "dog": 2})
    _write_images(tmp_path / "val", {"cat": 1, "bird": 1})
    with pytest.raises(UserError) as error:
        load_classification_data(str(tmp_path))
    message = str(error.value)
    assert str(tmp_path / "train") in message and str(tmp_path / "val") in message
    assert "['dog']" in message and "['bird']" in message


# --- .npz files ------------------------------------------------------------------------------------


def test_a_medmnist_file_with_gray_images_and_n_by_1_labels(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {f"{split}_images": rng.integers(0, 256, (n, 5, 5), dtype=np.uint8)
              for split, n in (("train", 6), ("val", 4), ("test", 3))}
    arrays.update({f"{split}_labels": rng.integers(0, 3, (n, 1), dtype=np.uint8)
                   for split, n in (("train", 6), ("val", 4), ("test", 3))})
    arrays["train_labels"][:3, 0] = [0, 1, 2]  # every class present
    np.savez(tmp_path / "organ.npz", **arrays)
    data = load_classification_data(str(tmp_path / "organ.npz"), image_size=5)
    assert data.classes == ["0", "1", "2"]
    np.testing.assert_array_equal(data.train_labels.numpy(), arrays["train_labels"][:, 0])
    np.testing.assert_array_equal(data.val_labels.numpy(), arrays["val_labels"][:, 0])  # val, not test
    expected_train, expected_val = _standardized(arrays["train_images"][:, None].astype(np.float64),
                                                 arrays["val_images"][:, None].astype(np.float64))
    _assert_equal(data.train_images, expected_train)
    _assert_equal(data.val_images, expected_val)


def test_a_keras_file_with_channels_last_images(tmp_path):
    rng = np.random.default_rng(1)
    x_train, x_test = rng.normal(size=(5, 4, 4, 3)), rng.normal(size=(3, 4, 4, 3))
    np.savez(tmp_path / "cifar.npz", x_train=x_train, y_train=np.array([0, 1, 0, 1, 1]),
             x_test=x_test, y_test=np.array([1, 0, 1]))
    data = load_classification_data(str(tmp_path / "cifar.npz"), image_size=4)
    expected_train, expected_val = _standardized(x_train.transpose(0, 3, 1, 2), x_test.transpose(0, 3, 1, 2))
    _assert_equal(data.train_images, expected_train)
    _assert_equal(data.val_images, expected_val)
    assert data.val_labels.tolist() == [1, 0, 1] and "Keras" in data.source


def test_a_single_split_file_is_split_as_scikit_learn_says(tmp_path):
    rng = np.random.default_rng(2)
    images, labels = rng.normal(size=(10, 3, 4, 4)), np.array([0, 1] * 5)
    np.savez(tmp_path / "one.npz", images=images, labels=labels)
    data = load_classification_data(str(tmp_path / "one.npz"), image_size=4, val_fraction=0.4, seed=3)
    train, val = train_test_split(np.arange(10), test_size=0.4, random_state=3, stratify=labels)
    expected_train, expected_val = _standardized(images[train], images[val])
    _assert_equal(data.train_images, expected_train)
    _assert_equal(data.val_images, expected_val)
    np.testing.assert_array_equal(data.val_labels.numpy(), labels[val])


def test_npz_images_are_resized_to_image_size(tmp_path):
    images = np.zeros((4, 8, 8), dtype=np.uint8)
    images[:, :, 4:] = 200  # left half dark, right half bright
    np.savez(tmp_path / "halves.npz", images=images, labels=np.array([0, 1, 0, 1]))
    data = load_classification_data(str(tmp_path / "halves.npz"), image_size=2, val_fraction=0.5)
    assert data.train_images.shape == (2, 1, 2, 2)
    assert (data.train_images[:, 0, :, 0] < 0).all() and (data.train_images[:, 0, :, 1] > 0).all()


class _Trap:
    """Unpickling this creates a folder: proof that a pickle was run."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_a_pickled_object_array_is_refused_not_run(tmp_path):
    marker = str(tmp_path / "unpickled")
    np.savez(tmp_path / "trap.npz", images=np.array([_Trap(marker)] * 2, dtype=object), labels=np.array([0, 1]))
    with pytest.raises(UserError, match=r"trap\.npz: images is an array of Python objects"):
        load_classification_data(str(tmp_path / "trap.npz"))
    assert not os.path.exists(marker)


def test_unknown_npz_keys_are_named_with_the_layouts_expected(tmp_path):
    np.savez(tmp_path / "odd.npz", pixels=np.zeros((2, 4, 4)), targets=np.zeros(2))
    with pytest.raises(UserError) as error:
        load_classification_data(str(tmp_path / "odd.npz"))
    message = str(error.value)
    assert str(tmp_path / "odd.npz") in message and "['pixels', 'targets']" in message
    assert all(key in message for key in ("train_images", "x_train", "images, labels"))


@pytest.mark.parametrize(
    "images, labels, found",
    [
        (np.zeros((5, 4, 4)), np.zeros(4, dtype=int), "images holds 5 images but labels 4 labels"),
        (np.zeros((4, 4, 4)), np.array([0.0, 0.5, 1.0, 1.0]), "labels holds float64 values"),
        (np.zeros((0, 4, 4)), np.zeros(0, dtype=int), "images and labels are empty"),
        (np.zeros((4, 5, 5, 5)), np.zeros(4, dtype=int), r"images has shape \(4, 5, 5, 5\)"),
        (np.zeros((4, 4, 4)), np.zeros((4, 2), dtype=int), r"labels has shape \(4, 2\)"),
    ],
)
def test_malformed_npz_arrays_are_refused(tmp_path, images, labels, found):
    np.savez(tmp_path / "bad.npz", images=images, labels=labels)
    with pytest.raises(UserError, match=rf"bad\.npz: {found}"):
        load_classification_data(str(tmp_path / "bad.npz"))


def test_an_unknown_source_lists_the_accepted_ones():
    with pytest.raises(UserError) as error:
        load_classification_data("imagenet")
    message = str(error.value)
    assert "'imagenet'" in message and all(s in message for s in ("'digits'", "'shapes'", "ImageFolder", ".npz"))


# --- crops of the built-in detection sets ---------------------------------------------------------


def _coco(dataset: str):
    json_file, image_root = get_dataset_spec(dataset).locate()
    with open(json_file) as f:
        return json.load(f), image_root


def test_crops_are_each_instance_with_its_label(small_builtin_datasets):
    coco, _ = _coco("shapes_val")
    category_ids = sorted(c["id"] for c in coco["categories"])
    images, labels = crops_of("shapes_val", size=24)
    assert images.shape == (len(coco["annotations"]), 3, 24, 24)
    assert labels.tolist() == [category_ids.index(a["category_id"]) for a in coco["annotations"]]
    assert images.min() >= 0 and images.max() <= 255 and images.max() > 100  # pixels as read, not standardized


def test_each_crop_is_the_square_around_its_instances_box(small_builtin_datasets):
    """Against crops cut independently from the COCO file's XYWH boxes (the records hold XYXY)."""
    coco, image_root = _coco("shapes_val")
    files = {image["id"]: image["file_name"] for image in coco["images"]}
    expected = []
    for a in coco["annotations"]:  # the shapes JSON lists them image by image, as load_coco_json keeps them
        x, y, w, h = a["bbox"]
        side = max(w, h)
        x0, y0 = max(0, int(x + w / 2 - side / 2)), max(0, int(y + h / 2 - side / 2))
        image = np.asarray(Image.open(os.path.join(image_root, files[a["image_id"]])).convert("RGB"))
        patch = torch.from_numpy(image[y0 : y0 + int(side), x0 : x0 + int(side)].copy()).permute(2, 0, 1)
        expected.append(torch.nn.functional.interpolate(patch[None].float(), size=(16, 16), mode="bilinear")[0])
    crops, _ = crops_of("shapes_val", size=16)
    torch.testing.assert_close(crops, torch.stack(expected), atol=1e-3, rtol=1e-5)


def test_shapes_crops_are_standardized_with_the_training_crops(small_builtin_datasets):
    data = load_classification_data("shapes", image_size=16)
    assert data.classes == list(SHAPE_CLASSES)
    (train, train_labels), (val, val_labels) = crops_of("shapes_train", 16), crops_of("shapes_val", 16)
    expected_train, expected_val = _standardized(train.double().numpy(), val.double().numpy())
    _assert_equal(data.train_images, expected_train)
    _assert_equal(data.val_images, expected_val)
    assert torch.equal(data.train_labels, train_labels) and torch.equal(data.val_labels, val_labels)
