import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from PIL import Image
from pycocotools.coco import COCO

pydicom = pytest.importorskip("pydicom")

from gn_detection.datasets import xray  # noqa: E402
from gn_detection.datasets.xray import XRAY_CLASSES, ensure_xray_dataset, generate_xray_split  # noqa: E402

# pycocotools' decode trips numpy 2's copy=False deprecation; nothing here can change that.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

NUM_IMAGES = 40
SEED = 3
MAX_VALUE = 4095


def _generate(root: Path, seed: int = SEED, num_images: int = NUM_IMAGES, file_format: str = "dicom") -> str:
    return generate_xray_split(str(root), "train", num_images=num_images, seed=seed, file_format=file_format)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("xray")
    json_file = _generate(root)
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress
        coco = COCO(json_file)
    return root, json_file, coco


@pytest.fixture(scope="module")
def png_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("xray_png")
    return root, _generate(root, file_format="png16")


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _decode(segmentation: dict) -> np.ndarray:
    return mask_utils.decode(dict(segmentation, counts=segmentation["counts"].encode("ascii"))).astype(bool)


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    for _ in range(steps):
        p = np.pad(mask, 1)
        mask = mask | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return mask


def _monochrome2(ds) -> np.ndarray:
    """Stored pixels of a DICOM dataset as MONOCHROME2 (high is bright), before any rescale."""
    stored = ds.pixel_array.astype(np.int64)
    return MAX_VALUE - stored if ds.PhotometricInterpretation == "MONOCHROME1" else stored


def _window_in_monochrome2(ds):
    """(low, high) of the display window in MONOCHROME2 stored units."""
    centre = float(ds.WindowCenter) - float(ds.RescaleIntercept)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        centre = MAX_VALUE - centre
    half = float(ds.WindowWidth) / 2
    return centre - half, centre + half


def _datasets(root: Path, coco: COCO):
    for image_id, info in sorted(coco.imgs.items()):
        yield image_id, info, pydicom.dcmread(root / "train" / info["file_name"])


def test_same_arguments_give_identical_files(tmp_path):
    for file_format in xray.XRAY_FILE_FORMATS:
        _generate(tmp_path / f"{file_format}_a", num_images=6, file_format=file_format)
        _generate(tmp_path / f"{file_format}_b", num_images=6, file_format=file_format)
        first, second = _files(tmp_path / f"{file_format}_a"), _files(tmp_path / f"{file_format}_b")
        assert len(first) == 7
        assert first == second, file_format


def test_other_seed_gives_other_data(tmp_path):
    _generate(tmp_path / "a", num_images=6)
    _generate(tmp_path / "b", seed=SEED + 1, num_images=6)
    ours, theirs = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert ours.keys() == theirs.keys()
    assert all(ours[name] != theirs[name] for name in ours)
    uids = [pydicom.dcmread(tmp_path / r / "train" / "000001.dcm").SOPInstanceUID for r in ("a", "b")]
    assert uids[0] != uids[1]


def test_layout_and_categories(split):
    root, json_file, coco = split
    assert json_file == str(root / "annotations" / "instances_train.json")
    assert [(c["id"], c["name"], c["supercategory"]) for c in coco.loadCats(coco.getCatIds())] == [
        (1, "nodule", "finding"), (2, "lesion", "finding")
    ]
    assert XRAY_CLASSES == ("nodule", "lesion")
    assert sorted(coco.imgs) == list(range(1, NUM_IMAGES + 1))
    for image_id, info in coco.imgs.items():
        assert info["file_name"] == f"{image_id:06d}.dcm"
        assert (info["height"], info["width"]) == (256, 256)
    assert all(a["iscrowd"] == 0 for a in coco.anns.values())
    assert all(isinstance(a["segmentation"]["counts"], str) for a in coco.anns.values())
    assert len({a["id"] for a in coco.anns.values()}) == len(coco.anns)


def test_dicom_files_are_12_bit_radiographs(split):
    root, _, coco = split
    photometric, intercepts, modalities, uids = set(), set(), set(), set()
    for _, info, ds in _datasets(root, coco):
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert (ds.Rows, ds.Columns) == (info["height"], info["width"])
        assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
        pixels = ds.pixel_array
        assert pixels.dtype == np.uint16
        assert pixels.max() <= MAX_VALUE
        assert np.ptp(pixels) > 1000, "a radiograph uses much of its 12-bit range"
        assert float(ds.RescaleSlope) == 1
        assert float(ds.WindowWidth) > 0 and "WindowCenter" in ds
        for uid in (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID):
            assert pydicom.uid.UID(uid).is_valid
            uids.add(uid)
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        photometric.add(ds.PhotometricInterpretation)
        intercepts.add(float(ds.RescaleIntercept))
        modalities.add(ds.Modality)
    assert photometric == {"MONOCHROME1", "MONOCHROME2"}
    assert intercepts == {0.0, -1024.0}
    assert modalities == {"DX", "CR"}
    assert len(uids) == 3 * NUM_IMAGES


