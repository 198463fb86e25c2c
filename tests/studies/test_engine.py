"""The study engine through ``gn-detect study``, as a user runs it, on scikit-learn's digits."""
import json
import subprocess
import sys

import pytest

from gn_detection.cli import main
from gn_detection.studies.engine import Run, format_table, plan_runs
from gn_detection.studies.paper import paper_error

TINY = ["--image-size", "16", "--width", "32"]


def _study(output, *extra):
    return ["study", "--task", "classification", "--data", "digits", "--norms", "BN", "GN", "--batches", "16", "8",
            "--epochs", "1", *TINY, "--output", str(output), *extra]


def test_a_tiny_sweep_writes_json_table_and_plot_and_a_second_run_skips_the_finished_ones(tmp_path):
    output = tmp_path / "study"
    done = subprocess.run([sys.executable, "-m", "gn_detection.cli", *_study(output)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = json.loads((output / "study.json").read_text())
    assert [(r["norm"], r["batch"], r["seed"]) for r in rows] == [("BN", 16, 0), ("BN", 8, 0), ("GN", 16, 0), ("GN", 8, 0)]
    assert [r["iterations"] for r in rows] == [1437 // 16, 1437 // 8] * 2  # one epoch of digits' training split
    for r in rows:  # an error is a whole number of the 360 validation digits
        assert abs(r["error"] * 360 / 100 - round(r["error"] * 360 / 100)) < 1e-6 and r["error"] < 90
    assert set(rows[0]["moment_gap"]) == {"d", "log_r"} and "moment_gap" not in rows[2]  # GN has no running moments
    table = (output / "study.md").read_text()
    assert "| GN | 8 |" in table and table.strip() in done.stdout
    assert "| BN | 16 |" in table and table.count("|  |") == 0  # the paper has BN and GN at 16 and 8
    assert (output / "study.png").stat().st_size > 1000
    assert "eta" in (output / "log.txt").read_text()

    # Started again: a finished run is kept as it is, a missing one is trained.
    kept = output / "GN_b16_s0" / "study_result.json"
    kept.write_text(json.dumps(dict(json.loads(kept.read_text()), error=77.5)))
    (output / "BN_b8_s0" / "study_result.json").unlink()
    assert main(_study(output)) == 0
    again = {(r["norm"], r["batch"]): r["error"] for r in json.loads((output / "study.json").read_text())}
    assert again[("GN", 16)] == 77.5 and (output / "BN_b8_s0" / "study_result.json").is_file()


def test_a_run_trained_otherwise_is_refused_not_reused(tmp_path, capsys):
    output = tmp_path / "study"
    args = ["study", "--task", "classification", "--norms", "GN", "--batches", "16", "--iterations", "2", *TINY,
            "--output", str(output)]
    assert main(args) == 0
    capsys.readouterr()
    assert main(args[:-4] + ["--iterations", "3"] + args[-4:]) == 2
    err = capsys.readouterr().err
    assert "GN_b16_s0/study_result.json: this run was trained otherwise" in err and "iterations: 2 there, 3 now" in err


@pytest.mark.parametrize("bad, message", [
    (["--epochs", "0"], "0 is not a finite number > 0"),
    (["--epochs", "-3"], "-3 is not a finite number > 0"),
    (["--epochs", "1", "--iterations", "5"], "not allowed with argument"),
])
def test_a_run_length_that_trains_nothing_is_refused_by_the_parser(tmp_path, capsys, bad, message):
    with pytest.raises(SystemExit):
        main(["study", "--task", "classification", "--output", str(tmp_path / "s"), *bad])
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("bad, message", [
    (["--batches", "5000"], "--batches [5000]: larger than the 1437 training images of digits"),
    (["--norms", "GroupNormal"], "GroupNormal"),
    (["--norms", "GN+XY"], "expected a registered name, or one followed by +WS"),
    (["--data", "nowhere.npz"], "'nowhere.npz' is not a classification source"),
    (["--config-file", "x.yaml"], "--task classification takes no --config-file"),
])
def test_bad_study_arguments_are_one_line_errors_before_any_training(tmp_path, capsys, bad, message):
    assert main(["study", "--task", "classification", *TINY, "--output", str(tmp_path / "s"), *bad]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "s" / "study.json").exists()


def test_the_video_task_trains_an_inflated_network_on_clips(tmp_path):
    output = tmp_path / "video"
    assert main(["study", "--task", "video", "--norms", "GN", "BN", "--batches", "4", "--iterations", "3", "--clips",
                 "8", "8", "--width", "32", "--output", str(output)]) == 0
    rows = json.loads((output / "study.json").read_text())
    assert [(r["norm"], r["iterations"]) for r in rows] == [("GN", 3), ("BN", 3)]
    assert all(r["error"] in (0.0, 12.5, 25.0, 37.5, 50.0, 62.5, 75.0, 87.5, 100.0) for r in rows)
    assert "| GN | 4 |" in (output / "study.md").read_text()


def test_plan_runs_sweeps_groups_only_for_norms_that_have_them_and_refuses_repeats():
    runs = plan_runs(["GN", "BN"], [32], [0], groups=[4, 1], channels_per_group=[16], has_groups=lambda n: n == "GN")
    assert [r.name for r in runs] == ["GN_b32_g4_s0", "GN_b32_g1_s0", "GN_b32_c16_s0", "BN_b32_s0"]
    assert [r.label for r in runs] == ["GN G=4", "GN G=1", "GN 16 ch/group", "BN"]
    with pytest.raises(ValueError, match="asked for twice.*GN_b32_s0"):
        plan_runs(["GN", "GN"], [32], [0])


def test_the_table_puts_the_papers_number_beside_ours_where_it_has_one():
    rows = [dict(norm="BN", batch=2, seed=s, error=e, iterations=10) for s, e in ((0, 3.0), (1, 5.0))]
    rows += [dict(norm="GN", batch=32, seed=0, groups=64, error=1.0, iterations=5)]
    rows += [dict(norm="LN", batch=8, seed=0, error=9.0, iterations=5)]
    table = format_table(rows, ["error"], task="classification").splitlines()
    assert table[2] == "| BN | 2 | 4.0 ± 1.0 | 3.0, 5.0 | 10 | 34.7 |"
    assert table[3] == "| GN G=64 | 32 | 1.0 ± 0.0 | 1.0 | 5 | 24.6 |"
    assert table[4] == "| LN | 8 | 9.0 ± 0.0 | 9.0 | 5 |  |"  # the paper has LN at 32 only
    assert paper_error("classification", "GN", 32, channels_per_group=1) == 28.4
    assert paper_error("video", "BN", 4) == pytest.approx(27.9) and paper_error("detection", "GN", 1) is None
    assert Run("BN*", 2, None).name == "BN*_b2"


def test_the_moment_table_reports_the_gap_and_both_errors_per_norm_and_batch():
    from gn_detection.studies.engine import format_moment_table

    rows = [dict(norm="BN", batch=2, seed=s, error=e, error_batch_stats=b, moment_gap=dict(d=d, log_r=r))
            for s, e, b, d, r in ((0, 4.0, 6.0, 0.2, 0.1), (1, 6.0, 8.0, 0.4, 0.3))]
    rows.append(dict(norm="GN", batch=2, seed=0, error=1.0))  # no running moments: not in the table
    assert format_moment_table(rows).splitlines()[2:] == ["| BN | 2 | 0.300 | 0.200 | 5.0 | 7.0 |"]
