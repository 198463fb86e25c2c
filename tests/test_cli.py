import subprocess
import sys

from gn_detection.cli import main
from tests.conftest import TINY_CONFIG


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
