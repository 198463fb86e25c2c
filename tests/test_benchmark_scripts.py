import re
import subprocess
import sys

from tests.helpers import REPO


def test_against_commit_times_both_sides_interleaved_and_prints_the_ratio():
    out = subprocess.run(
        [sys.executable, "benchmarks/against_commit.py", "HEAD", "--config-file",
         "configs/tiny/mask_rcnn_R_18_FPN_tiny_gn.yaml", "--size", "64", "--batch", "1", "--iters", "1",
         "--precision", "fp32"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout
    lines = [line for line in out.splitlines() if "train" in line]
    assert lines[0].startswith("HEAD [fp32]") and lines[1].startswith("this checkout [fp32]")
    ratios = re.search(r"\((\d+\.\d+)x / (\d+\.\d+)x\)", lines[1])
    assert ratios and all(float(r) > 0 for r in ratios.groups())
