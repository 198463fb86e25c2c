import json

import pytest

from gn_detection.cli import main
from gn_detection.studies import detection
from gn_detection.studies.engine import RESULT_FILE
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
    args = ["study", "--task", "detection", "--config-file", str(TINY_CONFIG), "--norms", "GN", "FRN", "--batches", "1", "2",
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
    (output / "GN_b2_s0" / RESULT_FILE).unlink()  # as if killed after training, before its row
    calls = []

    def only_the_unfinished(cfg, resume):
        calls.append((cfg.OUTPUT_DIR, resume))
        return original(cfg, resume=resume)

    original = detection.run_training
    monkeypatch.setattr(detection, "run_training", only_the_unfinished)
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
    err = capsys.readouterr().err
    assert "GN_b1_s0/study_result.json: this run was trained otherwise" in err and "iterations: 4 there, 8 now" in err


def test_a_study_with_other_overrides_does_not_reuse_the_runs(study_args, capsys):
    """Same norms, batches and epochs, another config: the finished run is not that config's result."""
    args, output = study_args
    seeds = args.index("--seeds")
    args = args[:seeds] + ["--seeds", "0"] + args[seeds + 3 :]
    norms = args.index("--norms")
    args = args[:norms] + ["--norms", "GN"] + args[norms + 3 :]
    batches = args.index("--batches")
    args = args[:batches] + ["--batches", "2"] + args[batches + 3 :]
    assert main(args) == 0
    assert main(args + ["MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "16"]) == 2
    assert "GN_b2_s0/study_result.json: this run was trained otherwise" in capsys.readouterr().err


def test_every_norm_variant_sets_the_backbone_fpn_and_heads(tmp_path):
    from gn_detection.commands.common import setup_cfg
    from gn_detection.studies.engine import Run

    task = detection.DetectionTask({"": setup_cfg(str(TINY_CONFIG), [])}, iterations=3)
    for norm, expected_norms, expected_convs in [
        ("LN", ("LN",) * 4, ("",) * 4), ("BRN", ("BRN",) * 4, ("",) * 4), ("GN+WS", ("GN",) * 4, ("WS",) * 4),
        ("BN*", ("FrozenBN", "", "", ""), ("",) * 4),
    ]:
        cfg = task.run_cfg(Run(norm, 2, 5), str(tmp_path))
        assert tuple(cfg.MODEL[p].NORM for p in detection.PARTS) == expected_norms
        assert tuple(cfg.MODEL[p].CONV for p in detection.PARTS) == expected_convs
        assert (cfg.SOLVER.MAX_ITER, cfg.SEED, cfg.SOLVER.IMS_PER_BATCH) == (3, 5, 2)
    cfg = task.run_cfg(Run("GN", 2, 0, channels_per_group=8), str(tmp_path))
    assert (cfg.MODEL.GROUP_NORM.NUM_GROUPS, cfg.MODEL.GROUP_NORM.DIM_PER_GP) == (-1, 8)
    assert detection.norm_has_groups("GN+WS") and not detection.norm_has_groups("BN*")


def test_compare_norms_refuses_one_label_for_two_configs(tmp_path, capsys):
    args = ["compare-norms", "--configs", f"GN={TINY_CONFIG}", f"GN={TINY_CONFIG}", "--output", str(tmp_path / "c")]
    assert main(args) == 2
    assert "the label 'GN' is given twice" in capsys.readouterr().err and not (tmp_path / "c").exists()


def test_compare_norms_trains_each_config_as_it_is_at_each_batch(study_args):
    args, output = study_args
    opts = args[args.index(str(output)) + 1 :]
    opts[opts.index("SOLVER.MAX_ITER") + 1], opts[opts.index("SOLVER.STEPS") + 1] = "3", "(2,)"
    opts[opts.index("SOLVER.WARMUP_ITERS") + 1] = "1"
    args = ["compare-norms", "--configs", f"GN={TINY_CONFIG}", f"FRN={TINY_CONFIG}", "--batches", "1", "2",
            "--output", str(output), *opts, "MODEL.FPN.NORM", "FRN"]
    assert main(args) == 0
    rows = json.loads((output / "study.json").read_text())
    assert [(r["norm"], r["batch"], r["iterations"]) for r in rows] == [("GN", 1, 3), ("GN", 2, 3), ("FRN", 1, 3), ("FRN", 2, 3)]
    run = (output / "FRN_b2" / "config.yaml").read_text()
    assert "BASE_LR: 0.01" in run and "IMS_PER_BATCH: 2" in run  # tiny's LR is for 2 images
    assert "| FRN | 2 |" in (output / "study.md").read_text()
