"""The built-in datasets: registered by an explicit call, at the sizes it is given, each split
generated from its own seed into the cache."""
from pathlib import Path

import pytest

from gn_detection.data.build import load_datasets
from gn_detection.data.catalog import DATASET_REGISTRY
from gn_detection.datasets import BUILTIN_DATASETS, register_builtin_datasets
from gn_detection.datasets.shapes import ensure_shapes_dataset, generate_shapes_split
from gn_detection.datasets.xray import ensure_xray_dataset, generate_xray_split

GENERATORS = {"shapes_v1": (ensure_shapes_dataset, generate_shapes_split), "xray_v1": (ensure_xray_dataset, generate_xray_split)}


@pytest.mark.parametrize("folder", GENERATORS)
def test_train_and_val_use_their_seeds(tmp_path, folder):
    ensure, generate = GENERATORS[folder]
    located = ensure(str(tmp_path / "cache"), num_train=2, num_val=2)
    for split, seed in (("train", 0), ("val", 1)):
        reference = generate(str(tmp_path / "ref"), split, num_images=2, seed=seed)
        assert Path(located[split][0]).read_bytes() == Path(reference).read_bytes()


@pytest.mark.parametrize("folder", GENERATORS)
def test_default_cache_dir_comes_from_the_environment(tmp_path, monkeypatch, folder):
    ensure, _ = GENERATORS[folder]
    monkeypatch.setenv("GN_DETECTION_CACHE", str(tmp_path))
    json_file, image_root = ensure(num_train=1, num_val=1)["train"]
    assert Path(json_file).parents[2] == tmp_path / folder
    assert Path(image_root).parent == Path(json_file).parents[1]


def test_registered_by_an_explicit_call_at_the_sizes_given(small_builtin_datasets):
    assert all(name in DATASET_REGISTRY for name in BUILTIN_DATASETS)
    sizes = {name: len(load_datasets([name], filter_empty=False, key="test").records) for name in BUILTIN_DATASETS}
    assert sizes == {"shapes_train": 8, "shapes_val": 4, "xray_train": 8, "xray_val": 4}
    assert {p.name for p in small_builtin_datasets.iterdir()} == {"shapes_v1", "xray_v1"}

    register_builtin_datasets(str(small_builtin_datasets), shapes=(3, 2), xray=(2, 1))  # replaces
    assert len(load_datasets(["shapes_val"], filter_empty=False, key="test").records) == 2


def test_importing_the_package_registers_nothing():
    import subprocess
    import sys

    code = "import gn_detection.data, gn_detection.modeling; from gn_detection.data.catalog import DATASET_REGISTRY as R; print(sorted(n for n, _ in R))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
