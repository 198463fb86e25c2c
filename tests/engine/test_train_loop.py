"""Training runs on a few tiny images: resume, NaN handling, and DDP equivalence."""
import json
import logging
import math
import os

import pytest
import torch

from gn_detection import build_model, get_cfg
from gn_detection.checkpoint import load_torch_file
from gn_detection.data.catalog import DATASET_REGISTRY, register_coco_instances
from gn_detection.engine.launch import launch
from gn_detection.engine.defaults import run_training
from gn_detection.engine.train_loop import SimpleTrainer
from gn_detection.modeling import MaskRCNN
from tests.helpers import EXACT_SAMPLING, TINY_CONFIG, make_sample, pycocotools_ap, write_coco_dataset


def register_once(name, json_file, image_root):
    if name not in DATASET_REGISTRY:
        register_coco_instances(name, json_file, image_root)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_set")
    samples = [make_sample(96 + 8 * (i % 3), 128, 2 + i % 2, 3, seed=i) for i in range(6)]
    json_file = write_coco_dataset(root, samples)
    register_once("trainer_test_set", json_file, str(root))
    return "trainer_test_set"


def train_cfg(tiny_dataset, output_dir, **overrides):
    cfg = get_cfg()
    cfg.merge_from_file(str(TINY_CONFIG))
    cfg.merge_from_list(
        [
            "DATASETS.TRAIN", f"('{tiny_dataset}',)",
            "DATALOADER.NUM_WORKERS", "0",
            "SOLVER.MAX_ITER", "6",
            "SOLVER.WARMUP_ITERS", "2",
            "SOLVER.STEPS", "(4,)",
            "SOLVER.CHECKPOINT_PERIOD", "3",
            "SOLVER.LOG_PERIOD", "1",
            "SEED", "7",
            "OUTPUT_DIR", str(output_dir),
        ]
    )
    for key, value in overrides.items():
        cfg.merge_from_list([key, value])
    return cfg


def losses_by_iteration(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        rows = [json.loads(line) for line in f]
    return {row["iteration"]: row["total_loss"] for row in rows}


def final_weights(output_dir):
    return load_torch_file(os.path.join(output_dir, "model_final.pth"))["model"]


class Interrupt(Exception):
    pass


def test_a_resumed_run_equals_an_uninterrupted_one(tiny_dataset, tmp_path, monkeypatch):
    run_training(train_cfg(tiny_dataset, tmp_path / "straight"))

    original_step = SimpleTrainer.run_step
    steps = []

    def killed_at_iteration_4(self, batch):
        steps.append(batch)
        if len(steps) == 5:  # iterations 0-3 ran
            raise Interrupt()
        return original_step(self, batch)

    monkeypatch.setattr(SimpleTrainer, "run_step", killed_at_iteration_4)
    with pytest.raises(Interrupt):
        run_training(train_cfg(tiny_dataset, tmp_path / "resumed"))
    assert (tmp_path / "resumed" / "last_checkpoint").read_text() == "model_0000003.pth"
    # what a SIGKILL during a save leaves behind (atomic_write's temporary name)
    stale = tmp_path / "resumed" / ".model_0000006.pth.k3j2x9.tmp"
    stale.write_bytes(b"half a checkpoint")
    monkeypatch.setattr(SimpleTrainer, "run_step", original_step)
    run_training(train_cfg(tiny_dataset, tmp_path / "resumed"), resume=True)
    assert not stale.exists()

    # each iteration once, in order: what the killed run logged after its checkpoint was dropped
    for run in ("straight", "resumed"):
        lines = (tmp_path / run / "metrics.json").read_text().splitlines()
        assert [json.loads(line)["iteration"] for line in lines] == list(range(6))
    straight, resumed = losses_by_iteration(tmp_path / "straight"), losses_by_iteration(tmp_path / "resumed")
    for iteration in range(6):
        assert resumed[iteration] == pytest.approx(straight[iteration], rel=1e-5, abs=1e-6)
    a, b = final_weights(tmp_path / "straight"), final_weights(tmp_path / "resumed")
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("clip_type", ["value", "norm"])
def test_gradient_clipping(clip_type, tiny_cfg):
    from gn_detection.engine.defaults import _gradient_clipper

    tiny_cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    tiny_cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = clip_type
    tiny_cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.5
    params = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))]
    params[0].grad, params[1].grad = torch.tensor([3.0, -0.2, 0.1]), torch.tensor([0.0, -4.0])
    _gradient_clipper(tiny_cfg)(params)
    grads = torch.cat([p.grad for p in params])
    if clip_type == "value":
        assert grads.tolist() == pytest.approx([0.5, -0.2, 0.1, 0.0, -0.5])
    else:
        assert grads.norm().item() == pytest.approx(0.5, rel=1e-4)
    tiny_cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "max"
    with pytest.raises(ValueError, match="CLIP_TYPE='max'"):
        _gradient_clipper(tiny_cfg)


