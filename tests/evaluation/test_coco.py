import contextlib
import copy
import io
import json
import logging
import math
import sys

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from gn_detection.evaluation import BACKENDS, COCOEvaluator
from gn_detection.evaluation import coco as coco_module
from gn_detection.benchmark.evaluator import _model_outputs, synthetic_coco
from gn_detection.evaluation.froc import froc

SIZE = 128  # every image is SIZE x SIZE
# label 1 is dog (category 7), label 2 is cat (category 3): deliberately not in id order
CATEGORY_IDS = (7, 3)
CLASS_NAMES = ("dog", "cat")
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl")


def _rect_mask(x0, y0, x1, y1):
    mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
    mask[y0:y1, x0:x1] = 1
    return mask


def _uncompressed_rle(mask):
    """COCO's crowd format: run lengths over the column-major pixels, zeros first."""
    flat = mask.flatten(order="F")
    counts, value, run = [], 0, 0
    for pixel in flat:
        if pixel == value:
            run += 1
        else:
            counts.append(run)
            value, run = pixel, 1
    counts.append(run)
    return {"counts": [int(c) for c in counts], "size": [SIZE, SIZE]}


def _compressed_rle(mask):
    rle = mask_util.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


@pytest.fixture
def gt_file(tmp_path):
    """Images 11 and 12 with large, medium and small objects of categories 3 and 7, polygons and
    RLE, a crowd region; image 13 has nothing."""
    crowd = _rect_mask(40, 90, 120, 128)
    annotations = [
        dict(id=1, image_id=11, category_id=3, iscrowd=0, bbox=[10, 10, 100, 100], area=10000,
             segmentation=[[10, 10, 110, 10, 110, 110, 10, 110]]),
        dict(id=2, image_id=11, category_id=7, iscrowd=0, bbox=[20, 115, 40, 10], area=200,
             segmentation=[[20, 115, 60, 115, 40, 125]]),  # a triangle: its mask is not its box
        dict(id=3, image_id=12, category_id=7, iscrowd=0, bbox=[60, 20, 40, 40], area=1600,
             segmentation=_compressed_rle(_rect_mask(60, 20, 100, 60))),
        dict(id=4, image_id=12, category_id=3, iscrowd=0, bbox=[5, 80, 20, 20], area=400,
             segmentation=[[5, 80, 25, 80, 25, 100, 5, 100]]),
        # a triangle whose box is medium (40x40 > 32^2) while its mask is small
        dict(id=6, image_id=12, category_id=7, iscrowd=0, bbox=[5, 5, 40, 40], area=800,
             segmentation=[[5, 5, 45, 5, 5, 45]]),
        dict(id=5, image_id=12, category_id=3, iscrowd=1, bbox=[40, 90, 80, 38],
             area=int(crowd.sum()), segmentation=_uncompressed_rle(crowd)),
    ]
    dataset = dict(
        images=[dict(id=i, width=SIZE, height=SIZE, file_name=f"{i}.jpg") for i in (11, 12, 13)],
        categories=[dict(id=3, name="cat"), dict(id=7, name="dog")],
        annotations=annotations,
    )
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(dataset))
    return str(path)


