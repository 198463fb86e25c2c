"""Detectron (Caffe2) blob names -> gn_detection names: ImageNet backbones (GN or affine BN)
and full Mask R-CNN checkpoints. Background is class 0 in Detectron too: no reordering."""
import re

from ..rename import Format, InputConvention

BGR_MEAN = (103.530, 116.280, 123.675)

DROP = (
    r"_momentum$",  # optimizer state
    r"^pred_[wb]$",  # the ImageNet classifier
)

RULES = (
    # stem ("res_conv1_bn" is the BN models' name of the stem's norm)
    (r"^conv1_", "backbone.bottom_up.stem.conv1_"),
    (r"^res_conv1_bn_", "backbone.bottom_up.stem.conv1_bn_"),
    # residual blocks
    (r"^res(\d)_(\d+)_branch1_", r"backbone.bottom_up.res\1.\2.shortcut_"),
    (r"^res(\d)_(\d+)_branch2a_", r"backbone.bottom_up.res\1.\2.conv1_"),
    (r"^res(\d)_(\d+)_branch2b_", r"backbone.bottom_up.res\1.\2.conv2_"),
    (r"^res(\d)_(\d+)_branch2c_", r"backbone.bottom_up.res\1.\2.conv3_"),
    # FPN: laterals are named after the last block of their stage; the top one has no "_lateral"
    (r"^fpn_inner_res(\d)_\d+_sum_lateral_", r"backbone.fpn_lateral\1_"),
    (r"^fpn_inner_res(\d)_\d+_sum_", r"backbone.fpn_lateral\1_"),
    (r"^fpn_res(\d)_\d+_sum_", r"backbone.fpn_output\1_"),
    # RPN: one head shared by the levels, stored under level 2
    (r"^conv_rpn_fpn2_", "rpn.head.conv_"),
    (r"^rpn_cls_logits_fpn2_", "rpn.head.objectness_logits_"),
    (r"^rpn_bbox_pred_fpn2_", "rpn.head.anchor_deltas_"),
    # box head and predictor
    (r"^head_conv(\d)_", r"roi_heads.box_head.conv\1_"),
    (r"^fc6_", "roi_heads.box_head.fc1_"),
    (r"^fc7_", "roi_heads.box_head.fc2_"),
    (r"^cls_score_", "roi_heads.box_predictor.cls_score_"),
    (r"^bbox_pred_", "roi_heads.box_predictor.bbox_pred_"),
    # mask head and predictor
    (r"^_\[mask\]_fcn(\d)_", r"roi_heads.mask_head.mask_fcn\1_"),
    (r"^conv5_mask_", "roi_heads.mask_head.deconv_"),
    (r"^mask_fcn_logits_", "roi_heads.mask_predictor.mask_fcn_logits_"),
    # parameter suffixes; the norms' before the conv's "_b"
    (r"_(gn|bn)_s$", ".norm.weight"),
    (r"_(gn|bn)_b$", ".norm.bias"),
    (r"_w$", ".weight"),
    (r"_b$", ".bias"),
)

DETECTRON = Format(
    name="detectron",
    rules=RULES,
    matches=lambda keys: any(re.match(r"^(conv1_w|res_conv1_bn_s|res\d_\d+_branch2a_w)$", k) for k in keys),
    drop=DROP,
    # Caffe2's BN is an affine channel op without statistics: frozen BN with mean 0 and a
    # variance that cancels FrozenBatchNorm2d's eps (1e-5), so it scales by exactly the blob's s.
    fills=(
        (r"\.norm\.running_mean$", 0.0, "Caffe2 affine BN has no statistics: mean 0"),
        (r"\.norm\.running_var$", 1.0 - 1e-5, "Caffe2 affine BN has no statistics: variance 1 - eps"),
    ),
    input=InputConvention("BGR", BGR_MEAN, (57.375, 57.120, 58.395)),
)

# The MSRA BN weights took pixels minus the mean, unscaled.
MSRA_BN_INPUT = InputConvention("BGR", BGR_MEAN, (1.0, 1.0, 1.0))
