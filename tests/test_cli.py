import json
import subprocess
import sys

import pytest

from gn_detection.checkpoint import load_torch_file
from gn_detection.cli import main
from tests.helpers import TINY_CONFIG, make_sample, pycocotools_ap, write_coco_dataset


def test_build_runs_a_forward_pass_and_reports_it(caplog):
    caplog.set_level("INFO", logger="gn_detection")
    assert main(["build", "--config-file", str(TINY_CONFIG), "--image-size", "96"]) == 0
    text = caplog.text
    assert "GroupNorm x" in text and "FrozenBatchNorm2d" not in text
    assert "loss_mask=" in text and "detections with fields" in text


def test_bad_override_is_reported_without_a_traceback(capsys):
    assert main(["build", "--config-file", str(TINY_CONFIG), "MODEL.GROUP_NORM.NUM_GROUPS", "24"]) == 2
    err = capsys.readouterr().err
    assert str(TINY_CONFIG) in err and "NUM_GROUPS=24 does not divide" in err and "Traceback" not in err
    assert main(["build", "--config-file", str(TINY_CONFIG), "MODEL.NOPE", "1"]) == 2
    assert "command-line override: unknown config key MODEL.NOPE" in capsys.readouterr().err


def test_tools_script_calls_the_cli():
    result = subprocess.run(
        [sys.executable, "tools/build_model.py", "--config-file", "configs/missing.yaml"],
        capture_output=True,
        text=True,
        cwd=TINY_CONFIG.parents[2],
    )
    assert result.returncode == 2 and "configs/missing.yaml: no such config file" in result.stderr


