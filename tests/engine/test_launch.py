"""Several machines, simulated: two torchrun "nodes" of one process each on 127.0.0.1 train the
tiny config as one process does with the same global batch."""
import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from gn_detection.checkpoint import load_torch_file
from gn_detection.cli import main
from tests.helpers import EXACT_SAMPLING, TINY_CONFIG, make_sample, write_coco_dataset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_opts(json_file, image_root, output_dir):
    overrides = {
        **EXACT_SAMPLING,
        "DATASETS.COCO_INSTANCES": f"[['nodes_set', '{json_file}', '{image_root}']]",
        "DATASETS.TRAIN": "('nodes_set',)",
        "DATASETS.TEST": "('nodes_set',)",
        "DATALOADER.NUM_WORKERS": "0",
        "SOLVER.IMS_PER_BATCH": "2",
        "SEED": "7",
        "OUTPUT_DIR": str(output_dir),
    }
    return [item for pair in overrides.items() for item in pair]


def _run_two_nodes(log_dir, opts_by_node, *train_args):
    """Start two torchrun nodes of one process each; their (exit code, output). The output goes
    through files: a node blocked on a full pipe would stall the other at the next collective."""
    port = _free_port()
    logs = [open(log_dir / f"node{rank}.log", "w+") for rank in (0, 1)]
    nodes = [
        subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
             "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
             "-m", "gn_detection.cli", "train", *train_args, "--config-file", str(TINY_CONFIG), *opts],
            stdout=logs[rank], stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for rank, opts in enumerate(opts_by_node)
    ]
    codes = [node.wait(timeout=300) for node in nodes]
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read())
        log.close()
    return list(zip(codes, outputs))


def test_two_torchrun_nodes_match_one_process_of_the_global_batch(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    # Equal sizes and instance counts: the per-image loss terms are equally many.
    json_file = write_coco_dataset(root, [make_sample(96, 128, 2, 3, seed=10 + i) for i in range(4)])
    assert main(["train", "--config-file", str(TINY_CONFIG), *_train_opts(json_file, root, tmp_path / "one")]) == 0

    outputs = _run_two_nodes(tmp_path, [_train_opts(json_file, root, tmp_path / "nodes")] * 2)
    assert all(code == 0 for code, _ in outputs), outputs

    one = load_torch_file(str(tmp_path / "one" / "model_final.pth"))["model"]
    two = load_torch_file(str(tmp_path / "nodes" / "model_final.pth"))["model"]
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5)
    # Evaluation sharded the 4 images over the two nodes and gathered them on the first.
    detections = json.loads((tmp_path / "nodes" / "inference" / "coco_instances_results.json").read_text())
    assert {d["image_id"] for d in detections} == {1, 2, 3, 4}
    one_results = json.loads((tmp_path / "one" / "inference" / "results.json").read_text())
    two_results = json.loads((tmp_path / "nodes" / "inference" / "results.json").read_text())
    assert two_results["bbox"]["AP"] == pytest.approx(one_results["bbox"]["AP"], abs=0.5)

    # Resumed on "machines" that do not share OUTPUT_DIR: the second finds no checkpoint.
    opts = [_train_opts(json_file, root, tmp_path / "nodes"), _train_opts(json_file, root, tmp_path / "empty")]
    outputs = _run_two_nodes(tmp_path, [o + ["SOLVER.MAX_ITER", "4"] for o in opts], "--resume")
    for code, output in outputs:
        assert code != 0 and "iteration by rank: [3, 0]" in output and "one shared folder" in output, output
