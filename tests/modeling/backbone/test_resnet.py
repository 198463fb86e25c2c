import pytest
import torch
from torch import nn
from torchvision.ops import FrozenBatchNorm2d

from gn_detection import get_cfg
from gn_detection.layers import BatchNorm, GroupNorm, ShapeSpec
from gn_detection.modeling.backbone import BasicBlock, BottleneckBlock, build_resnet_backbone


def resnet_cfg(depth=50, norm="GN", freeze_at=0, **resnets):
    cfg = get_cfg()
    if depth < 50:
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.DEPTH = depth
    cfg.MODEL.RESNETS.NORM = norm
    cfg.MODEL.BACKBONE.FREEZE_AT = freeze_at
    for key, value in resnets.items():
        cfg.MODEL.RESNETS[key] = value
    return cfg


def build(cfg, channels=3):
    return build_resnet_backbone(cfg, ShapeSpec(channels=channels))


@pytest.mark.parametrize(
    "depth, blocks, block_class, res5_channels",
    [
        (18, [2, 2, 2, 2], BasicBlock, 512),
        (34, [3, 4, 6, 3], BasicBlock, 512),
        (50, [3, 4, 6, 3], BottleneckBlock, 2048),
        (101, [3, 4, 23, 3], BottleneckBlock, 2048),
        (152, [3, 8, 36, 3], BottleneckBlock, 2048),
    ],
)
def test_depths_have_the_published_blocks_and_widths(depth, blocks, block_class, res5_channels):
    model = build(resnet_cfg(depth))
    assert [len(getattr(model, f"res{k}")) for k in range(2, 6)] == blocks
    assert all(isinstance(b, block_class) for k in range(2, 6) for b in getattr(model, f"res{k}"))
    shapes = model.output_shape()
    assert {k: (s.channels, s.stride) for k, s in shapes.items()} == {
        "res2": (res5_channels // 8, 4),
        "res3": (res5_channels // 4, 8),
        "res4": (res5_channels // 2, 16),
        "res5": (res5_channels, 32),
    }


def test_forward_gives_the_declared_shapes():
    cfg = resnet_cfg(18, STEM_OUT_CHANNELS=16, RES2_OUT_CHANNELS=16, OUT_FEATURES=["stem", "res3", "res5"])
    cfg.MODEL.GROUP_NORM.NUM_GROUPS = 8
    model = build(cfg)
    with torch.no_grad():
        features = model(torch.randn(2, 3, 64, 96))
    assert list(features) == ["stem", "res3", "res5"]
    for name, shape in model.output_shape().items():
        assert features[name].shape == (2, shape.channels, 64 // shape.stride, 96 // shape.stride)


def test_stages_after_the_last_output_are_not_built():
    model = build(resnet_cfg(50, OUT_FEATURES=["res2", "res3"]))
    assert hasattr(model, "res3") and not hasattr(model, "res4")


def test_norm_follows_the_stem_every_conv_and_every_shortcut():
    model = build(resnet_cfg(50))
    assert isinstance(model.stem.conv1.norm, GroupNorm)
    for k in range(2, 6):
        stage = getattr(model, f"res{k}")
        assert isinstance(stage[0].shortcut.norm, GroupNorm)
        assert all(stage[i].shortcut is None for i in range(1, len(stage)))
        for block in stage:
            assert all(isinstance(c.norm, GroupNorm) and c.bias is None for c in (block.conv1, block.conv2, block.conv3))


@pytest.mark.parametrize("stride_in_1x1", [True, False])
def test_stride_in_1x1_moves_the_stride(stride_in_1x1):
    block = build(resnet_cfg(50, STRIDE_IN_1X1=stride_in_1x1)).res3[0]
    strides = (block.conv1.stride[0], block.conv2.stride[0])
    assert strides == ((2, 1) if stride_in_1x1 else (1, 2))


def test_resnext_groups_and_width_reach_the_3x3_convs():
    block = build(resnet_cfg(50, NUM_GROUPS=32, WIDTH_PER_GROUP=4)).res2[0]
    assert block.conv2.groups == 32 and block.conv2.out_channels == 128


def trainable_prefixes(model):
    return {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    "freeze_at, trainable",
    [
        (0, {"stem", "res2", "res3", "res4", "res5"}),
        (1, {"res2", "res3", "res4", "res5"}),
        (2, {"res3", "res4", "res5"}),
        (5, set()),
    ],
)
def test_freeze_at_counts_from_the_stem(freeze_at, trainable):
    assert trainable_prefixes(build(resnet_cfg(18, freeze_at=freeze_at))) == trainable


def test_frozen_gn_stays_gn_and_frozen_bn_becomes_frozen_batchnorm():
    gn = build(resnet_cfg(18, "GN", freeze_at=2))
    assert isinstance(gn.res2[0].conv1.norm, GroupNorm)
    assert not gn.res2[0].conv1.norm.weight.requires_grad
    assert gn.res3[0].conv1.norm.weight.requires_grad

    bn = build(resnet_cfg(18, "BN", freeze_at=2))
    assert isinstance(bn.stem.conv1.norm, FrozenBatchNorm2d)
    assert isinstance(bn.res2[0].conv1.norm, FrozenBatchNorm2d)
    assert type(bn.res3[0].conv1.norm) is BatchNorm  # BatchNorm2d that also takes clips


def test_frozen_stages_do_not_change_in_training():
    model = build(resnet_cfg(18, "BN", freeze_at=2)).train()
    before = model.res2[0].conv1.norm.running_mean.clone()
    model(torch.randn(2, 3, 64, 64) * 5 + 1)
    torch.testing.assert_close(model.res2[0].conv1.norm.running_mean, before)


def test_bad_depth_and_freeze_at_are_named():
    with pytest.raises(ValueError, match=r"MODEL\.RESNETS\.DEPTH=42"):
        build(resnet_cfg(42))
    with pytest.raises(ValueError, match=r"MODEL\.BACKBONE\.FREEZE_AT=7"):
        build(resnet_cfg(18, freeze_at=7))
    with pytest.raises(ValueError, match=r"RES2_OUT_CHANNELS=256: ResNet-34's res2 is as wide as its stem"):
        build(resnet_cfg(34, RES2_OUT_CHANNELS=256))
    with pytest.raises(ValueError, match="res6"):
        build(resnet_cfg(18, OUT_FEATURES=["res6"]))


def test_one_channel_input():
    model = build(resnet_cfg(18), channels=1)
    assert model.stem.conv1.in_channels == 1
    assert model(torch.randn(1, 1, 32, 32))["res5"].shape[1] == 512
