import json

from gn_detection.data.coco import load_coco_json
from gn_detection.datasets.synthetic_coco import write_synthetic_coco


def test_a_small_synthetic_coco_is_valid_and_reproducible(tmp_path, caplog):
    path = write_synthetic_coco(str(tmp_path / "a.json"), num_images=200, num_annotations=1500, seed=4)
    again = write_synthetic_coco(str(tmp_path / "b.json"), num_images=200, num_annotations=1500, seed=4)
    assert open(path, "rb").read() == open(again, "rb").read()
    assert not (tmp_path / "a.json.tmp").exists()

    data = json.loads(open(path).read())
    assert (len(data["images"]), len(data["annotations"]), len(data["categories"])) == (200, 1500, 80)
    category_ids = [c["id"] for c in data["categories"]]
    assert category_ids[0] == 1 and category_ids[-1] == 90 and 12 not in category_ids
    assert len({a["id"] for a in data["annotations"]}) == 1500

    caplog.set_level("WARNING")
    loaded = load_coco_json(path, str(tmp_path), filter_empty=False)
    assert not caplog.records  # nothing dropped: every box and polygon is inside its image
    assert sum(len(r["annotations"]) for r in loaded.records) == 1500
    assert len(loaded.thing_classes) == 80
    for record in loaded.records:
        for ann in record["annotations"]:
            x0, y0, x1, y1 = ann["bbox"]
            assert 0 <= x0 < x1 <= record["width"] and 0 <= y0 < y1 <= record["height"]