def test_train_then_eval_only_then_visualize(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    json_file = write_coco_dataset(data, [make_sample(96, 128, 2, 3, seed=i) for i in range(4)])
    output = tmp_path / "run"
    opts = [
        "DATASETS.COCO_INSTANCES", f"[['cli_set', '{json_file}', '{data}']]",
        "DATASETS.TRAIN", "('cli_set',)",
        "DATASETS.TEST", "('cli_set',)",
        "DATALOADER.NUM_WORKERS", "0",
        "SOLVER.MAX_ITER", "3",
        "SOLVER.STEPS", "()",
        "SOLVER.WARMUP_ITERS", "1",
        "OUTPUT_DIR", str(output),
        "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0",
        "TEST.EVAL_PERIOD", "2",
    ]
    assert main(["train", "--config-file", str(TINY_CONFIG), *opts]) == 0
    assert (output / "last_checkpoint").read_text() == "model_final.pth"
    assert load_torch_file(str(output / "model_final.pth"))["iteration"] == 3
    assert [json.loads(line)["iteration"] for line in (output / "metrics.json").read_text().splitlines()] == [2]
    assert "cli_set" in (output / "config.yaml").read_text()
    assert list(output.glob("events.out.tfevents.*"))
    log = (output / "log.txt").read_text()
    assert log.count("cli_set: box AP") == 2  # after iteration 2 (EVAL_PERIOD) and at the end (3)
    assert "eta" in log and "lr" in log
    results_file = output / "inference" / "results.json"
    first = json.loads(results_file.read_text())
    detections = output / "inference" / "coco_instances_results.json"
    assert set(first) == {"bbox", "segm"}
    for task in ("bbox", "segm"):  # the final evaluation's AP is pycocotools' for its detections
        assert first[task]["AP"] == pytest.approx(pycocotools_ap(json_file, detections, task), abs=1e-9)

    results_file.unlink()
    assert main(["train", "--config-file", str(TINY_CONFIG), "--eval-only", *opts]) == 0
    assert json.loads(results_file.read_text()) == first

    assert main(
        ["visualize", "--config-file", str(TINY_CONFIG), "--weights", str(output / "model_final.pth"),
         "--input", str(data / "0001.png"), "--output", str(tmp_path / "vis"), "--confidence-threshold", "0", *opts]
    ) == 0
    assert main(
        ["visualize", "--config-file", str(TINY_CONFIG), "--dataset", "cli_set", "--num-images", "2",
         "--output", str(tmp_path / "gt"), *opts]
    ) == 0
    assert main(
        ["visualize", "--config-file", str(TINY_CONFIG), "--dataset", "cli_set", "--num-images", "1",
         "--weights", str(output / "model_final.pth"), "--output", str(tmp_path / "pred"), *opts]
    ) == 0
    from PIL import Image

    assert Image.open(tmp_path / "vis" / "0001.png").size == (128, 96)
    assert sorted(p.name for p in (tmp_path / "gt").iterdir()) == ["gt_1.png", "gt_2.png"]
    assert [p.name for p in (tmp_path / "pred").iterdir()] == ["0001.png"]
    assert main(["visualize", "--config-file", str(TINY_CONFIG), "--input", "x.png", "--output", "o", *opts]) == 2


def test_unregistered_dataset_is_named(capsys, tmp_path):
    code = main(["train", "--config-file", str(TINY_CONFIG), "DATASETS.TRAIN", "('nope',)", "OUTPUT_DIR", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err
    assert "DATASETS.TRAIN='nope' is not in the DATASET registry" in err and "shapes_train" in err


def test_fine_tune_on_synthetic_xrays_reports_ap_and_froc(tmp_path, small_builtin_datasets):
    output = tmp_path / "xray"
    config = TINY_CONFIG.parents[1] / "medical" / "synthetic_xray_R_18_FPN_gn.yaml"
    opts = ["SOLVER.MAX_ITER", "3", "SOLVER.STEPS", "()", "SOLVER.WARMUP_ITERS", "1",
            "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", str(output)]
    assert main(["train", "--config-file", str(config), *opts]) == 0
    results = json.loads((output / "inference" / "results.json").read_text())
    assert set(results) == {"bbox", "segm", "froc"}
    points = [f"sensitivity@{fp:g}" for fp in (0.125, 0.25, 0.5, 1, 2, 4, 8)]
    sensitivities = [results["froc"][p] for p in points]
    assert sensitivities == sorted(sensitivities)  # more false positives allowed never finds less
    assert results["froc"]["mean_sensitivity"] == pytest.approx(sum(sensitivities) / len(points))
    assert "mean FROC sensitivity" in (output / "log.txt").read_text()
    overlays = tmp_path / "overlays"
    args = ["visualize", "--config-file", str(config), "--weights", str(output / "model_final.pth"),
            "--dataset", "xray_val", "--num-images", "2", "--confidence-threshold", "0", "--output", str(overlays)]
    assert main(args) == 0
    assert sorted(p.name for p in overlays.iterdir()) == ["000001.png", "000002.png"]


def test_prepare_and_pixel_stats_commands(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    for i in range(2):
        Image.fromarray(np.full((20, 30), 50 * (i + 1), dtype=np.uint8)).save(images / f"scan{i}.png")
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[5:10, 5:15] = 255
    Image.fromarray(mask).save(masks / "scan0__nodule__1.png")
    out = tmp_path / "instances.json"
    assert main(["prepare", "--images", str(images), "--masks", str(masks), "--classes", "nodule", "--output", str(out)]) == 0
    assert "nodule" in capsys.readouterr().out
    coco = json.loads(out.read_text())
    assert len(coco["images"]) == 2 and len(coco["annotations"]) == 1 and coco["annotations"][0]["area"] == 50

    opts = ["DATASETS.COCO_INSTANCES", f"[['scans', '{out}', '{images}']]", "DATASETS.TRAIN", "('scans',)", "INPUT.FORMAT", "L"]
    assert main(["pixel-stats", "--config-file", str(TINY_CONFIG), *opts]) == 0
    printed = capsys.readouterr().out
    assert "MODEL.PIXEL_MEAN: [75.000]" in printed and "MODEL.PIXEL_STD: [25.000]" in printed
    assert main(["prepare", "--images", str(images), "--output", str(out)]) == 2
