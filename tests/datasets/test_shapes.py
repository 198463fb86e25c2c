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

from gn_detection.datasets import shapes
from gn_detection.datasets.shapes import ensure_shapes_dataset, generate_shapes_split, resolve_occlusions

# pycocotools' decode trips numpy 2's copy=False deprecation; nothing here can change that.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

NUM_IMAGES = 60


def _generate(root: Path, seed: int = 0, num_images: int = NUM_IMAGES) -> str:
    return generate_shapes_split(str(root), "train", num_images=num_images, seed=seed)


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    json_file = _generate(root)
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints progress
        coco = COCO(json_file)
    return root, json_file, coco


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _decode(segmentation, height: int, width: int) -> np.ndarray:
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    else:
        rle = dict(segmentation, counts=segmentation["counts"].encode("ascii"))
    return mask_utils.decode(rle).astype(bool)


def _dilate(mask: np.ndarray, steps: int) -> np.ndarray:
    for _ in range(steps):
        p = np.pad(mask, 1)
        mask = mask | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return mask


def _image_masks(root: Path, coco: COCO, image_id: int):
    info = coco.imgs[image_id]
    anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
    masks = [_decode(a["segmentation"], info["height"], info["width"]) for a in anns]
    return info, anns, masks


def test_same_arguments_give_identical_files(tmp_path, split):
    root, _, _ = split
    _generate(tmp_path / "again")
    assert _files(tmp_path / "again") == _files(root)


def test_other_seed_gives_other_data(tmp_path, split):
    root, _, _ = split
    _generate(tmp_path / "other", seed=1)
    ours, theirs = _files(root), _files(tmp_path / "other")
    assert ours.keys() == theirs.keys()
    differing = [name for name in ours if ours[name] != theirs[name]]
    assert len(differing) == len(ours)


def test_layout_and_categories(split):
    root, json_file, coco = split
    assert json_file == str(root / "annotations" / "instances_train.json")
    assert [(c["id"], c["name"], c["supercategory"]) for c in coco.loadCats(coco.getCatIds())] == [
        (1, "circle", "shape"), (2, "square", "shape"), (3, "triangle", "shape")
    ]
    assert sorted(coco.imgs) == list(range(1, NUM_IMAGES + 1))
    for image_id, info in coco.imgs.items():
        assert info["file_name"] == f"{image_id:06d}.png"
        with Image.open(root / "train" / info["file_name"]) as image:
            assert image.mode == "RGB"
            assert image.size == (info["width"], info["height"])
        assert 128 <= info["height"] <= 160 and 128 <= info["width"] <= 160
    assert all(a["iscrowd"] == 0 for a in coco.anns.values())
    assert len({a["id"] for a in coco.anns.values()}) == len(coco.anns)


def test_masks_match_area_and_box_and_do_not_overlap(split):
    root, _, coco = split
    for image_id in coco.imgs:
        _, anns, masks = _image_masks(root, coco, image_id)
        assert len(anns) in range(1, 5)
        assert np.sum(masks, axis=0).max() == 1, f"image {image_id}: visible masks overlap"
        for ann, mask in zip(anns, masks):
            assert mask.sum() == ann["area"], f"annotation {ann['id']}"
            ys, xs = np.nonzero(mask)
            tight = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert ann["bbox"] == tight, f"annotation {ann['id']}"


def test_objects_are_painted_through_their_masks(split):
    root, _, coco = split
    checked = 0
    for image_id in coco.imgs:
        info, anns, masks = _image_masks(root, coco, image_id)
        pixels = np.asarray(Image.open(root / "train" / info["file_name"]), dtype=np.float64)
        background = ~np.any(masks, axis=0)
        for ann, mask in zip(anns, masks):
            ring = _dilate(mask, 3) & background
            if ring.sum() < 10:
                continue
            # Saturated objects on muted backgrounds: some channel's mean differs clearly.
            difference = np.abs(pixels[mask].mean(axis=0) - pixels[ring].mean(axis=0)).max()
            assert difference > 25, f"annotation {ann['id']}: object colour {difference:.0f} from its surroundings"
            checked += 1
    assert checked > NUM_IMAGES


def test_variety(split):
    _, _, coco = split
    anns = list(coco.anns.values())
    assert {type(a["segmentation"]) for a in anns} == {list, dict}
    assert all(isinstance(a["segmentation"]["counts"], str) for a in anns if isinstance(a["segmentation"], dict))
    assert {a["category_id"] for a in anns} == {1, 2, 3}
    assert max(len(coco.getAnnIds(imgIds=i)) for i in coco.imgs) > 1
    aspects = [info["width"] / info["height"] for info in coco.imgs.values()]
    assert min(aspects) < 0.95 and max(aspects) > 1.05


def test_polygons_outline_the_shapes(split):
    _, _, coco = split
    corners = {1: shapes.CIRCLE_VERTICES, 2: 4, 3: 3}
    for ann in coco.anns.values():
        if isinstance(ann["segmentation"], list):
            (polygon,) = ann["segmentation"]
            assert len(polygon) == 2 * corners[ann["category_id"]]


def test_resolve_occlusions_drops_hidden_shapes_and_recomputes_the_rest():
    def columns(*cols):
        mask = np.zeros((1, 10), dtype=bool)
        mask[0, list(cols)] = True
        return mask

    bottom, middle, top = columns(*range(10)), columns(*range(8)), columns(3, 4, 5, 6, 7)
    # middle shows 0..2 (3/8 < 0.4): dropped. bottom then shows 0..2 and 8..9 (5/10), not just 8..9.
    kept = resolve_occlusions([bottom, middle, top])
    assert [index for index, _ in kept] == [0, 2]
    np.testing.assert_array_equal(kept[0][1], columns(0, 1, 2, 8, 9))
    np.testing.assert_array_equal(kept[1][1], top)
    # At 0.3, middle (3/8) stays and hides bottom (2/10).
    assert [index for index, _ in resolve_occlusions([bottom, middle, top], min_visible=0.3)] == [1, 2]


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(num_images=0), "num_images"),
        (dict(image_size=(160, 128)), "image_size"),
        (dict(size_range=(0, 10)), "size_range"),
        (dict(max_instances=0), "max_instances"),
    ],
)
def test_bad_arguments_are_named(tmp_path, kwargs, name):
    args = dict(num_images=1, seed=0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        generate_shapes_split(str(tmp_path), "train", **args)


def test_ensure_gives_each_size_its_own_folder(tmp_path):
    located = ensure_shapes_dataset(str(tmp_path), num_train=5, num_val=3)
    for split, (json_file, image_root) in located.items():
        with open(json_file) as f:
            data = json.load(f)
        assert len(data["images"]) == {"train": 5, "val": 3}[split]
        assert sorted(os.listdir(image_root)) == sorted(i["file_name"] for i in data["images"])
    other = ensure_shapes_dataset(str(tmp_path), num_train=5, num_val=4)
    assert Path(other["val"][0]).parents[1] != Path(located["val"][0]).parents[1]
    assert len(list(tmp_path.iterdir())) == 2
