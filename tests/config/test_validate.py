import re

import pytest

from gn_detection.config import ConfigError, check_config, get_cfg
from gn_detection.config.validate import RULES


def _set(cfg, key, value):
    *path, leaf = key.split(".")
    node = cfg
    for part in path:
        node = node[part]
    node[leaf] = value


def _below_every_domain(value):
    """-2 in the value's own type: outside every rule's domain (-1 means "unset" for a few keys)."""
    if isinstance(value, (list, tuple)):
        return type(value)([_below_every_domain(value[0] if value else 1)])
    return type(value)(-2)


def test_the_defaults_pass():
    check_config(get_cfg())


@pytest.mark.parametrize("key", [key for key, _, _ in RULES])
def test_every_rule_names_its_key_and_what_it_expects(key):
    cfg = get_cfg()
    value = cfg
    for part in key.split("."):
        value = value[part]
    bad = _below_every_domain(value)
    _set(cfg, key, bad)
    with pytest.raises(ConfigError, match="^" + re.escape(f"my.yaml: {key}={bad!r}: expected ")):
        check_config(cfg, "my.yaml")


def test_every_problem_is_listed_at_once():
    cfg = get_cfg()
    cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.LOG_PERIOD = 0, 0
    cfg.MODEL.PIXEL_MEAN = [1.0]
    with pytest.raises(ConfigError) as error:
        check_config(cfg)
    message = str(error.value)
    assert "SOLVER.IMS_PER_BATCH=0" in message and "SOLVER.LOG_PERIOD=0" in message
    assert "MODEL.PIXEL_MEAN=[1.0] and MODEL.PIXEL_STD=[1.0, 1.0, 1.0]" in message


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_numbers_are_outside_every_domain(value):
    cfg = get_cfg()
    cfg.SOLVER.BASE_LR = value
    with pytest.raises(ConfigError, match="SOLVER.BASE_LR"):
        check_config(cfg)


def test_steps_must_increase():
    cfg = get_cfg()
    cfg.SOLVER.STEPS = (30, 30)
    with pytest.raises(ConfigError, match=r"SOLVER.STEPS=\(30, 30\): expected increasing iterations"):
        check_config(cfg)


@pytest.mark.parametrize("num_groups, dim_per_gp", [(32, 16), (-1, -1)])
def test_gn_groups_come_from_exactly_one_of_num_groups_and_dim_per_gp(num_groups, dim_per_gp):
    cfg = get_cfg()
    cfg.MODEL.GROUP_NORM.NUM_GROUPS, cfg.MODEL.GROUP_NORM.DIM_PER_GP = num_groups, dim_per_gp
    with pytest.raises(ConfigError, match=re.escape(
            f"my.yaml: MODEL.GROUP_NORM.NUM_GROUPS={num_groups} and MODEL.GROUP_NORM.DIM_PER_GP={dim_per_gp}: "
            "expected exactly one")):
        check_config(cfg, "my.yaml")
    cfg.MODEL.GROUP_NORM.NUM_GROUPS, cfg.MODEL.GROUP_NORM.DIM_PER_GP = -1, 16
    check_config(cfg)
