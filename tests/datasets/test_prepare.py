import json
import os
import re
from collections import deque

import numpy as np
import pytest
from PIL import Image

from gn_detection.data.coco import load_coco_json
from gn_detection.data.segmentation import segmentation_to_mask
from gn_detection.datasets.prepare import prepare_from_csv, prepare_from_masks
from gn_detection.datasets.prepare_inputs import _label_runs

CLASSES = ["lesion", "nodule"]


def _save_image(folder, name, height, width, seed=0):
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    folder.mkdir(exist_ok=True)
    Image.fromarray(pixels, "RGB").save(folder / name)


def _save_mask(folder, name, mask):
    folder.mkdir(exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255, "L").save(folder / name)


def _rect(height, width, y0, y1, x0, x1):
    """Rows y0..y1-1, columns x0..x1-1."""
    mask = np.zeros((height, width), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _decoded(json_file, image_root):
    """{file name: [(class name, mask, XYXY box), ...]} through the package's own loader."""
    dataset = load_coco_json(json_file, str(image_root), filter_empty=False)
    out = {}
    for record in dataset.records:
        name = os.path.basename(record["file_name"])
        out[name] = [
            (
                dataset.thing_classes[a["category_id"] - 1],
                segmentation_to_mask(a["segmentation"], record["height"], record["width"]).astype(bool),
                a["bbox"],
            )
            for a in record["annotations"]
        ]
    return dataset, out


def _tight_xyxy(mask):
    ys, xs = np.nonzero(mask)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def _bfs_components(mask):
    """Reference 4-connected labelling, numbered in raster order of each component's first pixel."""
    height, width = mask.shape
    labels = np.zeros((height, width), dtype=np.int32)
    count = 0
    for y in range(height):
        for x in range(width):
            if mask[y, x] and not labels[y, x]:
                count += 1
                labels[y, x] = count
                queue = deque([(y, x)])
                while queue:
                    cy, cx = queue.popleft()
                    for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                        if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not labels[ny, nx]:
                            labels[ny, nx] = count
                            queue.append((ny, nx))
    return labels, count


@pytest.fixture
def instance_data(tmp_path):
    """a.png 10x12 with three instances (two touching), b.jpg 8x9 with two, c.png with none."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    _save_image(images, "a.png", 10, 12)
    _save_image(images, "b.jpg", 8, 9)
    _save_image(images, "c.png", 6, 6)
    (images / "notes.txt").write_text("not an image")
    rng = np.random.default_rng(3)
    blob = rng.random((8, 9)) > 0.6
    blob[0, 0] = True  # nonempty whatever the draw
    truth = {
        "a.png": [
            # the two lesions share an edge (columns 3 and 4) but are separate instances
            ("a__lesion__0.png", "lesion", _rect(10, 12, 1, 5, 0, 4)),
            ("a__lesion__1.png", "lesion", _rect(10, 12, 2, 9, 4, 7)),
            ("a__nodule__0.png", "nodule", _rect(10, 12, 6, 10, 8, 12)),
        ],
        # k sorts as a number: 2 before 10; lesions before nodules (class order)
        "b.jpg": [
            ("b__lesion__2.png", "lesion", _rect(8, 9, 0, 1, 0, 9)),
            ("b__lesion__10.png", "lesion", _rect(8, 9, 3, 8, 2, 3)),
            ("b__nodule__0.png", "nodule", blob),
        ],
        "c.png": [],
    }
    for entries in truth.values():
        for name, _, mask in entries:
            _save_mask(masks, name, mask)
    return images, masks, truth


def test_instances_round_trip(instance_data, tmp_path):
    images, masks, truth = instance_data
    out = tmp_path / "out" / "train.json"
    report = prepare_from_masks(str(images), str(masks), str(out), class_names=CLASSES)

    dataset, decoded = _decoded(str(out), images)
    assert dataset.thing_classes == CLASSES
    assert [os.path.basename(r["file_name"]) for r in dataset.records] == ["a.png", "b.jpg", "c.png"]
    assert [r["image_id"] for r in dataset.records] == [1, 2, 3]
    assert [(r["height"], r["width"]) for r in dataset.records] == [(10, 12), (8, 9), (6, 6)]
    for name, entries in truth.items():
        assert len(decoded[name]) == len(entries), name
        for (_, cls, mask), (got_cls, got_mask, got_box) in zip(entries, decoded[name]):
            assert got_cls == cls
            np.testing.assert_array_equal(got_mask, mask)
            assert got_box == [float(v) for v in _tight_xyxy(mask)]

    raw = json.loads(out.read_text())
    assert [a["id"] for a in raw["annotations"]] == list(range(1, 7))
    expected = [m for entries in truth.values() for _, _, m in entries]
    assert [a["area"] for a in raw["annotations"]] == [int(m.sum()) for m in expected]
    assert all(isinstance(a["segmentation"]["counts"], str) for a in raw["annotations"])
    assert raw["categories"] == [{"id": 1, "name": "lesion"}, {"id": 2, "name": "nodule"}]

    assert report.counts == {"lesion": 4, "nodule": 2}
    assert report.num_annotations == 6 and report.num_images == 3
    assert report.images_without_annotations == ["c.png"]
    assert report.ignored_files == [str(images / "notes.txt")]
    assert report.empty_masks == []
    assert not [f for f in os.listdir(out.parent) if f != "train.json"]  # no temporary file left


def test_label_map_round_trip(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    for name in ("x.png", "y.png", "z.png"):
        _save_image(images, name, 12, 14)
    label_map = np.zeros((12, 14), dtype=np.uint8)
    label_map[0:3, 0:3] = 1  # A
    label_map[3:5, 3:5] = 1  # B: touches A only at a corner -> its own instance
    label_map[0:3, 3:6] = 2  # shares an edge with A, but another class -> its own instance
    label_map[6:12, 1:3] = 1  # a U of class 1: two prongs that meet only at the bottom row ...
    label_map[6:12, 5:7] = 1
    label_map[11, 1:7] = 1  # ... one instance
    label_map[7:9, 9:13] = 2
    Image.fromarray(label_map, "L").save(masks.mkdir() or masks / "x.png")
    Image.fromarray(np.zeros((12, 14), np.uint8), "L").save(masks / "y.png")  # nothing; z.png has no map

    out = tmp_path / "train.json"
    report = prepare_from_masks(str(images), str(masks), str(out), class_names=CLASSES, layout="label_map")

    expected = []
    for value in (1, 2):
        labels, count = _bfs_components(label_map == value)
        expected += [(CLASSES[value - 1], labels == c) for c in range(1, count + 1)]
    assert [cls for cls, _ in expected] == ["lesion", "lesion", "lesion", "nodule", "nodule"]

    _, decoded = _decoded(str(out), images)
    assert len(decoded["x.png"]) == len(expected)
    for (cls, mask), (got_cls, got_mask, _) in zip(expected, decoded["x.png"]):
        assert got_cls == cls
        np.testing.assert_array_equal(got_mask, mask)
    assert decoded["y.png"] == [] and decoded["z.png"] == []
    assert report.counts == {"lesion": 3, "nodule": 2}
    assert report.images_without_annotations == ["y.png", "z.png"]


@pytest.mark.parametrize("seed", range(4))
def test_numpy_labelling_matches_flood_fill(seed):
    mask = np.random.default_rng(seed).random((23, 31)) > 0.45
    labels, count = _label_runs(mask)
    reference, reference_count = _bfs_components(mask)
    assert count == reference_count > 1
    np.testing.assert_array_equal(labels, reference)


def test_empty_masks_are_skipped_and_listed(instance_data, tmp_path):
    images, masks, _ = instance_data
    _save_mask(masks, "c__nodule__0.png", np.zeros((6, 6), bool))
    report = prepare_from_masks(str(images), str(masks), str(tmp_path / "t.json"), class_names=CLASSES)
    assert report.empty_masks == [str(masks / "c__nodule__0.png")]
    assert report.counts == {"lesion": 4, "nodule": 2}
    assert "c.png" in report.images_without_annotations
    assert "Empty masks (skipped): 1" in report.summary()


def test_summary_table_and_capped_lists(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    for i in range(25):
        _save_image(images, f"img{i:02d}.png", 4, 5)
    _save_mask(masks, "img00__nodule__0.png", _rect(4, 5, 0, 2, 0, 2))
    report = prepare_from_masks(str(images), str(masks), str(tmp_path / "t.json"), class_names=CLASSES)
    text = report.summary()
    assert "25 images, 1 annotations, 2 classes" in text
    assert re.search(r"1\s+lesion\s+0\n\s+2\s+nodule\s+1\n", text)
    assert "Classes with no instance: lesion" in text
    assert "Images without annotations (kept, as negatives): 24" in text
    assert "img01.png" in text and "img20.png" in text and "img21.png" not in text
    assert "... and 4 more" in text


def test_mask_of_wrong_size_is_an_error(instance_data, tmp_path):
    images, masks, _ = instance_data
    _save_mask(masks, "a__nodule__1.png", np.ones((9, 12), bool))
    out = tmp_path / "t.json"
    out.write_text("old")
    message = r"a__nodule__1\.png: the mask is 9x12 \(HxW\) but its image .*a\.png is 10x12"
    with pytest.raises(ValueError, match=message):
        prepare_from_masks(str(images), str(masks), str(out), class_names=CLASSES)
    assert out.read_text() == "old"  # nothing written on error


def test_unknown_class_in_mask_name_is_an_error(instance_data, tmp_path):
    images, masks, _ = instance_data
    _save_mask(masks, "a__lesoin__0.png", _rect(10, 12, 0, 1, 0, 1))
    message = r"a__lesoin__0\.png: names the class 'lesoin'.*known classes: lesion, nodule; close matches: lesion"
    with pytest.raises(ValueError, match=message):
        prepare_from_masks(str(images), str(masks), str(tmp_path / "t.json"), class_names=CLASSES)


def test_unknown_image_in_mask_name_is_an_error(instance_data, tmp_path):
    images, masks, _ = instance_data
    _save_mask(masks, "bb__lesion__0.png", _rect(8, 9, 0, 1, 0, 1))
    with pytest.raises(ValueError, match=r"bb__lesion__0\.png: names the image 'bb'.*close matches: b"):
        prepare_from_masks(str(images), str(masks), str(tmp_path / "t.json"), class_names=CLASSES)


def test_mask_name_without_index_is_an_error(instance_data, tmp_path):
    images, masks, _ = instance_data
    _save_mask(masks, "a__lesion.png", _rect(10, 12, 0, 1, 0, 1))
    message = r"a__lesion\.png: an instance mask must be named <image stem>__<class name>__<k>\.png"
    with pytest.raises(ValueError, match=message):
        prepare_from_masks(str(images), str(masks), str(tmp_path / "t.json"), class_names=CLASSES)


def test_label_map_value_beyond_classes_is_an_error(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    _save_image(images, "x.png", 4, 5)
    masks.mkdir()
    Image.fromarray(np.full((4, 5), 3, np.uint8), "L").save(masks / "x.png")
    with pytest.raises(ValueError, match=r"x\.png: pixel values 3 are not classes; with 2 classes"):
        prepare_from_masks(str(images), str(masks), str(tmp_path / "t.json"), class_names=CLASSES, layout="label_map")


def _write_dicom(path, rows, columns):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = np.zeros((rows, columns), np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)


def test_dicom_sizes_from_the_header(tmp_path):
    pytest.importorskip("pydicom")
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    _write_dicom(images / "case1.dcm", 7, 11)
    _write_dicom(images / "case2", 9, 5)  # no extension: found by "DICM" at byte 128
    _save_mask(masks, "case2__lesion__0.png", _rect(9, 5, 1, 3, 1, 4))
    out = tmp_path / "t.json"
    prepare_from_masks(str(images), str(masks), str(out), class_names=CLASSES)
    raw = json.loads(out.read_text())
    sizes = [(i["file_name"], i["height"], i["width"]) for i in raw["images"]]
    assert sizes == [("case1.dcm", 7, 11), ("case2", 9, 5)]
    assert [(a["image_id"], a["bbox"]) for a in raw["annotations"]] == [(2, [1, 1, 3, 2])]


@pytest.fixture
def csv_images(tmp_path):
    images = tmp_path / "images"
    _save_image(images, "a.png", 10, 20)
    _save_image(images, "b.png", 30, 40)
    _save_image(images, "c.png", 5, 5)
    return images


def _write_csv(tmp_path, *rows):
    path = tmp_path / "boxes.csv"
    path.write_text("\n".join(("image,x1,y1,x2,y2,label",) + rows) + "\n")
    return str(path)


def test_csv_boxes_land_as_xywh(csv_images, tmp_path):
    csv_file = _write_csv(
        tmp_path,
        "a.png,2,3,6,7,nodule",
        "b.png,1.5,2,10,12.5,lesion",
        "a.png,0,0,20,10,lesion",  # the whole image: edges are allowed
        "c.png,,,,,",  # an image stated to have no box
    )
    out = tmp_path / "t.json"
    report = prepare_from_csv(str(csv_images), csv_file, str(out))

    raw = json.loads(out.read_text())
    assert raw["categories"] == [{"id": 1, "name": "lesion"}, {"id": 2, "name": "nodule"}]  # sorted labels
    got = [(a["image_id"], a["category_id"], a["bbox"]) for a in raw["annotations"]]
    assert got == [(1, 2, [2, 3, 4, 4]), (1, 1, [0, 0, 20, 10]), (2, 1, [1.5, 2, 8.5, 10.5])]
    assert raw["annotations"][0]["segmentation"] == [[2, 3, 6, 3, 6, 7, 2, 7]]
    assert raw["annotations"][2]["area"] == pytest.approx(8.5 * 10.5)

    _, decoded = _decoded(str(out), csv_images)
    np.testing.assert_array_equal(decoded["a.png"][0][1], _rect(10, 20, 3, 7, 2, 6))  # box-shaped mask
    assert report.counts == {"lesion": 2, "nodule": 1}
    assert report.images_without_annotations == ["c.png"] and report.masks_are_boxes

    prepare_from_csv(str(csv_images), csv_file, str(out), class_names=["nodule", "lesion"])
    raw = json.loads(out.read_text())
    assert [a["category_id"] for a in raw["annotations"]] == [1, 2, 2]


def test_csv_unknown_image_is_an_error(csv_images, tmp_path):
    csv_file = _write_csv(tmp_path, "a.png,2,3,6,7,nodule", "a.jpg,2,3,6,7,nodule")
    message = r"boxes\.csv: line 3: image 'a\.jpg' is not among the 3 images.*close matches: a\.png"
    with pytest.raises(ValueError, match=message):
        prepare_from_csv(str(csv_images), csv_file, str(tmp_path / "t.json"))


def test_csv_x2_before_x1_is_an_error(csv_images, tmp_path):
    csv_file = _write_csv(tmp_path, "a.png,2,3,6,7,nodule", "b.png,8,3,6,7,nodule")
    with pytest.raises(
        ValueError, match=r"line 3: box x1=8, y1=3, x2=6, y2=7 of image b\.png \(width 40, height 30\): x2 <= x1"
    ):
        prepare_from_csv(str(csv_images), csv_file, str(tmp_path / "t.json"))


def test_csv_box_outside_the_image_is_an_error(csv_images, tmp_path):
    csv_file = _write_csv(tmp_path, "a.png,2,3,21,7,nodule")
    message = r"line 2: box x1=2, y1=3, x2=21, y2=7 of image a\.png \(width 20, height 10\): outside the image"
    with pytest.raises(ValueError, match=message):
        prepare_from_csv(str(csv_images), csv_file, str(tmp_path / "t.json"))


def test_csv_negative_coordinate_and_unknown_label_are_errors(csv_images, tmp_path):
    with pytest.raises(ValueError, match=r"line 2: box x1=-1, .*a negative coordinate"):
        prepare_from_csv(str(csv_images), _write_csv(tmp_path, "a.png,-1,3,6,7,nodule"), str(tmp_path / "t.json"))
    with pytest.raises(ValueError, match=r"line 2: label 'tumour' is not a class; known classes: lesion, nodule"):
        csv_file = _write_csv(tmp_path, "a.png,1,3,6,7,tumour")
        prepare_from_csv(str(csv_images), csv_file, str(tmp_path / "t.json"), class_names=CLASSES)