def _gt_instances(gt_file):
    """(image_id, category_id, XYWH box, binary mask) of every non-crowd ground-truth object."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(gt_file)
    return [(a["image_id"], a["category_id"], list(a["bbox"]), coco.annToMask(a))
            for a in coco.dataset["annotations"] if not a["iscrowd"]]


def _outputs(instances, image_ids=(11, 12, 13), with_masks=True):
    """Model-style outputs per image from (image_id, category_id, XYWH box, mask, score)."""
    outputs = []
    for image_id in image_ids:
        mine = [inst for inst in instances if inst[0] == image_id]
        boxes = torch.tensor([[x, y, x + w, y + h] for _, _, (x, y, w, h), _, _ in mine],
                             dtype=torch.float32).reshape(-1, 4)
        output = dict(
            boxes=boxes,
            labels=torch.tensor([CATEGORY_IDS.index(c) + 1 for _, c, _, _, _ in mine], dtype=torch.int64),
            scores=torch.tensor([s for *_, s in mine], dtype=torch.float32),
        )
        if with_masks:
            masks = np.stack([m for _, _, _, m, _ in mine]) if mine else np.zeros((0, SIZE, SIZE))
            output["masks"] = torch.from_numpy(masks.astype(np.float32))[:, None] * 0.9  # probabilities
        outputs.append(output)
    return list(image_ids), outputs


def _shifted_instances(gt_file):
    """Every object moved 4 px right, plus a false positive on image 13. Scores rise in annotation
    order, so the medium-box small-mask triangle, a miss at IoU 0.7 and up, ranks above the hits:
    it costs segm APs only if its area is taken from its mask."""
    instances = []
    for i, (image_id, category, (x, y, w, h), mask) in enumerate(_gt_instances(gt_file)):
        instances.append((image_id, category, [x + 4, y, w, h], np.roll(mask, 4, axis=1), 0.5 + 0.1 * i))
    instances.append((13, 3, [30, 30, 50, 50], _rect_mask(30, 30, 80, 80), 0.95))
    return instances


def _evaluate(gt_file, instances, **kwargs):
    evaluator = COCOEvaluator(gt_file, category_ids=CATEGORY_IDS,
                              class_names=kwargs.pop("class_names", CLASS_NAMES), **kwargs)
    evaluator.process(*_outputs(instances))
    return evaluator.evaluate()


def _reference(gt_file, instances, task, cat_ids=None):
    """COCOeval's stats in percent, computed here from a results list built by hand."""
    results = []
    for image_id, category, box, mask, score in instances:
        result = dict(image_id=image_id, category_id=category, score=score)
        if task == "bbox":
            result["bbox"] = box
        else:
            result["segmentation"] = _compressed_rle(mask)
        results.append(result)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(gt_file)
        coco_eval = COCOeval(coco_gt, coco_gt.loadRes(results), task)
        if cat_ids is not None:
            coco_eval.params.catIds = cat_ids
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return [s * 100 if s >= 0 else math.nan for s in coco_eval.stats[:6]]


def test_perfect_predictions_score_100(gt_file, caplog, capsys):
    instances = [(*inst, 1.0) for inst in _gt_instances(gt_file)]
    # a detection of the crowd region: COCOeval ignores it rather than counting a false positive
    instances.append((12, 3, [40, 90, 80, 38], _rect_mask(40, 90, 120, 128), 1.0))
    with caplog.at_level(logging.INFO, logger=coco_module.__name__):
        results = _evaluate(gt_file, instances)
    assert set(results) == {"bbox", "segm"}
    for task in ("bbox", "segm"):
        for key in (*METRICS, "AP-dog", "AP-cat"):
            assert results[task][key] == pytest.approx(100.0), (task, key)
    assert "dog" in caplog.text and "cat" in caplog.text and "AP50" in caplog.text  # table, summary
    assert "Average Precision" not in capsys.readouterr().out  # COCOeval's printout went to the log


def test_shifted_boxes_match_pycocotools(gt_file):
    instances = _shifted_instances(gt_file)
    results = _evaluate(gt_file, instances)
    for task in ("bbox", "segm"):
        expected = _reference(gt_file, instances, task)
        assert results[task]["AP"] < 100
        assert [results[task][m] for m in METRICS] == pytest.approx(expected, abs=1e-9, nan_ok=True)
        for category, name in ((3, "cat"), (7, "dog")):
            expected_ap = _reference(gt_file, instances, task, cat_ids=[category])[0]
            assert results[task][f"AP-{name}"] == pytest.approx(expected_ap, abs=1e-9)
    assert results["bbox"]["AP"] != pytest.approx(results["segm"]["AP"])  # the triangle's mask


def test_faster_backend_gives_the_same_numbers(gt_file):
    instances = _shifted_instances(gt_file)
    reference = _evaluate(gt_file, instances, backend="pycocotools")
    faster = _evaluate(gt_file, instances, backend="faster_coco_eval")
    assert set(faster) == set(reference) == {"bbox", "segm"}
    for task in reference:
        assert set(faster[task]) == set(reference[task])
        for key, value in reference[task].items():
            assert faster[task][key] == pytest.approx(value, abs=1e-9, nan_ok=True), (task, key)


