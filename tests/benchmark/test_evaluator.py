import json
import math

import pycocotools.mask as mask_util
import pytest

from gn_detection.evaluation import BACKENDS
from gn_detection.benchmark.evaluator import _max_abs_diff, benchmark_evaluator, synthetic_coco

METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AP-1", "AP-2", "AP-3")


@pytest.fixture(scope="module")
def report():
    return benchmark_evaluator(20, num_categories=3, repeats=1, seed=3)


def test_backends_are_timed_and_agree(report):
    assert set(report) == {
        "num_images", "num_categories", "num_annotations", "num_detections", "repeats", "tasks", "seconds",
        "all_seconds", "metrics", "speedup", "identical_ap", "bitwise_identical_ap", "max_abs_diff",
    }
    assert (report["num_images"], report["repeats"], report["tasks"]) == (20, 1, ["bbox", "segm"])
    assert report["num_annotations"] > 40 and report["num_detections"] > report["num_annotations"]
    for backend in BACKENDS:
        assert report["seconds"][backend] > 0 and len(report["all_seconds"][backend]) == 1
    assert report["speedup"] == report["seconds"]["pycocotools"] / report["seconds"]["faster_coco_eval"]

    assert report["identical_ap"] and report["max_abs_diff"] <= 1e-9
    reference, faster = (report["metrics"][b] for b in BACKENDS)
    assert set(reference) == set(faster) == {"bbox", "segm"}
    for task in reference:
        assert set(reference[task]) == set(faster[task]) == set(METRICS)
        for key, value in reference[task].items():
            # neither perfect nor useless, so equal numbers are evidence the backends agree
            assert 0 < value < 100, (task, key)
            assert faster[task][key] == pytest.approx(value, abs=1e-9), (task, key)
    # masks are not their boxes
    assert reference["bbox"]["AP"] != pytest.approx(reference["segm"]["AP"])


def test_boxes_only_and_quiet(capsys):
    report = benchmark_evaluator(5, num_categories=3, repeats=2, tasks=("bbox",))
    assert report["tasks"] == ["bbox"] and len(report["all_seconds"]["pycocotools"]) == 2
    assert all(set(m) == {"bbox"} for m in report["metrics"].values())
    assert capsys.readouterr().out == ""  # COCOeval's printout went to the debug log
    with pytest.raises(ValueError, match="always scores boxes"):
        benchmark_evaluator(5, tasks=("segm",))


def test_synthetic_coco_is_fixed_by_its_seed():
    dataset, results = synthetic_coco(10, seed=1)
    assert (dataset, results) == synthetic_coco(10, seed=1)
    assert results != synthetic_coco(10, seed=2)[1]
    assert [image["id"] for image in dataset["images"]] == list(range(1, 11))
    annotations = dataset["annotations"]
    assert {a["category_id"] for a in annotations} == {c["id"] for c in dataset["categories"]}
    # every area range of COCOeval, polygons and RLE, and a crowd region
    areas = [a["area"] for a in annotations]
    assert min(areas) < 32 ** 2 <= sorted(areas)[len(areas) // 2] and max(areas) >= 96 ** 2
    assert {type(a["segmentation"]) for a in annotations} == {list, dict}
    assert any(a["iscrowd"] for a in annotations)
    for result in results:
        assert result["score"] > 0 and mask_util.area(result["segmentation"]) > 0


def test_max_abs_diff_matches_nan_with_nan():
    a = {"bbox": {"AP": 50.0, "APs": math.nan}}
    assert _max_abs_diff(a, {"bbox": {"AP": 50.0, "APs": math.nan}}) == 0.0
    assert _max_abs_diff(a, {"bbox": {"AP": 50.5, "APs": math.nan}}) == 0.5
    assert _max_abs_diff(a, {"bbox": {"AP": 50.0, "APs": 10.0}}) == math.inf
    assert _max_abs_diff(a, {"bbox": {"AP": 50.0}}) == math.inf


def test_cli_prints_the_speed_up_and_writes_json(tmp_path, capsys):
    from gn_detection.cli import main

    out = tmp_path / "eval.json"
    assert main(["benchmark-eval", "--images", "10", "--categories", "5", "--repeats", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "speed-up" in printed and "every AP identical: True" in printed
    report = json.loads(out.read_text())
    assert (report["num_images"], report["num_categories"], report["identical_ap"]) == (10, 5, True)
    assert report["speedup"] == report["seconds"]["pycocotools"] / report["seconds"]["faster_coco_eval"]
