"""Image classification data for the GN paper's Figure 1 study (error against batch size): small
sets that load in seconds, each returned as tensors split into training and validation.

Sources: scikit-learn's bundled handwritten digits, a folder in ImageFolder layout, a ``.npz``
file (MedMNIST, Keras or a single split), or square crops of the instances of the built-in
detection sets (shapes, chest X-rays). Every source is resized to ``image_size`` and
standardized per channel with the training split's mean and std, applied to both splits, so
nothing about the validation images leaks into the inputs.
"""
import os
from typing import List, NamedTuple, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision import datasets as tv_datasets
from torchvision import transforms

from ..data.build import load_datasets
from ..data.catalog import DATASET_REGISTRY
from ..data.image_io import read_image
from ..utils.errors import UserError
from . import BUILTIN_DATASETS, register_builtin_datasets

__all__ = ["ClassificationData", "NPZ_LAYOUTS", "crops_of", "load_classification_data"]

BUILTIN_CROP_SOURCES = ("shapes", "xray")
INSTALL_HINT = "pip install 'gn_detection[studies]' (or pip install scikit-learn)"
# The .npz layouts accepted, tried in this order: (images key, labels key) per split, train first.
# MedMNIST files also hold test_*; the study validates on val, as MedMNIST intends.
NPZ_LAYOUTS = {
    "MedMNIST": (("train_images", "train_labels"), ("val_images", "val_labels")),
    "Keras": (("x_train", "y_train"), ("x_test", "y_test")),
    "single split": (("images", "labels"),),
}
NPZ_KEYS = "; ".join(f"{name}: {', '.join(k for split in keys for k in split)}" for name, keys in NPZ_LAYOUTS.items())
ACCEPTED_SOURCES = (
    "'digits' (scikit-learn's handwritten digits), 'shapes' or 'xray' (crops of the built-in detection sets), "
    "a folder in ImageFolder layout (DIR/train/<class>/ with DIR/val/<class>/ or DIR/test/<class>/, or "
    f"DIR/<class>/ alone), or a .npz file with the keys of one layout ({NPZ_KEYS})"
)

# (train images, train labels, val images, val labels, classes, description); images unstandardized.
_Splits = Tuple[Tensor, Tensor, Tensor, Tensor, List[str], str]


class ClassificationData(NamedTuple):
    """A classification set, split and standardized.

    Attributes:
        train_images: (N, C, H, W) float32, standardized per channel with the training stats.
        train_labels: (N,) int64, 0-based indices into ``classes``.
        val_images: (M, C, H, W) float32, standardized with the same (training) mean and std.
        val_labels: (M,) int64.
        classes: class names; label k is ``classes[k]``.
        source: where the data came from, for logs and reports.
    """

    train_images: Tensor
    train_labels: Tensor
    val_images: Tensor
    val_labels: Tensor
    classes: List[str]
    source: str


def load_classification_data(
    source: str, *, image_size: int = 32, val_fraction: float = 0.2, seed: int = 0
) -> ClassificationData:
    """Load ``source``, split it if it has no validation split, resize and standardize it.

    Args:
        source: ``"digits"`` (scikit-learn's 1,797 8x8 gray digits, 10 classes, no download),
            ``"shapes"`` or ``"xray"`` (each instance of the built-in ``<source>_train`` and
            ``<source>_val`` sets cropped square around its box, RGB), a folder in ImageFolder
            layout (RGB), or a ``.npz`` file (see ``NPZ_LAYOUTS``; 1 or 3 channels as stored).
        image_size: side of the square images returned, in pixels (bilinear resizing).
        val_fraction: share of the images held out for validation where the source has a
            single split; the split is stratified by class and depends only on ``seed``.
        seed: seed of that split.

    Returns:
        The splits as tensors, standardized per channel with the training split's mean and
        (population) std.

    Raises:
        UserError: an unknown source, a missing file, a malformed folder or ``.npz`` file, or
            scikit-learn missing where a split is needed.
    """
    if not isinstance(image_size, int) or image_size < 1:
        raise UserError(f"image_size must be a positive int of pixels, got {image_size!r}")
    if not 0 < val_fraction < 1:
        raise UserError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction!r}")
    split = dict(val_fraction=val_fraction, seed=seed)
    if source == "digits":
        splits = _digits(image_size, **split)
    elif source in BUILTIN_CROP_SOURCES:
        splits = _builtin_crops(source, image_size)
    elif os.path.isdir(source):
        splits = _image_folder(source, image_size, **split)
    elif source.endswith(".npz") and os.path.isfile(source):
        splits = _npz(source, image_size, **split)
    else:
        raise UserError(f"{source!r} is not a classification source nor an existing folder or .npz file; "
                        f"expected {ACCEPTED_SOURCES}")
    train_images, train_labels, val_images, val_labels, classes, description = splits
    train_images, val_images = _standardize(train_images, val_images)
    return ClassificationData(train_images, train_labels, val_images, val_labels, classes, description)


