import torch

from gn_detection.layers import GroupNorm, ShapeSpec
from gn_detection.modeling.heads import MaskPredictor, build_mask_head


def test_mask_head_convs_are_normalized_and_the_deconv_doubles_the_resolution(tiny_cfg):
    head = build_mask_head(tiny_cfg, ShapeSpec(channels=32, height=14, width=14))
    assert [n for n, _ in head.named_children()] == ["mask_fcn1", "mask_fcn2", "mask_fcn3", "mask_fcn4", "deconv"]
    assert all(isinstance(getattr(head, f"mask_fcn{k}").norm, GroupNorm) for k in range(1, 5))
    features = head(torch.randn(3, 32, 14, 14))
    shape = head.output_shape()
    assert features.shape == (3, shape.channels, 28, 28) == (3, 32, shape.height, shape.width)

    logits = MaskPredictor(shape, num_classes=3)(features)
    assert logits.shape == (3, 4, 28, 28)


def test_mask_head_without_norm(tiny_cfg):
    tiny_cfg.MODEL.ROI_MASK_HEAD.NORM = ""
    tiny_cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 2
    head = build_mask_head(tiny_cfg, ShapeSpec(channels=32, height=14, width=14))
    assert head.mask_fcn1.norm is None and head.mask_fcn1.bias is not None and not hasattr(head, "mask_fcn3")