def test_no_predictions_give_zero_and_write_files(gt_file, tmp_path):
    out = tmp_path / "out"
    evaluator = COCOEvaluator(gt_file, category_ids=CATEGORY_IDS, class_names=CLASS_NAMES,
                              output_dir=str(out))
    evaluator.process(*_outputs([]))
    results = evaluator.evaluate()
    assert set(results) == {"bbox", "segm"}
    for task in results:
        assert results[task] == {m: 0.0 for m in (*METRICS, "AP-dog", "AP-cat")}
    assert json.loads((out / "inference" / "results.json").read_text()) == results
    assert json.loads((out / "inference" / "coco_instances_results.json").read_text()) == []
    assert sorted(p.name for p in (out / "inference").iterdir()) == [
        "coco_instances_results.json", "results.json"]  # no temporary file left behind

    evaluator.reset()
    assert set(evaluator.evaluate()) == {"bbox"}  # nothing processed: no masks seen either


def test_results_file_holds_the_coco_results(gt_file, tmp_path):
    instances = _shifted_instances(gt_file)
    results = _evaluate(gt_file, instances, output_dir=str(tmp_path))
    written = json.loads((tmp_path / "inference" / "coco_instances_results.json").read_text())
    assert len(written) == len(instances)
    first = next(r for r in written if r["image_id"] == 13)
    assert first["category_id"] == 3 and first["bbox"] == [30.0, 30.0, 50.0, 50.0]
    assert mask_util.decode(first["segmentation"]).sum() == 50 * 50
    assert json.loads((tmp_path / "inference" / "results.json").read_text()) == results


def test_froc_joins_the_results(gt_file, tmp_path, caplog):
    instances = _shifted_instances(gt_file)
    with caplog.at_level(logging.INFO, logger=coco_module.__name__):
        results = _evaluate(gt_file, instances, output_dir=str(tmp_path), froc=True)
    assert set(results) == {"bbox", "segm", "froc"}
    # 4 px shifts keep every box IoU >= 16/24, so all 5 lesions are hit (the crowd region is none)
    # with scores 0.5..0.9; the false positive on image 13 scores 0.95, so every threshold has
    # 1/3 FP per image: nothing below that rate, all lesions from 0.5 up
    expected = [0, 0, 100, 100, 100, 100, 100]
    keys = [f"sensitivity@{r}" for r in ("0.125", "0.25", "0.5", "1", "2", "4", "8")]
    assert [results["froc"][k] for k in keys] == pytest.approx(expected)
    assert results["froc"]["mean_sensitivity"] == pytest.approx(500 / 7)
    assert results["froc"]["recall_per_image"] == pytest.approx(100.0)
    assert results["froc"]["lesions"] == 5 and results["froc"]["images_with_lesions"] == 2
    # the same numbers as froc() on the written detections and the file's annotations
    detections = json.loads((tmp_path / "inference" / "coco_instances_results.json").read_text())
    annotations = json.loads(open(gt_file).read())["annotations"]
    assert results["froc"] == pytest.approx(froc(detections, annotations, [11, 12, 13]))
    assert json.loads((tmp_path / "inference" / "results.json").read_text())["froc"] == results["froc"]
    assert "froc" in caplog.text and "mean 71.429" in caplog.text


def test_labels_map_through_category_ids(gt_file):
    # every box and mask perfect, but each labelled as the other category
    swapped = [(i, 3 if c == 7 else 7, box, mask, 1.0) for i, c, box, mask in _gt_instances(gt_file)]
    results = _evaluate(gt_file, swapped, class_names=None)
    for task in ("bbox", "segm"):
        assert results[task]["AP"] == 0.0
        assert results[task]["AP-3"] == 0.0 and results[task]["AP-7"] == 0.0


