"""The cache every generated dataset shares: generated once, into place atomically, then reused."""
import json
import logging
import os
from pathlib import Path

import pytest

from gn_detection.datasets.rendering import dataset_folder, ensure_generated

OLD_MTIME_NS = 10**18  # 2001; a rewrite would set the current time


def _writer(calls: list):
    """A ``generate(root)`` that writes one image and a COCO JSON per split, counting its calls."""

    def generate(root: str) -> None:
        calls.append(root)
        for split in ("train", "val"):
            os.makedirs(os.path.join(root, split))
            Path(root, split, "1.png").write_bytes(b"pixels")
            os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
            Path(root, "annotations", f"instances_{split}.json").write_text(json.dumps(dict(images=[])))

    return generate


def test_generates_once_then_reuses(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gn_detection.datasets")
    calls = []
    folder = tmp_path / "toy_abc"
    located = ensure_generated(folder, ("train", "val"), _writer(calls), what="toy", caller="test")
    assert located == {s: (str(folder / "annotations" / f"instances_{s}.json"), str(folder / s)) for s in ("train", "val")}
    assert len(calls) == 1 and any("Generated toy" in r.getMessage() for r in caplog.records)
    assert [p.name for p in tmp_path.iterdir()] == ["toy_abc"], "a temporary folder was left behind"
    assert oct(folder.stat().st_mode & 0o777) == "0o755"

    files = [p for p in folder.rglob("*") if p.is_file()]
    for p in files:
        os.utime(p, ns=(OLD_MTIME_NS, OLD_MTIME_NS))
    caplog.clear()
    assert ensure_generated(folder, ("train", "val"), _writer(calls), what="toy", caller="test") == located
    assert len(calls) == 1 and not caplog.records
    assert all(p.stat().st_mtime_ns == OLD_MTIME_NS for p in files)


def test_a_failed_generation_leaves_nothing(tmp_path):
    def fail(root):
        Path(root, "half.png").write_bytes(b"")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensure_generated(tmp_path / "toy", ("train",), fail, what="toy", caller="test")
    assert list(tmp_path.iterdir()) == []


def test_keeps_the_copy_that_finished_first(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gn_detection.datasets")
    folder, calls = tmp_path / "toy", []
    first = _writer(calls)

    def racing(root):
        # While this run writes, another run completes the whole dataset.
        ensure_generated(folder, ("train",), _writer(calls), what="toy", caller="test")
        first(root)

    located = ensure_generated(folder, ("train",), racing, what="toy", caller="test")
    assert any("concurrently" in r.getMessage() for r in caplog.records)
    assert [p.name for p in tmp_path.iterdir()] == ["toy"] and os.path.isfile(located["train"][0])


def test_a_folder_without_its_json_is_named(tmp_path):
    (tmp_path / "toy" / "annotations").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"make_toy: .*toy exists but has no instances_val\.json"):
        ensure_generated(tmp_path / "toy", ("val",), _writer([]), what="toy", caller="make_toy")


def test_dataset_folder_differs_with_any_parameter(tmp_path):
    base = dataset_folder(tmp_path, "train5", dict(version=1, seed=0))
    assert base == dataset_folder(tmp_path, "train5", dict(seed=0, version=1))
    assert base.parent == tmp_path and base.name.startswith("train5_")
    assert base != dataset_folder(tmp_path, "train5", dict(version=2, seed=0))
    assert base != dataset_folder(tmp_path, "train5", dict(version=1, seed=1))