def test_monochrome1_files_are_inverted(split):
    # Once normalized, the air at the image corners is dark and the torso's centre bright in every file.
    root, _, coco = split
    for image_id, _, ds in _datasets(root, coco):
        pixels = _monochrome2(ds)
        corners = np.concatenate([pixels[:16, :16].ravel(), pixels[:16, -16:].ravel()])
        centre = pixels[96:160, 96:160]
        assert np.median(corners) + 500 < np.median(centre), f"image {image_id} ({ds.PhotometricInterpretation})"


def test_png16_holds_the_monochrome2_pixels(split, png_split):
    root, _, coco = split
    png_root, png_json = png_split
    with open(png_json) as f:
        png_data = json.load(f)
    assert png_data["annotations"] == list(coco.anns.values())
    for image_id, info, ds in _datasets(root, coco):
        with Image.open(png_root / "train" / f"{image_id:06d}.png") as image:
            assert image.mode == "I;16"
            np.testing.assert_array_equal(np.asarray(image), _monochrome2(ds), err_msg=f"image {image_id}")


def test_window_shows_the_findings_and_their_surroundings(split):
    root, _, coco = split
    checked = 0
    for image_id, _, ds in _datasets(root, coco):
        low, high = _window_in_monochrome2(ds)
        pixels = _monochrome2(ds)
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=image_id)):
            mask = _decode(ann["segmentation"])
            region = pixels[_dilate(mask, 4)]
            inside = np.mean((region >= low) & (region <= high))
            assert inside > 0.95, f"annotation {ann['id']}: {inside:.0%} of it within the window"
            checked += 1
    assert checked > NUM_IMAGES / 2


def test_masks_match_area_and_box_and_do_not_overlap(split):
    _, _, coco = split
    for image_id in coco.imgs:
        masks = [_decode(a["segmentation"]) for a in coco.loadAnns(coco.getAnnIds(imgIds=image_id))]
        if len(masks) > 1:
            assert np.sum(masks, axis=0).max() == 1, f"image {image_id}: masks overlap"
    for ann in coco.anns.values():
        mask = _decode(ann["segmentation"])
        assert mask.sum() == ann["area"] > 0, f"annotation {ann['id']}"
        ys, xs = np.nonzero(mask)
        tight = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert ann["bbox"] == tight, f"annotation {ann['id']}"


def test_findings_lie_in_the_lungs_and_are_brighter_than_their_ring(split, png_split):
    _, _, coco = split
    png_root, _ = png_split
    checked = 0
    for image_id in coco.imgs:
        # Rerender to get the lung field; the pixels must match the file, else the seeding changed.
        pixels, _, lung_field = xray._render_image(np.random.default_rng((SEED, 256, image_id)), 256)
        with Image.open(png_root / "train" / f"{image_id:06d}.png") as image:
            np.testing.assert_array_equal(np.asarray(image), pixels)
        # The lung field is dark: well below the mediastinum and spine down the middle of the image.
        assert np.median(pixels[lung_field]) < 0.6 * np.median(pixels[:, 120:136]), f"image {image_id}"
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
        masks = [_decode(a["segmentation"]) for a in anns]
        anywhere = np.any(masks, axis=0) if masks else np.zeros_like(lung_field)
        for ann, mask in zip(anns, masks):
            assert not (mask & ~lung_field).any(), f"annotation {ann['id']} leaves the lung field"
            ring = _dilate(mask, 3) & ~anywhere & lung_field
            contrast = pixels[mask].mean() - pixels[ring].mean()
            assert contrast > 50, f"annotation {ann['id']}: only {contrast:.0f} brighter than the lung around it"
            checked += 1
    assert checked == len(coco.anns) > 0


def test_variety(split):
    _, _, coco = split
    assert {a["category_id"] for a in coco.anns.values()} == {1, 2}
    counts = [len(coco.getAnnIds(imgIds=i)) for i in coco.imgs]
    assert min(counts) == 0, "no negative images"
    assert max(counts) >= 2
    assert max(counts) <= 3
    areas = {c: [a["area"] for a in coco.anns.values() if a["category_id"] == c] for c in (1, 2)}
    assert np.median(areas[2]) > 2 * np.median(areas[1]), "lesions should be larger than nodules"


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(num_images=0), "num_images"),
        (dict(image_size=32), "image_size"),
        (dict(file_format="jpeg"), "file_format"),
        (dict(split="a/b"), "split"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, name):
    args = dict(split="train", num_images=1, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        generate_xray_split(str(tmp_path), **args)


def test_ensure_gives_each_size_and_format_its_own_folder(tmp_path):
    located = ensure_xray_dataset(str(tmp_path), num_train=4, num_val=2)
    for split, (json_file, image_root) in located.items():
        with open(json_file) as f:
            data = json.load(f)
        assert len(data["images"]) == {"train": 4, "val": 2}[split]
        assert sorted(os.listdir(image_root)) == sorted(i["file_name"] for i in data["images"])
        assert all(name.endswith(".dcm") for name in os.listdir(image_root))
    other = ensure_xray_dataset(str(tmp_path), num_train=4, num_val=2, file_format="png16")
    assert Path(other["val"][0]).parents[1] != Path(located["val"][0]).parents[1]
    assert all(name.endswith(".png") for name in os.listdir(other["train"][1]))
    assert len(list(tmp_path.iterdir())) == 2
