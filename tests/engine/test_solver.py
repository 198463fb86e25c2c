import pytest
import torch

from gn_detection import build_model
from gn_detection.engine import build_lr_scheduler, build_optimizer
from gn_detection.layers import is_norm


def test_norm_parameters_get_their_own_weight_decay(tiny_cfg):
    tiny_cfg.SOLVER.WEIGHT_DECAY = 1e-4
    tiny_cfg.SOLVER.WEIGHT_DECAY_NORM = 0.0
    model = build_model(tiny_cfg)
    optimizer = build_optimizer(tiny_cfg, model)
    decay_of = {id(p): g["weight_decay"] for g in optimizer.param_groups for p in g["params"]}
    assert len(decay_of) == sum(1 for p in model.parameters() if p.requires_grad)
    for module in model.modules():
        for p in module.parameters(recurse=False):
            assert decay_of[id(p)] == (0.0 if is_norm(module) else 1e-4)
    assert any(is_norm(m) for m in model.modules())


def test_frozen_parameters_are_not_optimized(tiny_cfg):
    tiny_cfg.MODEL.BACKBONE.FREEZE_AT = 2
    model = build_model(tiny_cfg)
    optimized = {id(p) for g in build_optimizer(tiny_cfg, model).param_groups for p in g["params"]}
    assert id(model.backbone.bottom_up.stem.conv1.weight) not in optimized
    assert id(model.backbone.bottom_up.res3[0].conv1.weight) in optimized


def lrs(cfg, iterations):
    optimizer = build_optimizer(cfg, torch.nn.Linear(2, 2))
    scheduler = build_lr_scheduler(cfg, optimizer)
    values = []
    for _ in range(iterations):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return values


def test_linear_warmup_then_steps(tiny_cfg):
    s = tiny_cfg.SOLVER
    s.BASE_LR, s.WARMUP_ITERS, s.WARMUP_FACTOR, s.STEPS, s.MAX_ITER, s.GAMMA = 0.02, 10, 0.001, (50, 80), 100, 0.1
    values = lrs(tiny_cfg, 100)
    # detectron2's linear warm-up: factor * (1 - a) + a with a = iteration / WARMUP_ITERS.
    for it in range(10):
        alpha = it / 10
        assert values[it] == pytest.approx(0.02 * (0.001 * (1 - alpha) + alpha))
    assert values[10] == pytest.approx(0.02) and values[49] == pytest.approx(0.02)
    assert values[50] == pytest.approx(0.002) and values[79] == pytest.approx(0.002)
    assert values[80] == pytest.approx(0.0002) and values[99] == pytest.approx(0.0002)


def test_bad_schedules_are_named(tiny_cfg):
    tiny_cfg.SOLVER.STEPS = (80, 50)
    with pytest.raises(ValueError, match=r"SOLVER\.STEPS=\(80, 50\)"):
        lrs(tiny_cfg, 1)
    tiny_cfg.SOLVER.STEPS = (50,)
    tiny_cfg.SOLVER.WARMUP_ITERS = 500
    with pytest.raises(ValueError, match=r"SOLVER\.WARMUP_ITERS=500"):
        lrs(tiny_cfg, 1)
