import json

import torch

from gn_detection.cli import main
from gn_detection.benchmark.models import synthetic_batch
from tests.helpers import TINY_CONFIG


def test_benchmark_compares_configs_and_torchvision_and_writes_json(tmp_path, capsys):
    frozen_bn = tmp_path / "tiny_frozen_bn.yaml"
    frozen_bn.write_text(f'_BASE_: "{TINY_CONFIG}"\nMODEL:\n  RESNETS:\n    NORM: "FrozenBN"\n  FPN:\n    NORM: ""\n')
    out = tmp_path / "bench.json"
    args = ["benchmark", "--config-file", str(TINY_CONFIG), "--vs", str(frozen_bn), "torchvision"]
    assert main(args + ["--size", "64", "96", "--batch", "1", "--iters", "2", "--warmup", "1", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert (report["size"], report["batch"], report["iters"], report["gpu"]) == ([64, 96], 1, 2, None)
    assert report["cpu"] and report["torch"] == torch.__version__
    assert list(report["results"]) == [str(TINY_CONFIG), str(frozen_bn), "torchvision"]
    gn, bn, tv = (report["results"][k] for k in report["results"])
    for r in (gn, bn, tv):
        assert r["precision"] == "fp32" and r["train_step_s"] > 0 and r["inference_s_per_image"] > 0
        assert r["train_images_per_s"] == 1 / r["train_step_s"]
        assert r["inference_images_per_s"] == 1 / r["inference_s_per_image"]
        assert 0 < r["train_step_memory_mb"] < 8 * 1024  # resident set above the weights, in MB
    assert gn["parameters_m"] > bn["parameters_m"]  # GN has affine parameters, frozen BN buffers
    assert tv["parameters_m"] > 10 * gn["parameters_m"]  # torchvision's widths are fixed: a full R-18
    assert report["ratios_to_first"][str(frozen_bn)]["train_step"] == bn["train_step_s"] / gn["train_step_s"]
    assert report["ratios_to_first"][str(TINY_CONFIG)] == dict(train_step=1.0, inference=1.0)
    assert "ratios are to the first variant" in capsys.readouterr().out


def test_torchvision_reference_has_the_configs_heads_and_sampling(tiny_cfg):
    from torchvision.models.detection import MaskRCNN

    from gn_detection.benchmark.references import build_torchvision_reference

    images, targets = synthetic_batch(1, 64, 3)
    model, (train_images, _), _ = build_torchvision_reference(tiny_cfg, images, targets)
    assert isinstance(model, MaskRCNN) and train_images[0].max() <= 1  # torchvision takes 0-1 pixels
    group_norms = [m for m in model.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert group_norms and all(m.num_groups == tiny_cfg.MODEL.GROUP_NORM.NUM_GROUPS for m in group_norms)
    assert model.roi_heads.fg_bg_sampler.batch_size_per_image == tiny_cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE
    assert model.rpn._post_nms_top_n["training"] == tiny_cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN
    box_convs = [m for m in model.roi_heads.box_head.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in box_convs] == [tiny_cfg.MODEL.ROI_BOX_HEAD.CONV_DIM] * 4
    assert model.roi_heads.box_predictor.cls_score.out_features == tiny_cfg.MODEL.ROI_HEADS.NUM_CLASSES + 1
    losses = model.train()(*([i / 255 for i in images], targets))
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}


def test_synthetic_batch_is_fixed_by_its_seed():
    (a,), (ta,) = synthetic_batch(1, 48, 3, seed=1)
    (b,), (tb,) = synthetic_batch(1, 48, 3, seed=1)
    assert a.equal(b) and ta["boxes"].equal(tb["boxes"]) and ta["masks"].equal(tb["masks"])
    assert ta["masks"].flatten(1).sum(1).tolist() == [
        int((x1 - x0) * (y1 - y0)) for x0, y0, x1, y1 in ta["boxes"].tolist()
    ]


def test_calibrated_frozen_bn_normalizes_its_input(tiny_cfg):
    from torchvision.ops import FrozenBatchNorm2d

    from gn_detection import build_model
    from gn_detection.benchmark.models import calibrate_frozen_batchnorm

    tiny_cfg.MODEL.RESNETS.NORM = "FrozenBN"
    model = build_model(tiny_cfg)
    images, _ = synthetic_batch(2, 64, 3)
    stem = model.backbone.bottom_up.stem.conv1
    assert calibrate_frozen_batchnorm(model, (images,)) == sum(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    # The stem's norm now maps its conv's output on these images to zero mean, unit variance.
    model.eval()  # calibration saw the images at the test size
    with torch.no_grad():
        x = model.transform(images)[0].tensors
        pre_norm = torch.nn.functional.conv2d(x, stem.weight, stem.bias, stride=2, padding=3)
        normalized = stem.norm(pre_norm)
    assert normalized.mean(dim=(0, 2, 3)).abs().max() < 1e-3
    assert (normalized.var(dim=(0, 2, 3)) - 1).abs().max() < 1e-2


def test_bf16_autocast_losses_agree_with_fp32_on_a_fixed_batch(tiny_cfg):
    """Tolerance: 5 % of each loss. bf16 keeps 8 bits of mantissa in the convolutions; GN
    statistics stay in fp32. Sampling takes every anchor and RoI and only ground-truth boxes are
    positive RoIs, so a proposal moving by a rounding error cannot change which terms count."""
    from gn_detection import build_model
    from tests.helpers import EXACT_SAMPLING

    for key in ("MODEL.RPN.BATCH_SIZE_PER_IMAGE", "MODEL.RPN.POSITIVE_FRACTION", "MODEL.RPN.IOU_THRESHOLDS",
                "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "MODEL.ROI_HEADS.POSITIVE_FRACTION", "MODEL.ROI_HEADS.IOU_THRESHOLDS"):
        tiny_cfg.merge_from_list([key, EXACT_SAMPLING[key]])
    torch.manual_seed(0)
    model = build_model(tiny_cfg).train()
    images, targets = synthetic_batch(2, 96, 3, seed=3)
    torch.manual_seed(0)
    fp32 = model(images, targets)
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = model(images, targets)
    assert set(fp32) == set(bf16)
    for key in fp32:
        assert bf16[key].dtype == torch.float32 or bf16[key].dtype == torch.bfloat16
        assert abs(bf16[key].item() - fp32[key].item()) <= 0.05 * abs(fp32[key].item()) + 1e-3, key


def test_benchmark_measures_precisions_side_by_side(tmp_path):
    assert main(["benchmark", "--size", "64", "--batch", "1", "--iters", "1", "--warmup", "0", "--precision",
                 "fp32", "bf16", "--json", str(tmp_path / "b.json"), "--config-file", str(TINY_CONFIG)]) == 0
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["precisions"] == ["fp32", "bf16"]
    assert list(report["ratios_to_first"]) == [f"{TINY_CONFIG} [fp32]", f"{TINY_CONFIG} [bf16]"]
    assert main(["benchmark", "--config-file", str(TINY_CONFIG), "--precision", "fp16", "--size", "64"]) == 2
    assert main(["benchmark", "--config-file", str(TINY_CONFIG), "--size", "64", "64", "64"]) == 2
