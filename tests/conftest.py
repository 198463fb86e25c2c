import pytest

from gn_detection import get_cfg
from gn_detection.datasets import register_builtin_datasets
from tests.helpers import TINY_CONFIG


@pytest.fixture
def tiny_cfg():
    cfg = get_cfg()
    cfg.merge_from_file(str(TINY_CONFIG))
    return cfg


@pytest.fixture
def small_builtin_datasets(tmp_path):
    """shapes_* and xray_* registered small, in a fresh cache; the defaults again afterwards."""
    register_builtin_datasets(str(tmp_path / "cache"), shapes=(8, 4), xray=(8, 4))
    yield tmp_path / "cache"
    register_builtin_datasets()