def crops_of(dataset: str, size: int = 32) -> Tuple[Tensor, Tensor]:
    """Every non-crowd instance of the registered COCO-format ``dataset``, cropped square around
    its box (clipped at the image's top and left edges) and resized bilinear to ``size``.

    Returns:
        (N, 3, size, size) float32 RGB crops in 0-255, not standardized; and (N,) int64 labels,
        0-based (the dataset's contiguous category k is label k - 1).
    """
    images, labels, _ = _crops_and_classes(dataset, size)
    return images, labels


def _crops_and_classes(dataset: str, size: int) -> Tuple[Tensor, Tensor, List[str]]:
    instances = load_datasets([dataset], filter_empty=True, key="--dataset")
    crops, labels = [], []
    for record in instances.records:
        image = torch.from_numpy(read_image(record["file_name"], "RGB")).permute(2, 0, 1)
        for a in record["annotations"]:
            if a.get("iscrowd", 0):
                continue
            x0, y0, x1, y1 = a["bbox"]  # records hold XYXY
            side, cx, cy = max(x1 - x0, y1 - y0), (x0 + x1) / 2, (y0 + y1) / 2
            x0, y0 = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
            patch = image[:, y0 : y0 + max(1, int(side)), x0 : x0 + max(1, int(side))]
            crops.append(F.interpolate(patch[None], size=(size, size), mode="bilinear", align_corners=False)[0])
            labels.append(a["category_id"] - 1)
    if not crops:
        raise UserError(f"dataset {dataset!r} has no non-crowd instances to crop")
    return torch.stack(crops), torch.tensor(labels, dtype=torch.int64), list(instances.thing_classes)


def _builtin_crops(source: str, image_size: int) -> _Splits:
    # Registered at their default sizes unless a caller (a test, say) registered them already.
    if not all(name in DATASET_REGISTRY for name in BUILTIN_DATASETS):
        register_builtin_datasets()
    train_images, train_labels, classes = _crops_and_classes(f"{source}_train", image_size)
    val_images, val_labels, _ = _crops_and_classes(f"{source}_val", image_size)
    return (train_images, train_labels, val_images, val_labels, classes,
            f"instance crops of {source}_train and {source}_val")


def _digits(image_size: int, *, val_fraction: float, seed: int) -> _Splits:
    digits = _sklearn("the 'digits' source").datasets.load_digits()
    images = torch.from_numpy(digits.images.astype(np.float32))[:, None]  # (1797, 1, 8, 8), values 0..16
    labels = torch.from_numpy(digits.target.astype(np.int64))
    classes = [str(name) for name in digits.target_names]
    splits = _split(_resize(images, image_size), labels, val_fraction, seed, "the 'digits' source")
    return (*splits, classes, f"scikit-learn digits, {val_fraction:g} held out with seed {seed}")


def _image_folder(root: str, image_size: int, *, val_fraction: float, seed: int) -> _Splits:
    transform = transforms.Compose([transforms.Resize((image_size, image_size)), transforms.ToTensor()])
    train_dir = os.path.join(root, "train")
    if not os.path.isdir(train_dir):
        images, labels, classes = _read_image_folder(root, transform)
        splits = _split(images, labels, val_fraction, seed, root)
        return (*splits, classes, f"ImageFolder {root}, {val_fraction:g} held out with seed {seed}")
    val_dir = next((os.path.join(root, name) for name in ("val", "test") if os.path.isdir(os.path.join(root, name))),
                   None)
    if val_dir is None:
        raise UserError(f"{root}: has train/ but neither val/ nor test/; add one, or put the class folders "
                        f"directly in {root} to have them split")
    train_images, train_labels, classes = _read_image_folder(train_dir, transform)
    val_images, val_labels, val_classes = _read_image_folder(val_dir, transform)
    if val_classes != classes:
        raise UserError(
            f"{train_dir} and {val_dir} must hold the same class folders; only in {train_dir}: "
            f"{sorted(set(classes) - set(val_classes))}, only in {val_dir}: {sorted(set(val_classes) - set(classes))}"
        )
    return train_images, train_labels, val_images, val_labels, classes, f"ImageFolder {train_dir} and {val_dir}"


def _read_image_folder(root: str, transform) -> Tuple[Tensor, Tensor, List[str]]:
    try:
        folder = tv_datasets.ImageFolder(root, transform=transform)
        images = torch.stack([image for image, _ in folder])
    except (FileNotFoundError, OSError) as e:  # no class folders, an empty class, an unreadable image
        raise UserError(f"{root}: not a readable ImageFolder (one folder of images per class): {e}") from None
    return images, torch.tensor(folder.targets, dtype=torch.int64), list(folder.classes)


