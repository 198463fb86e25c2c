import pytest
import torch

from gn_detection.modeling.backbone import build_backbone
from gn_detection.modeling.heads import build_rpn


def test_rpn_head_names_and_outputs_per_level(tiny_cfg):
    rpn = build_rpn(tiny_cfg, build_backbone(tiny_cfg).output_shape())
    assert {n for n, _ in rpn.head.named_children()} == {"conv", "objectness_logits", "anchor_deltas"}
    levels = [torch.randn(2, 32, s, s) for s in (32, 16, 8)]
    logits, deltas = rpn.head(levels)
    assert [t.shape for t in logits] == [(2, 3, s, s) for s in (32, 16, 8)]
    assert [t.shape for t in deltas] == [(2, 12, s, s) for s in (32, 16, 8)]


def test_rpn_settings_reach_torchvision(tiny_cfg):
    rpn = build_rpn(tiny_cfg, build_backbone(tiny_cfg).output_shape())
    assert rpn._pre_nms_top_n == dict(training=200, testing=100)
    assert rpn._post_nms_top_n == dict(training=64, testing=32)
    assert rpn.fg_bg_sampler.batch_size_per_image == 64
    assert (rpn.proposal_matcher.low_threshold, rpn.proposal_matcher.high_threshold) == (0.3, 0.7)


def test_anchor_sizes_must_match_the_levels(tiny_cfg):
    tiny_cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64]]
    with pytest.raises(ValueError, match=r"2 SIZES .* for 5 feature levels"):
        build_rpn(tiny_cfg, build_backbone(tiny_cfg).output_shape())
