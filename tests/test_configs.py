"""The shipped configs: each builds, and each puts its norms where its name says."""
import re

import pytest
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from gn_detection import build_model, get_cfg
from gn_detection.layers import GroupNorm, is_norm
from gn_detection.modeling.backbone.resnet import STAGE_BLOCKS

from .conftest import CONFIGS

SHIPPED = sorted(p for p in CONFIGS.rglob("*.yaml") if not p.name.startswith("Base-"))
GN_EVERYWHERE = sorted(CONFIGS.glob("COCO-GN/*_gn.yaml")) + [CONFIGS / "tiny" / "mask_rcnn_R_18_FPN_tiny_gn.yaml"]
BN_STAR = sorted(CONFIGS.glob("COCO-GN/*_bnstar*.yaml"))


def load(path):
    cfg = get_cfg()
    cfg.merge_from_file(str(path))
    return cfg


def test_the_paper_table_is_shipped():
    names = {p.name for p in SHIPPED}
    for name in [
        "mask_rcnn_R_50_FPN_1x_bnstar.yaml",
        "mask_rcnn_R_50_FPN_2x_bnstar.yaml",
        "mask_rcnn_R_50_FPN_1x_bnstar_4conv1fc.yaml",
        "mask_rcnn_R_50_FPN_2x_bnstar_4conv1fc.yaml",
        "mask_rcnn_R_50_FPN_2x_gn_box_head.yaml",
        "mask_rcnn_R_50_FPN_2x_gn.yaml",
        "mask_rcnn_R_50_FPN_3x_gn.yaml",
        "mask_rcnn_R_101_FPN_2x_gn.yaml",
        "mask_rcnn_R_101_FPN_3x_gn.yaml",
        "scratch_mask_rcnn_R_50_FPN_3x_gn.yaml",
    ]:
        assert name in names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_config_builds_and_carries_the_recipe(path):
    cfg = load(path)
    model = build_model(cfg)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
    if path.parent.name == "COCO-GN":
        s = cfg.SOLVER
        assert (s.IMS_PER_BATCH, s.BASE_LR, s.WEIGHT_DECAY_NORM) == (16, 0.02, 0.0)
        assert s.WARMUP_ITERS > 0
        schedule = {"1x": 90000, "2x": 180000, "3x": 270000}[re.search(r"_(\dx)_", path.stem).group(1)]
        assert s.MAX_ITER == schedule and len(s.STEPS) == 2 and s.STEPS[-1] < s.MAX_ITER


def convs_needing_norm(model):
    """Every Conv2d of the backbone (ResNet and FPN) and of the box and mask heads. Excluded, as
    in the paper: the mask head's deconv and the predictors."""
    parts = [model.backbone, model.roi_heads.box_head, model.roi_heads.mask_head]
    return [m for part in parts for m in part.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("path", GN_EVERYWHERE, ids=lambda p: p.name)
def test_gn_everywhere_has_gn_after_every_conv_and_no_bn(path):
    cfg = load(path)
    model = build_model(cfg)
    assert not [m for m in model.modules() if isinstance(m, (nn.modules.batchnorm._BatchNorm, FrozenBatchNorm2d))]
    convs = convs_needing_norm(model)
    assert all(isinstance(getattr(c, "norm", None), GroupNorm) for c in convs)

    # Count them independently of the model: 1 stem conv, convs per block, 1 shortcut per stage
    # but ResNet-18/34's res2 (as wide as the stem, stride 1), 2 per FPN level, the heads' convs.
    r = cfg.MODEL.RESNETS
    blocks = STAGE_BLOCKS[r.DEPTH]
    per_block = 3 if r.DEPTH >= 50 else 2
    shortcuts = 4 if r.DEPTH >= 50 else 3
    expected = 1 + per_block * sum(blocks) + shortcuts + 2 * 4
    expected += cfg.MODEL.ROI_BOX_HEAD.NUM_CONV + cfg.MODEL.ROI_MASK_HEAD.NUM_CONV
    group_norms = [m for m in model.modules() if isinstance(m, GroupNorm)]
    assert len(convs) == len(group_norms) == expected
    assert all(gn.num_groups == cfg.MODEL.GROUP_NORM.NUM_GROUPS for gn in group_norms)


@pytest.mark.parametrize("path", BN_STAR, ids=lambda p: p.name)
def test_bn_star_has_no_trainable_norm_parameter(path):
    model = build_model(load(path))
    assert not [m for m in model.modules() if isinstance(m, GroupNorm)]
    frozen = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(frozen) == 1 + 3 * sum(STAGE_BLOCKS[50]) + 4
    trainable_norm_params = [p for m in model.modules() if is_norm(m) for p in m.parameters() if p.requires_grad]
    assert trainable_norm_params == []


def test_scratch_trains_every_stage_and_the_pretrained_recipe_freezes_the_stem_and_res2():
    scratch = build_model(load(CONFIGS / "COCO-GN" / "scratch_mask_rcnn_R_50_FPN_3x_gn.yaml"))
    assert all(p.requires_grad for p in scratch.parameters())
    pretrained = build_model(load(CONFIGS / "COCO-GN" / "mask_rcnn_R_50_FPN_3x_gn.yaml"))
    frozen = {n for n, p in pretrained.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("backbone.bottom_up.stem.", "backbone.bottom_up.res2.")) for n in frozen)
    assert isinstance(pretrained.backbone.bottom_up.stem.conv1.norm, GroupNorm)


def test_pretrained_configs_name_the_weights_their_recipe_starts_from():
    assert load(CONFIGS / "COCO-GN" / "mask_rcnn_R_50_FPN_3x_gn.yaml").MODEL.WEIGHTS.endswith("R-50-GN.pkl")
    assert load(CONFIGS / "COCO-GN" / "mask_rcnn_R_101_FPN_2x_gn.yaml").MODEL.WEIGHTS.endswith("R-101-GN.pkl")
    assert load(CONFIGS / "COCO-GN" / "mask_rcnn_R_50_FPN_2x_bnstar.yaml").MODEL.WEIGHTS.endswith("MSRA/R-50.pkl")
    assert load(CONFIGS / "COCO-GN" / "scratch_mask_rcnn_R_50_FPN_3x_gn.yaml").MODEL.WEIGHTS == ""
