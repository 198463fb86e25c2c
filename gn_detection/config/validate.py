"""The config keys whose values have a domain, checked once the config is complete.

A value outside its domain would otherwise surface far from its cause: a batch of 0 hangs the
sampler, a period of 0 divides by zero, a PIXEL_STD of 0 ends as a "non-finite loss". Each rule
is (key, test, what is expected); ``check_config`` reports every broken rule at once.
"""
import math
from numbers import Number
from typing import Callable, List, Tuple

from .config import ConfigError

__all__ = ["RULES", "check_config"]


def _int_at_least(low: int) -> Callable[[object], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _number_in(low: float, high: float, *, open_low: bool = False) -> Callable[[object], bool]:
    def test(v) -> bool:
        if not isinstance(v, Number) or isinstance(v, bool) or not math.isfinite(v):
            return False
        return (v > low if open_low else v >= low) and v <= high

    return test


def _positive_numbers(v) -> bool:
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(_number_in(0, math.inf, open_low=True)(x) for x in v)


def _sizes(v) -> bool:
    return isinstance(v, (list, tuple)) and len(v) > 0 and all(_int_at_least(1)(x) for x in v)


def _increasing_iterations(v) -> bool:
    return isinstance(v, (list, tuple)) and all(_int_at_least(1)(x) for x in v) and list(v) == sorted(set(v))


POSITIVE = (_int_at_least(1), "an integer >= 1")
NON_NEGATIVE = (_int_at_least(0), "an integer >= 0")
FRACTION = (_number_in(0, 1), "a number in [0, 1]")
POSITIVE_FRACTION = (_number_in(0, 1, open_low=True), "a number in (0, 1]")
POSITIVE_NUMBER = (_number_in(0, math.inf, open_low=True), "a finite number > 0")
NON_NEGATIVE_NUMBER = (_number_in(0, math.inf), "a finite number >= 0")
POSITIVE_OR_UNSET = (lambda v: v == -1 or _int_at_least(1)(v), "an integer >= 1, or -1 for unset")

RULES: Tuple[Tuple[str, Callable[[object], bool], str], ...] = tuple(
    (key, *rule)
    for key, rule in (
        ("MODEL.PIXEL_STD", (_positive_numbers, "a list of numbers > 0, one per input channel")),
        ("MODEL.GROUP_NORM.NUM_GROUPS", POSITIVE_OR_UNSET),
        ("MODEL.GROUP_NORM.DIM_PER_GP", POSITIVE_OR_UNSET),
        ("MODEL.GROUP_NORM.EPSILON", POSITIVE_NUMBER),
        ("MODEL.BATCH_RENORM.R_MAX", (_number_in(1, math.inf), "a finite number >= 1")),
        ("MODEL.BATCH_RENORM.D_MAX", NON_NEGATIVE_NUMBER),
        ("MODEL.RPN.BATCH_SIZE_PER_IMAGE", POSITIVE),
        ("MODEL.RPN.POSITIVE_FRACTION", POSITIVE_FRACTION),
        ("MODEL.RPN.NMS_THRESH", FRACTION),
        ("MODEL.RPN.PRE_NMS_TOPK_TRAIN", POSITIVE),
        ("MODEL.RPN.PRE_NMS_TOPK_TEST", POSITIVE),
        ("MODEL.RPN.POST_NMS_TOPK_TRAIN", POSITIVE),
        ("MODEL.RPN.POST_NMS_TOPK_TEST", POSITIVE),
        ("MODEL.ROI_HEADS.NUM_CLASSES", (_int_at_least(1), "an integer >= 1: the foreground classes")),
        ("MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", POSITIVE),
        ("MODEL.ROI_HEADS.POSITIVE_FRACTION", POSITIVE_FRACTION),
        ("MODEL.ROI_HEADS.SCORE_THRESH_TEST", FRACTION),
        ("MODEL.ROI_HEADS.NMS_THRESH_TEST", FRACTION),
        ("INPUT.MIN_SIZE_TRAIN", (_sizes, "a non-empty list of sizes >= 1 px")),
        ("INPUT.MAX_SIZE_TRAIN", POSITIVE),
        ("INPUT.MIN_SIZE_TEST", POSITIVE),
        ("INPUT.MAX_SIZE_TEST", POSITIVE),
        ("INPUT.DICOM.FRAME", NON_NEGATIVE),
        ("DATALOADER.NUM_WORKERS", NON_NEGATIVE),
        ("TEST.DETECTIONS_PER_IMAGE", POSITIVE),
        ("TEST.EVAL_PERIOD", (_int_at_least(0), "an integer >= 0 (0: only at the end)")),
        ("SOLVER.IMS_PER_BATCH", (_int_at_least(1), "an integer >= 1: images per step over all processes")),
        ("SOLVER.BASE_LR", NON_NEGATIVE_NUMBER),
        ("SOLVER.MOMENTUM", FRACTION),
        ("SOLVER.WEIGHT_DECAY", NON_NEGATIVE_NUMBER),
        ("SOLVER.WEIGHT_DECAY_NORM", NON_NEGATIVE_NUMBER),
        ("SOLVER.MAX_ITER", POSITIVE),
        ("SOLVER.STEPS", (_increasing_iterations, "increasing iterations >= 1")),
        ("SOLVER.GAMMA", POSITIVE_NUMBER),
        ("SOLVER.WARMUP_ITERS", NON_NEGATIVE),
        ("SOLVER.WARMUP_FACTOR", POSITIVE_FRACTION),
        ("SOLVER.CHECKPOINT_PERIOD", POSITIVE),
        ("SOLVER.LOG_PERIOD", POSITIVE),
        ("SOLVER.CLIP_GRADIENTS.CLIP_VALUE", POSITIVE_NUMBER),
    )
)


def check_config(cfg, source: str = "config") -> None:
    """Raise ConfigError listing every key of RULES whose value is outside its domain, and a
    PIXEL_MEAN whose length is not PIXEL_STD's.

    Args:
        source: what the message names first: the config file, with "and overrides" if any.
    """
    problems: List[str] = []
    for key, test, expected in RULES:
        value = cfg
        for part in key.split("."):
            value = value[part]
        if not test(value):
            problems.append(f"{key}={value!r}: expected {expected}")
    groups = cfg.MODEL.GROUP_NORM
    if (groups.NUM_GROUPS == -1) == (groups.DIM_PER_GP == -1):
        problems.append(
            f"MODEL.GROUP_NORM.NUM_GROUPS={groups.NUM_GROUPS} and MODEL.GROUP_NORM.DIM_PER_GP={groups.DIM_PER_GP}: "
            "expected exactly one of them set and the other -1 (NUM_GROUPS -1 with DIM_PER_GP 16 gives each GN "
            "layer C/16 groups)"
        )
    if len(cfg.MODEL.PIXEL_MEAN) != len(cfg.MODEL.PIXEL_STD):
        problems.append(
            f"MODEL.PIXEL_MEAN={list(cfg.MODEL.PIXEL_MEAN)} and MODEL.PIXEL_STD={list(cfg.MODEL.PIXEL_STD)}: "
            "expected one value per input channel in each"
        )
    if problems:
        raise ConfigError(f"{source}: " + "; ".join(problems))
