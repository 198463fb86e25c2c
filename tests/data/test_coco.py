import json
import logging
import os

import numpy as np
import pycocotools.mask as mask_util
import pytest

from gn_detection.data.coco import CocoInstances, load_coco_json
from gn_detection.data.segmentation import segmentation_to_mask

SQUARE = [[2, 3, 6, 3, 6, 7, 2, 7]]  # pixel-edge corners (2, 3)-(6, 7): columns 2..5, rows 3..6
LOGGER = "gn_detection.data.coco"


def _image(image_id, height=10, width=20, file_name=None):
    return {"id": image_id, "file_name": file_name or f"img{image_id}.jpg", "height": height, "width": width}


def _ann(ann_id, image_id=1, category_id=1, bbox=(1, 2, 3, 4), segmentation=SQUARE, iscrowd=0):
    ann = {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": list(bbox), "iscrowd": iscrowd}
    if segmentation is not None:
        ann["segmentation"] = segmentation
    return ann


def _write(tmp_path, images, annotations, categories=None, name="instances.json"):
    categories = categories if categories is not None else [{"id": 1, "name": "thing"}]
    path = tmp_path / name
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return str(path)


def _shoelace(polygon):
    x, y = np.array(polygon[0::2], dtype=np.float64), np.array(polygon[1::2], dtype=np.float64)
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _column_major_runs(mask):
    """COCO's uncompressed RLE, written out by hand: alternating 0/1 run lengths, column-major,
    starting with a (possibly empty) run of zeros."""
    flat = mask.flatten(order="F")
    counts, current, run = [], 0, 0
    for value in flat:
        if value == current:
            run += 1
        else:
            counts.append(run)
            current, run = value, 1
    counts.append(run)
    return counts


def _blob_mask(height=10, width=20):
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[2:5, 3:9] = 1
    mask[6:9, 12:14] = 1
    mask[0, 19] = 1
    return mask


# ---- records, categories ----


def test_record_fields_and_root(tmp_path):
    json_file = _write(tmp_path, [_image(5, height=10, width=20, file_name="sub/a.jpg")],
                       [_ann(11, image_id=5, bbox=(1, 2, 3, 4))])
    dataset = load_coco_json(json_file, "/data/root")

    assert isinstance(dataset, CocoInstances)
    assert dataset.records == [{
        "file_name": os.path.join("/data/root", "sub/a.jpg"),
        "image_id": 5, "height": 10, "width": 20,
        "annotations": [{"id": 11, "bbox": [1.0, 2.0, 4.0, 6.0], "category_id": 1,
                         "segmentation": SQUARE, "iscrowd": 0}],
    }]


def test_non_contiguous_category_ids(tmp_path):
    categories = [{"id": 7, "name": "seven"}, {"id": 3, "name": "three"}]
    json_file = _write(tmp_path, [_image(1)], [_ann(1, category_id=7), _ann(2, category_id=3)], categories)
    dataset = load_coco_json(json_file, "")

    assert dataset.thing_classes == ["three", "seven"]
    assert dataset.category_ids == [3, 7]
    labels = [a["category_id"] for a in dataset.records[0]["annotations"]]
    assert labels == [2, 1]
    assert [dataset.category_ids[k - 1] for k in labels] == [7, 3]


def test_crowd_annotations_are_kept(tmp_path):
    mask = _blob_mask()
    rle = {"size": [10, 20], "counts": _column_major_runs(mask)}
    json_file = _write(tmp_path, [_image(1)], [_ann(1, segmentation=rle, iscrowd=1), _ann(2)])
    anns = load_coco_json(json_file, "").records[0]["annotations"]

    assert [(a["id"], a["iscrowd"]) for a in anns] == [(1, 1), (2, 0)]
    assert anns[0]["segmentation"] == rle


def test_empty_images_filtered_or_kept(tmp_path, caplog):
    images = [_image(1), _image(2), _image(3)]
    # image 3's only annotation has an empty box, so it ends up empty too
    json_file = _write(tmp_path, images, [_ann(1, image_id=1), _ann(2, image_id=3, bbox=(1, 1, 0, 4))])

    with caplog.at_level(logging.INFO, logger=LOGGER):
        filtered = load_coco_json(json_file, "")
    assert [r["image_id"] for r in filtered.records] == [1]
    assert any("removed 2 of 3 images" in r.getMessage() for r in caplog.records)

    kept = load_coco_json(json_file, "", filter_empty=False)
    assert [r["image_id"] for r in kept.records] == [1, 2, 3]
    assert [len(r["annotations"]) for r in kept.records] == [1, 0, 0]


# ---- boxes ----


def test_boxes_clipped_to_image(tmp_path):
    anns = [
        _ann(1, bbox=(-5, 2, 10, 4)),      # left edge outside
        _ann(2, bbox=(15, 7, 10, 10)),     # right and bottom edges outside
        _ann(3, bbox=(2.5, 1.25, 3, 2)),   # inside, fractional
    ]
    json_file = _write(tmp_path, [_image(1, height=10, width=20)], anns)
    boxes = {a["id"]: a["bbox"] for a in load_coco_json(json_file, "").records[0]["annotations"]}

    assert boxes == {1: [0.0, 2.0, 5.0, 6.0], 2: [15.0, 7.0, 20.0, 10.0], 3: [2.5, 1.25, 5.5, 3.25]}
    assert all(isinstance(v, float) for box in boxes.values() for v in box)


def test_empty_boxes_dropped_with_one_warning(tmp_path, caplog):
    anns = [
        _ann(1),
        _ann(21, bbox=(1, 1, 0, 4)),      # zero width
        _ann(22, bbox=(1, 1, 4, -2)),     # negative height
        _ann(23, bbox=(30, 2, 5, 5)),     # entirely right of the 20-wide image
        _ann(24, bbox=(-9, -9, 4, 4)),    # entirely above-left: empty after clipping
    ]
    json_file = _write(tmp_path, [_image(1, height=10, width=20)], anns, name="boxes.json")

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        dataset = load_coco_json(json_file, "")
    assert [a["id"] for a in dataset.records[0]["annotations"]] == [1]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "boxes.json" in message and "dropped 4 of 5" in message
    assert all(str(i) in message for i in (21, 22, 23, 24))


# ---- segmentations ----


def test_square_polygon_gives_exact_mask():
    expected = np.zeros((10, 12), dtype=np.uint8)
    expected[3:7, 2:6] = 1
    mask = segmentation_to_mask(SQUARE, 10, 12)
    assert mask.dtype == np.uint8 and mask.shape == (10, 12)
    np.testing.assert_array_equal(mask, expected)


def test_polygon_mask_area_matches_shoelace():
    polygon = [5.5, 3.2, 40.1, 8.7, 55.3, 37.9, 30.2, 58.4, 8.8, 44.1, 20.0, 25.0]
    mask = segmentation_to_mask([polygon], 64, 64)
    assert set(np.unique(mask)) == {0, 1}
    assert abs(int(mask.sum()) - _shoelace(polygon)) <= 10


def test_two_polygons_are_merged():
    second = [10, 0, 12, 0, 12, 2, 10, 2]
    mask = segmentation_to_mask(SQUARE + [second], 10, 12)
    assert mask.sum() == 16 + 4 and mask[0:2, 10:12].all()


def test_degenerate_polygons_ignored_by_segmentation_to_mask():
    # pycocotools alone would read a first "polygon" of 4 numbers as an XYWH box
    np.testing.assert_array_equal(segmentation_to_mask([[0, 0, 5, 5]], 10, 12), np.zeros((10, 12), np.uint8))
    np.testing.assert_array_equal(segmentation_to_mask([[1, 2, 3, 4]] + SQUARE, 10, 12),
                                  segmentation_to_mask(SQUARE, 10, 12))


def test_uncompressed_rle_round_trip(tmp_path):
    mask = _blob_mask()
    rle = {"size": [10, 20], "counts": _column_major_runs(mask)}
    json_file = _write(tmp_path, [_image(1)], [_ann(1, segmentation=rle)])
    segmentation = load_coco_json(json_file, "").records[0]["annotations"][0]["segmentation"]

    assert segmentation == rle  # kept as in the JSON
    np.testing.assert_array_equal(segmentation_to_mask(segmentation, 10, 20), mask)


@pytest.mark.parametrize("as_bytes", [False, True])
def test_compressed_rle_round_trip(tmp_path, as_bytes):
    mask = _blob_mask()
    encoded = mask_util.encode(np.asfortranarray(mask))
    rle = {"size": [10, 20], "counts": encoded["counts"].decode("ascii")}
    json_file = _write(tmp_path, [_image(1)], [_ann(1, segmentation=rle)])
    segmentation = load_coco_json(json_file, "").records[0]["annotations"][0]["segmentation"]
    assert segmentation == rle
    if as_bytes:
        segmentation = {"size": [10, 20], "counts": encoded["counts"]}

    decoded = segmentation_to_mask(segmentation, 10, 20)
    assert decoded.dtype == np.uint8 and decoded.shape == (10, 20)
    np.testing.assert_array_equal(decoded, mask)


def test_segmentation_to_mask_rejects_wrong_size_and_type():
    rle = {"size": [10, 20], "counts": _column_major_runs(_blob_mask())}
    with pytest.raises(ValueError, match=r"\[10, 20\].*\[11, 20\]"):
        segmentation_to_mask(rle, 11, 20)
    with pytest.raises(ValueError, match="str"):
        segmentation_to_mask("not a segmentation", 10, 20)


def test_degenerate_polygons_removed_and_empty_segmentations_dropped(tmp_path, caplog):
    good = [1, 1, 8, 1, 8, 8]
    anns = [
        _ann(1, segmentation=[good, [1, 2, 3, 4]]),     # keeps `good`, loses the 2-point polygon
        _ann(2, segmentation=[good, [1, 2, 3, 4, 5, 6, 7]]),  # odd count removed
        _ann(31, segmentation=[]),
        _ann(32, segmentation=None),                    # no "segmentation" key at all
        _ann(33, segmentation=[[1, 2, 3, 4]]),          # nothing left after removal
        _ann(34, segmentation={}),
    ]
    json_file = _write(tmp_path, [_image(1)], anns, name="segs.json")

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        dataset = load_coco_json(json_file, "")
    kept = {a["id"]: a["segmentation"] for a in dataset.records[0]["annotations"]}
    assert kept == {1: [good], 2: [good]}
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "segs.json" in message and "dropped 4 of 6" in message
    assert all(str(i) in message for i in (31, 32, 33, 34))


def test_no_warning_for_clean_file(tmp_path, caplog):
    json_file = _write(tmp_path, [_image(1)], [_ann(1), _ann(2)])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        load_coco_json(json_file, "")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# ---- errors ----


def test_rle_size_mismatch(tmp_path):
    rle = {"size": [12, 20], "counts": _column_major_runs(np.zeros((12, 20), np.uint8))}
    json_file = _write(tmp_path, [_image(4, height=10, width=20)], [_ann(77, image_id=4, segmentation=rle)],
                       name="rle.json")
    with pytest.raises(ValueError, match=r"rle\.json.*annotation id=77.*\[12, 20\].*\[10, 20\]"):
        load_coco_json(json_file, "")


def test_unknown_category_id(tmp_path):
    categories = [{"id": 3, "name": "a"}, {"id": 7, "name": "b"}]
    json_file = _write(tmp_path, [_image(1)], [_ann(42, category_id=5)], categories, name="cats.json")
    with pytest.raises(ValueError, match=r"cats\.json.*annotation id=42.*category_id 5.*known category ids: 3, 7"):
        load_coco_json(json_file, "")


def test_unknown_image_id(tmp_path):
    json_file = _write(tmp_path, [_image(1), _image(2)], [_ann(43, image_id=9)], name="imgs.json")
    with pytest.raises(ValueError, match=r"imgs\.json.*annotation id=43.*image_id 9.*ids 1, 2"):
        load_coco_json(json_file, "")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.json"):
        load_coco_json(str(tmp_path / "absent.json"), "")


def test_invalid_json(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [')
    with pytest.raises(ValueError, match=r"broken\.json.*not valid JSON"):
        load_coco_json(str(path), "")


@pytest.mark.parametrize(
    "content, match",
    [
        ([], r"not a COCO instances file.*list"),
        ({"annotations": [], "categories": []}, r"'images' is missing"),
        ({"images": [], "categories": []}, r"'annotations' is missing"),
        ({"images": [], "annotations": []}, r"'categories' is missing"),
        ({"images": {}, "annotations": [], "categories": []}, r"'images' must be a list, got dict"),
    ],
)
def test_not_coco(tmp_path, content, match):
    path = tmp_path / "other.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"other\.json.*" + match):
        load_coco_json(str(path), "")


@pytest.mark.parametrize("missing", ["id", "file_name", "height", "width"])
def test_image_missing_field(tmp_path, missing):
    image = _image(6)
    del image[missing]
    json_file = _write(tmp_path, [image], [], name="img_field.json")
    expected_id = r"an image" if missing == "id" else r"image id=6"
    with pytest.raises(ValueError, match=rf"img_field\.json.*{expected_id}.*has no '{missing}'"):
        load_coco_json(json_file, "")


@pytest.mark.parametrize("missing", ["id", "image_id", "category_id", "bbox"])
def test_annotation_missing_field(tmp_path, missing):
    ann = _ann(55)
    del ann[missing]
    json_file = _write(tmp_path, [_image(1)], [ann], name="ann_field.json")
    expected_id = r"an annotation" if missing == "id" else r"annotation id=55"
    with pytest.raises(ValueError, match=rf"ann_field\.json.*{expected_id}.*has no '{missing}'"):
        load_coco_json(json_file, "")


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("bbox", [1, 2, 3], r"bbox must be 4 finite numbers"),
        ("bbox", [1, 2, "3", 4], r"bbox must be 4 finite numbers"),
        ("category_id", "1", r"category_id must be an integer"),
        ("iscrowd", 2, r"iscrowd must be 0 or 1"),
        ("segmentation", [1, 2, 3, 4, 5, 6], r"segmentation must be a list of polygons"),
        ("segmentation", {"counts": [1]}, r"needs 'size' and 'counts'"),
        ("segmentation", [[1, 2, "x", 4, 5, 6]], r"polygon coordinates must be finite numbers"),
        ("bbox", [1, 2, float("nan"), 4], r"bbox must be 4 finite numbers"),
        ("bbox", [1, 2, True, 4], r"bbox must be 4 finite numbers"),
    ],
)
def test_ill_typed_annotation(tmp_path, field, value, match):
    ann = _ann(56)
    ann[field] = value
    json_file = _write(tmp_path, [_image(1)], [ann], name="typed.json")
    with pytest.raises(ValueError, match=r"typed\.json.*annotation id=56.*" + match):
        load_coco_json(json_file, "")


def test_duplicate_image_ids(tmp_path):
    json_file = _write(tmp_path, [_image(3), _image(3)], [], name="dup.json")
    with pytest.raises(ValueError, match=r"dup\.json.*image id 3 appears more than once"):
        load_coco_json(json_file, "")


def test_category_without_name(tmp_path):
    json_file = _write(tmp_path, [_image(1)], [], [{"id": 4}], name="cat.json")
    with pytest.raises(ValueError, match=r"cat\.json.*category id=4 has no 'name'"):
        load_coco_json(json_file, "")


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("height", 0, r"height must be a positive integer, got 0"),
        ("height", True, r"height must be a positive integer, got True"),
        ("width", "640", r"width must be a positive integer, got '640'"),
        ("id", 8.0, r"id must be an integer, got 8.0"),
        ("file_name", 7, r"file_name must be a string, got 7"),
    ],
)
def test_ill_typed_image(tmp_path, field, value, match):
    image = _image(8)
    image[field] = value
    json_file = _write(tmp_path, [image], [], name="size.json")
    with pytest.raises(ValueError, match=r"size\.json.*image id=8\.?0?: " + match):
        load_coco_json(json_file, "")


