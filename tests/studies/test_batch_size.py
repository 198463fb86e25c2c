import json

import pytest

from gn_detection.cli import main
from gn_detection.studies import batch_size
from tests.helpers import TINY_CONFIG, make_sample, write_coco_dataset


@pytest.fixture
def study_args(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    json_file = write_coco_dataset(data, [make_sample(96, 128, 2, 3, seed=i) for i in range(4)])
    output = tmp_path / "study"
    opts = ["DATASETS.COCO_INSTANCES", f"[['study_set', '{json_file}', '{data}']]", "DATASETS.TRAIN", "('study_set',)",
            "DATASETS.TEST", "('study_set',)", "DATALOADER.NUM_WORKERS", "0", "SOLVER.MAX_ITER", "100",
            "SOLVER.STEPS", "(50,)", "SOLVER.WARMUP_ITERS", "20"]
    args = ["study", "--config-file", str(TINY_CONFIG), "--norms", "GN", "FRN", "--batches", "1", "2",
            "--seeds", "0", "1", "--epochs", "1", "--output", str(output), *opts]
    return args, output


def test_the_study_runs_each_norm_batch_and_seed_for_the_same_epochs(study_args, capsys):
    args, output = study_args
    assert main(args) == 0
    rows = json.loads((output / "study.json").read_text())
    assert [(r["norm"], r["batch"], r["seed"]) for r in rows] == [
        (n, b, s) for n in ("GN", "FRN") for b in (1, 2) for s in (0, 1)
    ]
    assert {(r["batch"], r["iterations"]) for r in rows} == {(1, 4), (2, 2)}  # 4 images, one epoch
    run = (output / "FRN_b1_s1" / "config.yaml").read_text()
    # tiny's BASE_LR 0.01 is for 2 images; the steps and warm-up keep their fractions of the run
    assert "BASE_LR: 0.005" in run and "STEPS:\n  - 2" in run and "WARMUP_ITERS: 1" in run and "SEED: 1" in run
    assert "NORM: FRN" in run
    table = (output / "study.md").read_text()
    assert table.count("| FRN |") == 2 and (output / "study.png").stat().st_size > 1000
    assert table.strip() in capsys.readouterr().out


def test_a_study_cut_off_continues_where_it_stopped(study_args, monkeypatch):
    args, output = study_args
    seeds = args.index("--seeds")
    args = args[:seeds] + ["--seeds", "0"] + args[seeds + 3 :]  # one seed is enough here
    assert main(args) == 0
    before = json.loads((output / "study.json").read_text())
    assert len(before) == 4
    (output / "GN_b2_s0" / batch_size.RESULT_FILE).unlink()  # as if killed after training, before its row
    calls = []

    def only_the_unfinished(cfg, resume):
        calls.append((cfg.OUTPUT_DIR, resume))
        return original(cfg, resume=resume)

    original = batch_size.run_training
    monkeypatch.setattr(batch_size, "run_training", only_the_unfinished)
    assert main(args) == 0
    assert calls == [(str(output / "GN_b2_s0"), True)]
    after = json.loads((output / "study.json").read_text())
    assert [(r["norm"], r["batch"], r["seed"], r["box_ap"]) for r in after] == [
        (r["norm"], r["batch"], r["seed"], r["box_ap"]) for r in before
    ]


def test_a_study_with_other_epochs_does_not_reuse_the_runs(study_args, capsys):
    args, output = study_args
    seeds = args.index("--seeds")
    args = args[:seeds] + ["--seeds", "0"] + args[seeds + 3 :]
    norms = args.index("--norms")
    args = args[:norms] + ["--norms", "GN"] + args[norms + 3 :]
    assert main(args) == 0
    epochs = args.index("--epochs")
    args[epochs + 1] = "2"
    assert main(args) == 2
    assert "trained 4 iterations, this study asks for 8" in capsys.readouterr().err
