"""The optimizer and learning-rate schedule of a config's recipe."""
from typing import Dict, List

import torch
from fvcore.common.param_scheduler import CompositeParamScheduler, LinearParamScheduler, MultiStepParamScheduler
from torch import nn

from ..layers import is_norm
from ..utils.errors import UserError

__all__ = ["build_optimizer", "build_lr_scheduler", "get_param_groups"]


def get_param_groups(model: nn.Module, *, weight_decay: float, weight_decay_norm: float) -> List[Dict]:
    """Two groups of the trainable parameters: those of norm layers, with ``weight_decay_norm``
    (0 in the GN recipe), and all others, with ``weight_decay``."""
    norm_params, other_params = [], []
    seen = set()
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (norm_params if is_norm(module) else other_params).append(param)
    groups = [
        {"params": other_params, "weight_decay": weight_decay},
        {"params": norm_params, "weight_decay": weight_decay_norm},
    ]
    return [g for g in groups if g["params"]]


def build_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    """SGD with momentum over ``get_param_groups``; the LR is the schedule's at iteration 0."""
    s = cfg.SOLVER
    groups = get_param_groups(model, weight_decay=s.WEIGHT_DECAY, weight_decay_norm=s.WEIGHT_DECAY_NORM)
    return torch.optim.SGD(groups, lr=s.BASE_LR, momentum=s.MOMENTUM)


def build_lr_scheduler(cfg, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up from ``WARMUP_FACTOR`` to 1 over ``WARMUP_ITERS``, then the LR is
    multiplied by ``GAMMA`` at each of ``STEPS``. Step it once per iteration."""
    s = cfg.SOLVER
    if list(s.STEPS) != sorted(s.STEPS) or any(not 0 < step < s.MAX_ITER for step in s.STEPS):
        raise UserError(f"SOLVER.STEPS={tuple(s.STEPS)}: expected increasing iterations within (0, {s.MAX_ITER})")
    if not 0 <= s.WARMUP_ITERS < s.MAX_ITER:
        raise UserError(f"SOLVER.WARMUP_ITERS={s.WARMUP_ITERS}: expected 0 to MAX_ITER-1 ({s.MAX_ITER - 1})")
    steps = MultiStepParamScheduler(
        values=[s.GAMMA**k for k in range(len(s.STEPS) + 1)], milestones=list(s.STEPS), num_updates=s.MAX_ITER
    )
    if s.WARMUP_ITERS:
        warmup_fraction = s.WARMUP_ITERS / s.MAX_ITER
        schedule = CompositeParamScheduler(
            [LinearParamScheduler(s.WARMUP_FACTOR, 1.0), steps],
            lengths=[warmup_fraction, 1 - warmup_fraction],
            interval_scaling=["rescaled", "fixed"],
        )
    else:
        schedule = steps
    # fvcore schedules take the fraction of training done; torch's LambdaLR counts iterations.
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: schedule(min(it, s.MAX_ITER - 1) / s.MAX_ITER))