def test_an_image_that_is_not_an_object(tmp_path):
    json_file = _write(tmp_path, [_image(1), "0001.png"], [], name="str.json")
    with pytest.raises(ValueError, match=r"str\.json: every image must be a JSON object, got '0001.png'"):
        load_coco_json(json_file, "")


def test_compressed_rle_runs_are_pycocotools_runs():
    from gn_detection.data.segmentation import compressed_runs as _compressed_runs

    rng = np.random.default_rng(0)
    for _ in range(50):
        height, width = rng.integers(1, 40, size=2)
        mask = (rng.random((height, width)) < rng.random()).astype(np.uint8)
        counts = mask_util.encode(np.asfortranarray(mask))["counts"].decode()
        uncompressed = mask_util.frPyObjects(
            {"size": [int(height), int(width)], "counts": _runs_of(mask.flatten(order="F"))}, height, width
        )
        assert uncompressed["counts"].decode() == counts  # the reference encodes these runs so
        assert _compressed_runs(counts) == _runs_of(mask.flatten(order="F"))
    assert _compressed_runs("P") is None  # stops inside a number
    assert _compressed_runs("a b") is None  # a space is below the alphabet


def _runs_of(flat):
    runs, value, length = [], 0, 0
    for pixel in flat:
        if pixel != value:
            runs.append(length)
            value, length = pixel, 0
        length += 1
    return runs + [length]
