"""What the bad-input campaign's files share: a tiny COCO set, the CLI run in-process, and the
check that an error is one clear line. Each case must end in exit code 2, no traceback, the key
or file named, and nothing written where nothing should be."""
import pytest

from gn_detection.cli import main
from tests.helpers import TINY_CONFIG, make_sample, write_coco_dataset

TINY = str(TINY_CONFIG)
FAST = ["DATALOADER.NUM_WORKERS", "0", "SOLVER.MAX_ITER", "2", "SOLVER.STEPS", "()", "SOLVER.WARMUP_ITERS", "0"]


@pytest.fixture
def data(tmp_path):
    """A two-image COCO set and the overrides that train and test on it."""
    root = tmp_path / "data"
    root.mkdir()
    json_file = write_coco_dataset(root, [make_sample(96, 128, 2, 3, seed=i) for i in range(2)])
    opts = ["DATASETS.COCO_INSTANCES", f"[['bad_inputs', '{json_file}', '{root}']]",
            "DATASETS.TRAIN", "('bad_inputs',)", "DATASETS.TEST", "('bad_inputs',)"]
    return root, json_file, opts


def run_cli(argv, capsys):
    """(exit code, stderr) of ``gn-detect argv``; argparse's errors exit via SystemExit."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def assert_clear_error(code, err, *named):
    """Exit code 2 and one last line, ``gn-detect CMD: error: ...``, naming each of ``named``."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.rstrip().splitlines()
    assert lines and ": error: " in lines[-1], f"the error is not one last line:\n{err}"
    assert len(lines[-1]) < 1000, f"the error line runs to {len(lines[-1])} characters"
    for text in named:
        assert text in lines[-1], f"{text!r} not in:\n{err}"
