"""read_json parses the annotations in slices with orjson, and gives what json.load gives for any
layout, falling back to json.load where slicing does not apply."""
import json
import math

import numpy as np
import pytest

from gn_detection.data import json_file
from gn_detection.data.json_file import read_json


def coco_like(rng, num_annotations: int, **extra_annotation_fields) -> dict:
    annotations = [
        {
            "segmentation": [list(np.round(rng.uniform(0, 500, size=2 * rng.integers(3, 9)), 2))],
            "area": float(rng.uniform(1, 1e4)),
            "iscrowd": 0,
            "image_id": int(rng.integers(1, 5)),
            "bbox": list(np.round(rng.uniform(0, 300, size=4), 2)),
            "category_id": int(rng.integers(1, 4)),
            "id": i,
            **extra_annotation_fields,
        }
        for i in range(1, num_annotations + 1)
    ]
    for crowd in annotations[::5]:  # COCO's crowds: an uncompressed RLE dict, its runs as a list
        crowd.update(iscrowd=1, segmentation={"counts": [int(n) for n in rng.integers(0, 900, size=12)], "size": [480, 640]})
    return {
        "info": {"description": 'a "quoted" {"annotations": [1]} string'},
        "images": [{"id": i, "file_name": f"{i}.png", "height": 480, "width": 640} for i in range(1, 5)],
        "annotations": annotations,
        "categories": [{"id": i, "name": f"c{i}"} for i in range(1, 4)],
    }


@pytest.fixture
def counted(monkeypatch):
    """How often orjson parsed, and whether json.load had to read the file."""
    calls = {"orjson": 0, "json": 0}
    loads, load = json_file.orjson.loads, json_file.json.load

    def counting_loads(data):
        calls["orjson"] += 1
        return loads(data)

    def counting_load(f):
        calls["json"] += 1
        return load(f)

    monkeypatch.setattr(json_file.orjson, "loads", counting_loads)
    monkeypatch.setattr(json_file.json, "load", counting_load)
    monkeypatch.setattr(json_file, "_SLICE_BYTES", 600)  # several slices of a small file
    return calls


@pytest.mark.parametrize("indent, separators", [(None, None), (None, (",", ":")), (2, None), ("\t", (" , ", " : "))])
def test_slices_give_what_json_load_gives(tmp_path, counted, indent, separators):
    data = coco_like(np.random.default_rng(0), 40)
    path = tmp_path / "coco.json"
    path.write_text(json.dumps(data, indent=indent, separators=separators))
    assert read_json(str(path)) == json.loads(path.read_text())
    assert counted["json"] == 0 and counted["orjson"] >= 5  # sliced, no fallback


def test_floats_parse_to_the_same_bits(tmp_path, counted):
    values = list(np.random.default_rng(1).uniform(-1e6, 1e6, size=2000)) + [0.1, 1e-300, 5e-324, 1.7976931348623157e308]
    data = {"images": [], "annotations": [{"id": i, "bbox": [v, -v, v / 3, v / 7]} for i, v in enumerate(values)]}
    path = tmp_path / "floats.json"
    path.write_text(json.dumps(data))
    ours = [b for a in read_json(str(path))["annotations"] for b in a["bbox"]]
    theirs = [b for a in json.loads(path.read_text())["annotations"] for b in a["bbox"]]
    assert [v.hex() for v in ours] == [v.hex() for v in theirs]
    assert counted["json"] == 0


@pytest.mark.parametrize(
    "name, extra",
    [
        ("a list of objects inside an annotation", {"parts": [{"x": 1}, {"y": 2}]}),
        ("cut marks inside a string", {"caption": "a}, {b}]c"}),
        ("non-standard NaN", {"score": math.nan}),
    ],
)
def test_other_layouts_read_as_json_load_reads_them(tmp_path, counted, name, extra):
    data = coco_like(np.random.default_rng(2), 30, **extra)
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(data))
    got, expected = read_json(str(path)), json.loads(path.read_text())
    assert json.dumps(got) == json.dumps(expected), name  # NaN != NaN, its text is equal
    if name == "non-standard NaN":
        assert counted["json"] == 1  # orjson refuses NaN: json.load read it


@pytest.mark.parametrize(
    "text",
    [
        '{"images": [], "annotations": [], "categories": []}',
        '{"annotations" : [ ] , "images": []}',
        '{"images": []}',
        '[1, 2]',
        '{"info": {"annotations": [{"id": 1}, {"id": 2}]}, "annotations": [{"id": 3}, {"id": 4}]}',
    ],
)
def test_small_and_unusual_files(tmp_path, text):
    path = tmp_path / "small.json"
    path.write_text(text)
    assert read_json(str(path)) == json.loads(text)


def test_invalid_json_raises_json_loads_error_with_its_position(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [], "annotations": [{"id": 1}, {"id": 2,}]}')
    with pytest.raises(json.JSONDecodeError, match="line 1 column"):
        read_json(str(path))
