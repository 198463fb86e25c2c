import pytest
import torch

from gn_detection.layers import GroupNorm, ShapeSpec
from gn_detection.modeling.heads import FastRCNNConvFCHead, build_box_head

POOLED = ShapeSpec(channels=32, height=7, width=7)


def test_4conv1fc_head_has_named_gn_convs_then_one_fc(tiny_cfg):
    head = build_box_head(tiny_cfg, POOLED)
    names = [n for n, _ in head.named_children()]
    assert names == ["conv1", "conv2", "conv3", "conv4", "fc1"]
    assert all(isinstance(getattr(head, f"conv{k}").norm, GroupNorm) for k in range(1, 5))
    assert head.fc1.in_features == 32 * 7 * 7
    out = head(torch.randn(5, 32, 7, 7))
    assert out.shape == (5, 64) and head.output_shape().channels == 64
    assert (out >= 0).all()


def test_2fc_head_of_the_bn_star_baseline(tiny_cfg):
    tiny_cfg.MODEL.ROI_BOX_HEAD.NUM_CONV = 0
    tiny_cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 2
    tiny_cfg.MODEL.ROI_BOX_HEAD.NORM = ""
    head = build_box_head(tiny_cfg, POOLED)
    assert [n for n, _ in head.named_children()] == ["fc1", "fc2"]
    assert head(torch.randn(3, 32, 7, 7)).shape == (3, 64)


def test_conv_only_head_flattens():
    head = FastRCNNConvFCHead(POOLED, conv_dims=[16], fc_dims=[], norm="")
    assert head(torch.randn(2, 32, 7, 7)).shape == (2, 16 * 49) and head.output_shape().channels == 16 * 49


def test_unknown_head_name_is_named(tiny_cfg):
    tiny_cfg.MODEL.ROI_BOX_HEAD.NAME = "Box4conv"
    with pytest.raises(KeyError, match=r"MODEL\.ROI_BOX_HEAD\.NAME='Box4conv'.*FastRCNNConvFCHead"):
        build_box_head(tiny_cfg, POOLED)
