"""What one run of a detection study is: a config trained with a norm at a batch size, for the same
number of epochs (the paper's way) or of iterations, and evaluated on DATASETS.TEST.

The norm of a run is set in the backbone, the FPN and both heads: a registered name (``GN``,
``LN``, ``IN``, ``BN``, ``BRN``, ...), the same with ``+WS`` (Weight Standardization in those
convs), or ``BN*``, Detectron's baseline (frozen BN in the backbone, no norm in the FPN or the
heads). ``compare-norms`` gives whole configs instead, each under a label, trained as they are.

BASE_LR is scaled linearly with the batch (it is set for the config's IMS_PER_BATCH); with
``epochs``, MAX_ITER = ceil(epochs x images / batch), and the warm-up and LR steps keep their
fractions of the run.
"""
import hashlib
import logging
import math
import os
from typing import Dict, Optional

from ..data.build import load_datasets
from ..engine.defaults import run_training
from ..layers import NORM_REGISTRY
from ..utils.errors import UserError
from ..utils.registry import lookup
from .engine import Run

__all__ = ["DetectionTask", "PARTS", "config_digest", "norm_has_groups"]

logger = logging.getLogger(__name__)

PARTS = ("RESNETS", "FPN", "ROI_BOX_HEAD", "ROI_MASK_HEAD")
# BN* is Detectron's baseline: frozen BN in the backbone and no norm in the FPN or heads.
BN_STAR = ("FrozenBN", "", "", "")


def _norms_and_convs(norm: str):
    if norm == "BN*":
        return BN_STAR, ("",) * 4
    base, ws, rest = norm.partition("+")
    if ws and rest != "WS":
        raise UserError(f"--norms {norm!r}: expected a registered norm, one followed by +WS, or BN*")
    lookup(NORM_REGISTRY, base, "--norms")
    return (base,) * 4, ("WS" if ws else "",) * 4


def norm_has_groups(norm: str) -> bool:
    """GN and the norms that read its group settings (EvoNorm-S0), with or without +WS."""
    return norm != "BN*" and _norms_and_convs(norm)[0][0] in ("GN", "EvoNormS0")


def config_digest(cfg) -> str:
    """A run's identity: the SHA-256 of its whole config (every key, overrides included) but
    OUTPUT_DIR, so that a study's folder can be moved."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.OUTPUT_DIR = ""
    return hashlib.sha256(cfg.dump().encode("utf-8")).hexdigest()


class DetectionTask:
    """Runs of ``cfgs`` (label -> config): with one config under the label "" each run's norm is set
    as the module docstring says; otherwise each run trains the config under its norm label as
    it is. ``epochs`` None keeps each config's MAX_ITER, STEPS and WARMUP_ITERS."""

    name = "detection"

    def __init__(self, cfgs: Dict[str, object], *, epochs: Optional[float] = None, iterations: Optional[int] = None):
        self.cfgs, self.epochs, self.iterations = cfgs, epochs, iterations
        self.num_images = {}
        if epochs is not None:
            for label, cfg in cfgs.items():
                self.num_images[label] = len(load_datasets(cfg.DATASETS.TRAIN, key="DATASETS.TRAIN",
                                                           filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS).records)

    def run_cfg(self, run: Run, output_dir: str):
        label = "" if "" in self.cfgs else run.norm
        cfg = self.cfgs[label]
        run_cfg = cfg.clone()
        run_cfg.defrost()
        if label == "":
            for part, norm_name, conv_name in zip(PARTS, *_norms_and_convs(run.norm)):
                run_cfg.MODEL[part].NORM, run_cfg.MODEL[part].CONV = norm_name, conv_name
        if run.groups is not None or run.channels_per_group is not None:
            run_cfg.MODEL.GROUP_NORM.NUM_GROUPS = -1 if run.groups is None else run.groups
            run_cfg.MODEL.GROUP_NORM.DIM_PER_GP = -1 if run.channels_per_group is None else run.channels_per_group
        s = cfg.SOLVER
        max_iter = self.iterations
        if self.epochs is not None:
            max_iter = max(1, math.ceil(self.epochs * self.num_images[label] / run.batch))
        if max_iter is not None:
            run_cfg.SOLVER.MAX_ITER = max_iter
            run_cfg.SOLVER.STEPS = tuple(sorted({max(1, round(step / s.MAX_ITER * max_iter))
                                                 for step in s.STEPS if step < s.MAX_ITER}))
            run_cfg.SOLVER.WARMUP_ITERS = round(s.WARMUP_ITERS / s.MAX_ITER * max_iter)
            run_cfg.SOLVER.CHECKPOINT_PERIOD = max(1, max_iter // 4)  # a cut-off run loses at most a quarter
            run_cfg.TEST.EVAL_PERIOD = 0
        run_cfg.SOLVER.BASE_LR = s.BASE_LR * run.batch / s.IMS_PER_BATCH
        run_cfg.SOLVER.IMS_PER_BATCH = run.batch
        if run.seed is not None:
            run_cfg.SEED = run.seed
        run_cfg.OUTPUT_DIR = output_dir
        run_cfg.freeze()
        return run_cfg

    def identity(self, run: Run) -> Dict:
        cfg = self.run_cfg(run, "")
        return dict(config=config_digest(cfg), iterations=cfg.SOLVER.MAX_ITER)

    def train(self, run: Run, folder: str) -> Dict:
        cfg = self.run_cfg(run, folder)
        logger.info("study: %s: %d iterations, lr %.4g", run.name, cfg.SOLVER.MAX_ITER, cfg.SOLVER.BASE_LR)
        try:
            (results,) = run_training(cfg, resume=True).values()
            diverged = ""
        except FloatingPointError as e:  # a diverged run is a result too
            results, diverged = {}, str(e).split(";")[0]
        return dict(
            box_ap=results.get("bbox", {}).get("AP", float("nan")),
            mask_ap=results.get("segm", {}).get("AP", float("nan")),
            froc=results.get("froc", {}).get("mean_sensitivity", float("nan")),
            diverged=diverged,
        )
