import json

import pytest

from gn_detection.benchmark.data import measure_worker_memory
from gn_detection.cli import main
from gn_detection.datasets.synthetic_coco import write_synthetic_coco


@pytest.fixture(scope="module")
def coco_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("coco") / "instances.json"
    return write_synthetic_coco(str(path), num_images=4000, num_annotations=30000, seed=0)


def test_serialized_records_keep_workers_small(coco_json):
    as_list = measure_worker_memory(coco_json, 2, "list")
    serialized = measure_worker_memory(coco_json, 2, "serialized")
    assert len(as_list) == len(serialized) == 2
    # ~30 MB of dicts, lists and floats, copied into a worker as it reads them; the buffer is only read
    assert min(as_list) > max(serialized) + 15, (as_list, serialized)


def test_benchmark_data_command(coco_json, tmp_path, capsys):
    output = tmp_path / "figures.json"
    assert main(["benchmark-data", "--json", coco_json, "--loaders", "gn_detection", "pycocotools",
                 "--workers", "1", "--output", str(output)]) == 0
    report = json.loads(output.read_text())
    assert [row["loader"] for row in report["load"]] == ["gn_detection", "pycocotools"]
    for row in report["load"]:
        assert row["seconds"] > 0 and row["peak_rss_mb"] > row["added_mb"] > 0
        assert row["torch_imported"] is False  # neither loader needs torch, so its peak holds none
    assert set(report["workers"]) == {"list", "serialized"} and all(len(v) == 1 for v in report["workers"].values())
    assert "wrote" in capsys.readouterr().out


def test_benchmark_data_needs_an_existing_json(tmp_path, capsys):
    assert main(["benchmark-data", "--json", str(tmp_path / "none.json"), "--output", str(tmp_path / "o.json")]) == 2
    assert "none.json: no such file" in capsys.readouterr().err
