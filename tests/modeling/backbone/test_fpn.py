import pytest
import torch

from gn_detection.layers import GroupNorm
from gn_detection.modeling.backbone import FPN, build_backbone


def test_fpn_outputs_p2_to_p6_at_their_strides(tiny_cfg):
    fpn = build_backbone(tiny_cfg)
    assert isinstance(fpn, FPN) and fpn.size_divisibility == 32
    shapes = fpn.output_shape()
    assert {k: (s.channels, s.stride) for k, s in shapes.items()} == {
        "p2": (32, 4), "p3": (32, 8), "p4": (32, 16), "p5": (32, 32), "p6": (32, 64)
    }
    with torch.no_grad():
        features = fpn(torch.randn(2, 3, 128, 192))
    assert list(features) == ["p2", "p3", "p4", "p5", "p6"]
    for name, shape in shapes.items():
        assert features[name].shape == (2, 32, 128 // shape.stride, 192 // shape.stride)


def test_lateral_and_output_convs_take_the_fpn_norm(tiny_cfg):
    fpn = build_backbone(tiny_cfg)
    for level in range(2, 6):
        for kind in ("lateral", "output"):
            conv = getattr(fpn, f"fpn_{kind}{level}")
            assert isinstance(conv.norm, GroupNorm) and conv.bias is None
    tiny_cfg.MODEL.FPN.NORM = ""
    plain = build_backbone(tiny_cfg)
    assert plain.fpn_lateral2.norm is None and plain.fpn_lateral2.bias is not None


def test_top_down_pathway_carries_coarse_information_to_fine_levels(tiny_cfg):
    """P2 depends on res5 through the top-down additions, not only on res2."""
    tiny_cfg.MODEL.FPN.NORM = ""
    fpn = build_backbone(tiny_cfg).eval()
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        reference = fpn(x)["p2"]
        fpn.fpn_lateral5.bias.add_(1.0)
        changed = fpn(x)["p2"]
    assert (changed - reference).abs().max() > 1e-3


def test_unknown_in_feature_is_named(tiny_cfg):
    tiny_cfg.MODEL.FPN.IN_FEATURES = ["res2", "res9"]
    with pytest.raises(ValueError, match=r"MODEL\.FPN\.IN_FEATURES.*res9"):
        build_backbone(tiny_cfg)


def test_unknown_backbone_name_lists_the_registered_ones(tiny_cfg):
    tiny_cfg.MODEL.BACKBONE.NAME = "build_vit"
    with pytest.raises(KeyError, match=r"MODEL\.BACKBONE\.NAME='build_vit'.*build_resnet_fpn_backbone"):
        build_backbone(tiny_cfg)