def _npz(path: str, image_size: int, *, val_fraction: float, seed: int) -> _Splits:
    with np.load(path, allow_pickle=False) as npz:  # never unpickle: a pickle can run code
        keys = sorted(npz.files)
        layout = next((name for name, splits in NPZ_LAYOUTS.items()
                       if all(k in keys for split in splits for k in split)), None)
        if layout is None:
            raise UserError(f"{path}: holds the keys {keys}, which match no known layout; expected those of one of "
                            f"{NPZ_KEYS}")
        splits = [_npz_split(path, npz, images_key, labels_key, image_size)
                  for images_key, labels_key in NPZ_LAYOUTS[layout]]
    if len(splits) == 1:
        train_images, train_labels, val_images, val_labels = _split(*splits[0], val_fraction, seed, path)
        description = f"{path} ({layout}), {val_fraction:g} held out with seed {seed}"
    else:
        (train_images, train_labels), (val_images, val_labels) = splits
        description = f"{path} ({layout})"
        if train_images.shape[1] != val_images.shape[1]:
            raise UserError(f"{path}: the training images have {train_images.shape[1]} channels but the validation "
                            f"images {val_images.shape[1]}; expected the same")
    classes = [str(k) for k in range(int(max(train_labels.max(), val_labels.max())) + 1)]
    return train_images, train_labels, val_images, val_labels, classes, description


def _npz_split(path: str, npz, images_key: str, labels_key: str, image_size: int) -> Tuple[Tensor, Tensor]:
    """One split of a .npz file: (N, C, image_size, image_size) float32 images, (N,) int64 labels."""
    images, labels = _npz_array(path, npz, images_key), _npz_array(path, npz, labels_key)
    if labels.ndim == 2 and labels.shape[1] == 1:  # MedMNIST stores (N, 1)
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise UserError(f"{path}: {labels_key} has shape {labels.shape}; expected (N,) or (N, 1)")
    if len(images) != len(labels):
        raise UserError(f"{path}: {images_key} holds {len(images)} images but {labels_key} {len(labels)} labels; "
                        f"expected one label per image")
    if len(labels) == 0:
        raise UserError(f"{path}: {images_key} and {labels_key} are empty; expected at least one image")
    if not (np.issubdtype(labels.dtype, np.integer) or (np.issubdtype(labels.dtype, np.floating)
                                                        and np.all(labels == np.round(labels)))):
        raise UserError(f"{path}: {labels_key} holds {labels.dtype} values such as {labels[:3].tolist()}; "
                        f"expected integer class indices")
    if labels.min() < 0:
        raise UserError(f"{path}: {labels_key} holds the negative label {labels.min()}; expected indices from 0")
    return _resize(_channels_first(path, images_key, images), image_size), torch.from_numpy(labels.astype(np.int64))


def _npz_array(path: str, npz, key: str) -> np.ndarray:
    try:
        array = npz[key]
    except ValueError as e:  # numpy refuses object arrays when allow_pickle=False
        raise UserError(f"{path}: {key} is an array of Python objects, which would have to be unpickled ({e}); "
                        f"expected a numeric array") from None
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise UserError(f"{path}: {key} has dtype {array.dtype}; expected numbers")
    return array


def _channels_first(path: str, key: str, images: np.ndarray) -> Tensor:
    """(N, H, W), (N, H, W, C) or (N, C, H, W) with C in {1, 3} -> (N, C, H, W) float32."""
    channels = (1, 3)
    if images.ndim == 3:
        images = images[:, None]
    elif images.ndim == 4 and images.shape[3] in channels and images.shape[1] not in channels:
        images = images.transpose(0, 3, 1, 2)
    elif not (images.ndim == 4 and images.shape[1] in channels and images.shape[3] not in channels):
        raise UserError(f"{path}: {key} has shape {images.shape}; expected (N, H, W), (N, H, W, C) or (N, C, H, W) "
                        f"with C in {channels} (and H, W not in {channels}, so the channel axis is unambiguous)")
    return torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))


def _resize(images: Tensor, size: int) -> Tensor:
    if images.shape[-2:] == (size, size):
        return images
    # antialias: shrinking large images without it would alias fine detail
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)


def _split(images: Tensor, labels: Tensor, val_fraction: float, seed: int, where: str) -> Tuple[Tensor, ...]:
    """(train images, train labels, val images, val labels), split stratified by class."""
    train_test_split = _sklearn(f"splitting {where}").model_selection.train_test_split
    try:
        train, val = train_test_split(np.arange(len(labels)), test_size=val_fraction, random_state=seed,
                                      stratify=labels.numpy())
    except ValueError as e:  # e.g. a class with a single image, or fewer held-out images than classes
        raise UserError(f"{where}: cannot hold out {val_fraction:g} of its {len(labels)} images for validation "
                        f"with every class on both sides: {e}") from None
    train, val = torch.from_numpy(train), torch.from_numpy(val)
    return images[train], labels[train], images[val], labels[val]


def _standardize(train: Tensor, val: Tensor) -> Tuple[Tensor, Tensor]:
    """Both splits standardized per channel with the training split's mean and population std."""
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    # a constant channel (std 0) stays 0 instead of becoming NaN
    std = train.std(dim=(0, 2, 3), keepdim=True, unbiased=False).clamp_min(1e-6)
    return (train - mean) / std, (val - mean) / std


def _sklearn(purpose: str):
    """scikit-learn with its datasets and model_selection loaded; a UserError if it is missing."""
    try:
        import sklearn.datasets
        import sklearn.model_selection
    except ImportError:
        raise UserError(f"{purpose} needs scikit-learn: {INSTALL_HINT}") from None
    return sklearn