def test_resume_without_a_checkpoint_starts_fresh_and_says_so(tiny_dataset, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gn_detection")
    run_training(train_cfg(tiny_dataset, tmp_path, **{"SOLVER.MAX_ITER": "1", "SOLVER.STEPS": "()", "SOLVER.WARMUP_ITERS": "0"}), resume=True)
    assert "no checkpoint in" in caplog.text and "starting from scratch" in caplog.text
    assert load_torch_file(str(tmp_path / "model_final.pth"))["iteration"] == 1


@pytest.mark.parametrize("log_period", ["1", "100"])  # losses are checked at each log and before each save
def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(tiny_dataset, tmp_path, monkeypatch, log_period):
    original_forward = MaskRCNN.forward
    calls = {"training": 0}

    def nan_on_fifth_step(self, images, targets=None):
        out = original_forward(self, images, targets)
        if self.training:
            calls["training"] += 1
            if calls["training"] == 5:
                out["loss_mask"] = out["loss_mask"] * float("nan")
        return out

    monkeypatch.setattr(MaskRCNN, "forward", nan_on_fifth_step)
    with pytest.raises(FloatingPointError) as error:
        run_training(train_cfg(tiny_dataset, tmp_path, **{"SOLVER.LOG_PERIOD": log_period}))
    message = str(error.value)
    # the fifth step, counted as the progress line counts it ("iter 5/6")
    assert "iteration 5/6: non-finite loss" in message and "loss_mask=nan" in message and "loss_cls=" in message
    assert "may be diverging" in message
    assert "model_0000003.pth" in message
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000003.pth"
    assert not (tmp_path / "model_final.pth").exists()
    state = load_torch_file(str(tmp_path / "model_0000003.pth"))
    assert state["iteration"] == 3 and all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def _ddp_main(json_file, image_root, output_dir):
    register_once("ddp_test_set", json_file, image_root)
    run_training(train_cfg("ddp_test_set", output_dir, **EXACT_SAMPLING, **{"DATASETS.TEST": "('ddp_test_set',)"}))


def test_two_processes_of_one_image_match_one_process_of_two(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    # Equal sizes and instance counts: the per-image loss terms are equally many.
    json_file = write_coco_dataset(root, [make_sample(96, 128, 2, 3, seed=10 + i) for i in range(4)])
    launch(_ddp_main, 1, args=(json_file, str(root), str(tmp_path / "one")))
    launch(_ddp_main, 2, args=(json_file, str(root), str(tmp_path / "two")))
    one, two = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    torch.manual_seed(7)  # SEED: the initialization both runs started from
    initial = build_model(train_cfg("ddp_test_set", tmp_path, **EXACT_SAMPLING)).state_dict()
    assert not torch.equal(one["roi_heads.box_head.conv1.weight"], initial["roi_heads.box_head.conv1.weight"])
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5)
    # Evaluation sharded the 4 test images over the 2 processes and gathered them on the first.
    detections = json.loads((tmp_path / "two" / "inference" / "coco_instances_results.json").read_text())
    assert {d["image_id"] for d in detections} == {1, 2, 3, 4}
    results = json.loads((tmp_path / "two" / "inference" / "results.json").read_text())
    detections_file = tmp_path / "two" / "inference" / "coco_instances_results.json"
    assert results["bbox"]["AP"] == pytest.approx(pycocotools_ap(json_file, detections_file, "bbox"), abs=1e-9)


def test_bf16_autocast_trains_with_fp32_parameters(tiny_dataset, tmp_path):
    cfg = train_cfg(tiny_dataset, tmp_path, **{"SOLVER.MAX_ITER": "3", "SOLVER.STEPS": "()", "SOLVER.AMP.ENABLED": "True"})
    run_training(cfg)
    final = final_weights(tmp_path)
    assert all(v.dtype == torch.float32 for v in final.values() if v.is_floating_point())
    initial = build_model(cfg).state_dict()
    assert not final["backbone.bottom_up.stem.conv1.weight"].equal(initial["backbone.bottom_up.stem.conv1.weight"])
    assert all(math.isfinite(loss) for loss in losses_by_iteration(tmp_path).values())


def test_amp_settings_are_checked(tiny_cfg, monkeypatch, caplog):
    from gn_detection.engine.defaults import amp_dtype_from_cfg

    assert amp_dtype_from_cfg(tiny_cfg) is None
    tiny_cfg.SOLVER.AMP.ENABLED = True
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    with caplog.at_level(logging.WARNING, logger="gn_detection"):
        assert amp_dtype_from_cfg(tiny_cfg) == torch.bfloat16
    assert "without AMX" in caplog.text
    tiny_cfg.SOLVER.AMP.DTYPE = "float16"
    with pytest.raises(ValueError, match="needs MODEL.DEVICE 'cuda'"):
        amp_dtype_from_cfg(tiny_cfg)
    tiny_cfg.SOLVER.AMP.DTYPE = "fp8"
    with pytest.raises(ValueError, match="SOLVER.AMP.DTYPE='fp8'"):
        amp_dtype_from_cfg(tiny_cfg)
