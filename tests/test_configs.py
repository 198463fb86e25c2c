"""The shipped configs: each builds, and each puts its norms where its name says."""
import re

import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from gn_detection import build_model, get_cfg
from gn_detection.layers import GroupNorm, is_norm
from gn_detection.modeling.backbone.resnet import STAGE_BLOCKS

from tests.helpers import CONFIGS

SHIPPED = sorted(p for p in CONFIGS.rglob("*.yaml") if not p.name.startswith(("Base-", "plugin_")))  # plugin_: detectron2 configs
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


def build_on_meta(cfg):
    """The model without memory or initialization: parameters on the meta device, shapes and
    types as built. R-50 and R-101 models cost milliseconds this way, not seconds."""
    cfg.MODEL.DEVICE = "meta"
    with torch.device("meta"):
        return build_model(cfg)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config(path):
    """Each config is built once; every check that its name calls for runs on that model."""
    cfg = load(path)
    model = build_on_meta(cfg)
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) > 0
    if path.parent.name == "COCO-GN":
        check_recipe(cfg, path)
    if path in GN_EVERYWHERE:
        check_gn_after_every_conv_and_no_bn(cfg, model)
    if path in BN_STAR:
        check_no_trainable_norm_parameter(model)
    check_frozen_stages(cfg, model)


def test_the_checks_cover_the_paper_configs():
    assert len(GN_EVERYWHERE) >= 6 and len(BN_STAR) >= 4


def check_recipe(cfg, path):
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


def check_gn_after_every_conv_and_no_bn(cfg, model):
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


def check_no_trainable_norm_parameter(model):
    assert not [m for m in model.modules() if isinstance(m, GroupNorm)]
    frozen = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert len(frozen) == 1 + 3 * sum(STAGE_BLOCKS[50]) + 4
    trainable_norm_params = [p for m in model.modules() if is_norm(m) for p in m.parameters() if p.requires_grad]
    assert trainable_norm_params == []


def check_frozen_stages(cfg, model):
    """FREEZE_AT 0 trains everything (from scratch); 2, the pretrained recipe, freezes exactly
    the stem and res2."""
    frozen = {n.split(".")[2] for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {0: set(), 2: {"stem", "res2"}}[cfg.MODEL.BACKBONE.FREEZE_AT]
    assert all(n.startswith("backbone.bottom_up.") for n, p in model.named_parameters() if not p.requires_grad)


def test_pretrained_configs_name_the_weights_their_recipe_starts_from():
    assert load(CONFIGS / "COCO-GN" / "mask_rcnn_R_50_FPN_3x_gn.yaml").MODEL.WEIGHTS.endswith("R-50-GN.pkl")
    assert load(CONFIGS / "COCO-GN" / "mask_rcnn_R_101_FPN_2x_gn.yaml").MODEL.WEIGHTS.endswith("R-101-GN.pkl")
    assert load(CONFIGS / "COCO-GN" / "mask_rcnn_R_50_FPN_2x_bnstar.yaml").MODEL.WEIGHTS.endswith("MSRA/R-50.pkl")
    assert load(CONFIGS / "COCO-GN" / "scratch_mask_rcnn_R_50_FPN_3x_gn.yaml").MODEL.WEIGHTS == ""
