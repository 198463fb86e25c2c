"""tools/gpu_check.sh, run on the CPU with the tiny config so that it cannot rot between the
sessions that have a GPU."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import TINY_CONFIG

SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "gpu_check.sh"


def run_check(tmp_path, **env):
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path / "out"), **env)
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600)


def test_writes_the_ratios_and_names_the_machine(tmp_path):
    frozen_bn = tmp_path / "tiny_frozen_bn.yaml"
    frozen_bn.write_text(
        f'_BASE_: "{TINY_CONFIG}"\nMODEL:\n  RESNETS:\n    NORM: "FrozenBN"\n  FPN:\n    NORM: ""\n'
        '  ROI_BOX_HEAD:\n    NORM: ""\n  ROI_MASK_HEAD:\n    NORM: ""\n'
    )
    done = run_check(tmp_path, DEVICE="cpu", SIZE="64 96", ITERS="1", WARMUP="0", GN_CONFIG=str(TINY_CONFIG),
                     FROZEN_BN_CONFIG=str(frozen_bn), REFERENCE="torchvision", EXTRA_OPTS="MODEL.CHANNELS_LAST False")
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert report["gpu"] is None and report["cpu"] and report["size"] == [64, 96] and report["batch"] == 2
    assert report["reference"] == "torchvision" and report["precisions"] == ["fp32", "bf16"]
    assert report["opts"] == ["MODEL.DEVICE", "cpu", "MODEL.CHANNELS_LAST", "False"]
    assert len(report["results"]) == 5  # GN and FrozenBN at two precisions, torchvision in fp32
    for precision in ("fp32", "bf16"):
        gn = report["results"][f"{TINY_CONFIG} [{precision}]"]
        twin = report["results"][f"{frozen_bn} [{precision}]"]
        reference = report["results"]["torchvision [fp32]"]
        ratios = report["summary"]["gn_over_frozen_bn"][precision]
        assert ratios["train_step"] == gn["train_step_s"] / twin["train_step_s"]
        assert ratios["memory"] == gn["train_step_memory_mb"] / twin["train_step_memory_mb"]
        speedup = report["summary"]["gn_speedup_over_reference_fp32"][precision]
        assert speedup["train_images_per_s"] == gn["train_images_per_s"] / reference["train_images_per_s"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given where there is no GPU")
def test_says_so_when_there_is_no_gpu(tmp_path):
    done = run_check(tmp_path)
    assert done.returncode == 2 and "no CUDA device" in done.stderr