def test_only_processed_images_count_once(gt_file):
    instances = [(*inst, 1.0) for inst in _gt_instances(gt_file)]
    evaluator = COCOEvaluator(gt_file, category_ids=CATEGORY_IDS, class_names=CLASS_NAMES)
    evaluator.process(*_outputs(instances, image_ids=(12,), with_masks=False))
    evaluator.process(*_outputs(instances, image_ids=(12,), with_masks=False))  # a padded sampler
    results = evaluator.evaluate()
    assert set(results) == {"bbox"}
    # image 11's objects were never predicted, but image 11 was not processed either
    assert results["bbox"]["AP"] == pytest.approx(100.0)
    assert math.isnan(results["bbox"]["APl"])  # image 12 has no large object


def test_other_ranks_return_nothing(gt_file, tmp_path, monkeypatch):
    monkeypatch.setattr(coco_module.comm, "is_main_process", lambda: False)
    evaluator = COCOEvaluator(gt_file, category_ids=CATEGORY_IDS, output_dir=str(tmp_path / "out"))
    evaluator.process(*_outputs(_shifted_instances(gt_file)))
    assert evaluator.evaluate() == {}
    assert not (tmp_path / "out").exists()


def test_bad_arguments_raise(gt_file, monkeypatch):
    with pytest.raises(ValueError, match="pycocotools, faster_coco_eval"):
        COCOEvaluator(gt_file, category_ids=CATEGORY_IDS, backend="detectron2")
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "faster_coco_eval", None)  # as if not installed
        with pytest.raises(ImportError, match="pip install faster-coco-eval"):
            COCOEvaluator(gt_file, category_ids=CATEGORY_IDS, backend="faster_coco_eval")
    with pytest.raises(ValueError, match=r"\[5\]"):
        COCOEvaluator(gt_file, category_ids=(3, 5))
    evaluator = COCOEvaluator(gt_file, category_ids=CATEGORY_IDS)
    output = dict(boxes=torch.zeros(1, 4), labels=torch.tensor([3]), scores=torch.ones(1))
    with pytest.raises(ValueError, match=r"1\.\.2"):
        evaluator.process([11], [output])
    with pytest.raises(ValueError, match="no image with id 99"):
        evaluator.process([99], [dict(output, labels=torch.tensor([1]))])


@pytest.mark.parametrize("backend", BACKENDS)
def test_evaluate_leaves_the_processed_detections_as_they_were(tmp_path, backend):
    """loadRes adds keys to what it is given; the evaluator hands it new dicts, not copies of
    every mask, and a second evaluate scores the same detections."""
    dataset, results = synthetic_coco(8, seed=1)
    json_file = tmp_path / "gt.json"
    json_file.write_text(json.dumps(dataset))
    category_ids = [c["id"] for c in dataset["categories"]]
    evaluator = COCOEvaluator(str(json_file), category_ids=category_ids, backend=backend)
    for image_id, output in _model_outputs(dataset, results, category_ids, with_masks=True):
        evaluator.process([image_id], [output])
    before = copy.deepcopy(evaluator._predictions)
    first = evaluator.evaluate()
    assert evaluator._predictions == before
    assert json.dumps(evaluator.evaluate()) == json.dumps(first)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("task", ["bbox", "segm"])
def test_results_are_loaded_as_load_res_loads_them(tmp_path, backend, task):
    coco_cls, _ = coco_module._load_backend(backend)
    dataset, results = synthetic_coco(6, seed=2)
    json_file = tmp_path / "gt.json"
    json_file.write_text(json.dumps(dataset))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = coco_cls(str(json_file))
        before = copy.deepcopy(results)
        ours = coco_module._load_results(coco_gt, results, task)
        drop = "bbox" if task == "segm" else "segmentation"
        theirs = coco_gt.loadRes([{k: v for k, v in r.items() if k != drop} for r in copy.deepcopy(results)])
    assert results == before
    assert ours.dataset["images"] == theirs.dataset["images"]
    assert ours.dataset["categories"] == theirs.dataset["categories"]
    assert len(ours.dataset["annotations"]) == len(theirs.dataset["annotations"]) == len(results)
    for mine, expected in zip(ours.dataset["annotations"], theirs.dataset["annotations"]):
        assert set(mine) == set(expected)
        for key, value in expected.items():
            assert np.array_equal(mine[key], value), key  # the integer width of an area may differ
