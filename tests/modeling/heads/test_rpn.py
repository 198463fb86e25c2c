import math

import numpy as np
import pytest
import torch
from torchvision.models.detection.image_list import ImageList

from gn_detection.modeling.backbone import build_backbone
from gn_detection.modeling.heads import build_rpn
from gn_detection.modeling.heads.rpn import find_top_proposals, rpn_losses


def smooth_l1(x: np.ndarray, beta: float) -> np.ndarray:
    x = np.abs(x)
    return x if beta == 0 else np.where(x < beta, 0.5 * x * x / beta, x - 0.5 * beta)


def test_rpn_head_names_and_outputs_per_level(tiny_cfg):
    rpn = build_rpn(tiny_cfg, build_backbone(tiny_cfg).output_shape())
    assert {n for n, _ in rpn.head.named_children()} == {"conv", "objectness_logits", "anchor_deltas"}
    levels = [torch.randn(2, 32, s, s) for s in (32, 16, 8)]
    logits, deltas = rpn.head(levels)
    assert [t.shape for t in logits] == [(2, 3, s, s) for s in (32, 16, 8)]
    assert [t.shape for t in deltas] == [(2, 12, s, s) for s in (32, 16, 8)]


def test_rpn_settings_come_from_the_config(tiny_cfg):
    tiny_cfg.merge_from_list(["MODEL.RPN.SMOOTH_L1_BETA", 0.25, "MODEL.RPN.BOUNDARY_THRESH", 0,
                              "MODEL.RPN.LOSS_WEIGHT", 2.0, "MODEL.RPN.BBOX_REG_LOSS_WEIGHT", 3.0])
    rpn = build_rpn(tiny_cfg, build_backbone(tiny_cfg).output_shape())
    assert (rpn.pre_nms_topk, rpn.post_nms_topk) == ({True: 200, False: 100}, {True: 64, False: 32})
    assert (rpn.batch_size_per_image, rpn.positive_fraction) == (64, 0.5)
    assert rpn.anchor_matcher.thresholds[1:-1] == [0.3, 0.7] and rpn.anchor_matcher.labels == [0, -1, 1]
    assert rpn.anchor_matcher.allow_low_quality_matches
    assert (rpn.smooth_l1_beta, rpn.boundary_thresh, rpn.box_reg_weights) == (0.25, 0, (1.0,) * 4)
    assert rpn.loss_weights == {"loss_rpn_cls": 2.0, "loss_rpn_loc": 6.0}


def test_anchor_sizes_must_match_the_levels(tiny_cfg):
    tiny_cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[32], [64]]
    with pytest.raises(ValueError, match=r"2 SIZES .* for 5 feature levels"):
        build_rpn(tiny_cfg, build_backbone(tiny_cfg).output_shape())


@pytest.mark.parametrize("beta", [0.0, 1 / 9])
def test_losses_are_sums_over_the_drawn_anchors_divided_by_the_normalizer(beta):
    g = torch.Generator().manual_seed(0)
    anchors = torch.tensor([[0.0, 0, 10, 10], [5, 5, 25, 15], [20, 0, 40, 40], [0, 30, 8, 36]])
    logits = torch.randn(2, 4, generator=g)
    deltas = torch.randn(2, 4, 4, generator=g) * 0.3
    labels = torch.tensor([[1, 0, -1, 0], [0, 1, 1, -1]], dtype=torch.int8)
    matched = anchors[None].repeat(2, 1, 1) + torch.randn(2, 4, 4, generator=g)
    losses = rpn_losses(anchors, logits, deltas, labels, matched, box_reg_weights=(1.0,) * 4,
                        smooth_l1_beta=beta, normalizer=16.0)

    bce, box = 0.0, 0.0
    for n in range(2):
        for a in range(4):
            y, x = int(labels[n, a]), float(logits[n, a])
            if y < 0:
                continue
            p = 1 / (1 + math.exp(-x))
            bce -= y * math.log(p) + (1 - y) * math.log(1 - p)
            if y == 1:
                (ax0, ay0, ax1, ay1), (gx0, gy0, gx1, gy1) = anchors[a].tolist(), matched[n, a].tolist()
                aw, ah, gw, gh = ax1 - ax0, ay1 - ay0, gx1 - gx0, gy1 - gy0
                target = [(gx0 + gw / 2 - ax0 - aw / 2) / aw, (gy0 + gh / 2 - ay0 - ah / 2) / ah,
                          math.log(gw / aw), math.log(gh / ah)]
                box += smooth_l1(deltas[n, a].double().numpy() - np.array(target), beta).sum()
    assert losses["loss_rpn_cls"].item() == pytest.approx(bce / 16, rel=1e-5)
    assert losses["loss_rpn_loc"].item() == pytest.approx(box / 16, rel=1e-5)


def test_proposals_are_clipped_non_empty_and_suppressed_within_each_level():
    anchors = [torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]]), torch.tensor([[0.0, 0, 10, 10]])]
    logits = [torch.tensor([[3.0, 2.0, 1.0]]), torch.tensor([[0.5]])]
    deltas = [torch.zeros(1, 3, 4), torch.zeros(1, 1, 4)]
    deltas[0][0, 2] = torch.tensor([0.0, 0.0, float("nan"), 0.0])  # a diverged box is dropped
    (proposals,) = find_top_proposals(anchors, logits, deltas, [(8, 100)], box_reg_weights=(1.0,) * 4,
                                      pre_nms_topk=10, post_nms_topk=10, nms_thresh=0.7)
    # anchor 1 overlaps anchor 0 on its level and goes; the other level's copy of anchor 0 stays
    assert proposals.tolist() == [[0.0, 0.0, 10.0, 8.0], [0.0, 0.0, 10.0, 8.0]]
    (top,) = find_top_proposals(anchors, logits, deltas, [(8, 100)], box_reg_weights=(1.0,) * 4,
                                pre_nms_topk=1, post_nms_topk=1, nms_thresh=0.7)
    assert top.tolist() == [[0.0, 0.0, 10.0, 8.0]]


def test_training_labels_draws_and_boundary(tiny_cfg):
    tiny_cfg.merge_from_list(["MODEL.RPN.BOUNDARY_THRESH", 0, "MODEL.RPN.BATCH_SIZE_PER_IMAGE", 100000])
    rpn = build_rpn(tiny_cfg, build_backbone(tiny_cfg).output_shape()).train()
    features = {f"p{k}": torch.randn(2, 32, 64 // 2 ** (k - 2), 64 // 2 ** (k - 2)) for k in range(2, 7)}
    images = ImageList(torch.zeros(2, 3, 256, 256), [(256, 256), (200, 256)])
    targets = [dict(boxes=torch.tensor([[30.0, 40.0, 90.0, 120.0]])), dict(boxes=torch.zeros(0, 4))]
    proposals, losses = rpn(images, features, targets)
    assert [p.shape[1] for p in proposals] == [4, 4] and all(len(p) <= 64 for p in proposals)
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_loc"} and all(torch.isfinite(v) for v in losses.values())

    anchors = torch.cat(rpn.anchor_generator(list(features.values())))
    labels, matched = rpn.label_and_sample_anchors(anchors, targets, images.image_sizes)
    outside = (anchors[:, :2] < 0).any(dim=1) | (anchors[:, 2] >= 256)
    assert (labels[0, outside] == -1).all() and (labels[0, ~outside] >= 0).any()
    assert (labels[1, anchors[:, 3] >= 200] == -1).all()  # the second image is 200 px high
    assert (labels[1] != 1).all()  # no ground truth: background only
    assert (matched[0, labels[0] == 1] == targets[0]["boxes"]).all()
