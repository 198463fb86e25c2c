import pytest
import torch
import torch.nn.functional as F

from gn_detection import build_model
from gn_detection.modeling.box_regression import encode_boxes
from gn_detection.modeling.heads.roi_heads import RoISample, detect_in_image, fast_rcnn_losses
from gn_detection.modeling.mask_targets import crop_bitmasks
from tests.helpers import make_sample


def smooth_l1(x: torch.Tensor, beta: float) -> torch.Tensor:
    x = x.abs()
    return x if beta == 0 else torch.where(x < beta, 0.5 * x * x / beta, x - 0.5 * beta)


@pytest.mark.parametrize("beta", [0.0, 1.0])
@pytest.mark.parametrize("agnostic", [False, True])
def test_box_losses_are_the_mean_cross_entropy_and_the_foreground_deltas_per_drawn_roi(beta, agnostic):
    g = torch.Generator().manual_seed(0)
    num_classes = 3
    gt = [torch.tensor([[10.0, 10, 50, 60], [30, 5, 90, 40]]), torch.zeros(0, 4)]
    samples = [
        RoISample(torch.tensor([[12.0, 8, 48, 62], [0, 0, 20, 20], [28, 6, 85, 45]]), torch.tensor([2, 0, 3]),
                  torch.tensor([0, 0, 1])),
        RoISample(torch.tensor([[5.0, 5, 30, 30]]), torch.tensor([0]), torch.tensor([0])),
    ]
    logits = torch.randn(4, num_classes + 1, generator=g)
    deltas = torch.randn(4, 4 if agnostic else 4 * (num_classes + 1), generator=g)
    losses = fast_rcnn_losses(logits, deltas, samples, gt, box_reg_weights=(10.0, 10.0, 5.0, 5.0), smooth_l1_beta=beta)

    classes = [2, 0, 3, 0]
    expected_cls = -sum(torch.log_softmax(logits[i], 0)[c] for i, c in enumerate(classes)) / 4
    box = 0.0
    for i, (roi, target, c) in enumerate([(samples[0].boxes[0], gt[0][0], 2), (samples[0].boxes[2], gt[0][1], 3)]):
        row = 0 if i == 0 else 2
        predicted = deltas[row] if agnostic else deltas[row, 4 * c : 4 * c + 4]
        box += smooth_l1(predicted - encode_boxes(target[None], roi[None], (10.0, 10.0, 5.0, 5.0))[0], beta).sum()
    assert losses["loss_cls"].item() == pytest.approx(expected_cls.item(), rel=1e-5)
    assert losses["loss_box_reg"].item() == pytest.approx(box.item() / 4, rel=1e-5)


def test_no_drawn_roi_gives_zero_losses_that_still_reach_the_predictor():
    logits, deltas = torch.zeros(0, 4, requires_grad=True), torch.zeros(0, 16, requires_grad=True)
    empty = RoISample(torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64))
    losses = fast_rcnn_losses(logits, deltas, [empty], [torch.zeros(0, 4)], box_reg_weights=(1.0,) * 4, smooth_l1_beta=0.0)
    assert all(v.item() == 0 and v.requires_grad for v in losses.values())


def test_sampling_appends_the_ground_truth_and_labels_by_iou(tiny_cfg):
    tiny_cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 1000
    heads = build_model(tiny_cfg).roi_heads
    proposals = [torch.tensor([[0.0, 0, 10, 10], [11, 9, 52, 61], [60, 60, 90, 90]]), torch.tensor([[1.0, 1, 5, 5]])]
    targets = [dict(boxes=torch.tensor([[10.0, 10, 50, 60]]), labels=torch.tensor([3])),
               dict(boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.int64))]
    first, second = heads.label_and_sample_proposals(proposals, targets)
    drawn = {tuple(b.tolist()): int(c) for b, c in zip(first.boxes, first.classes)}
    assert drawn == {(0.0, 0, 10, 10): 0, (11, 9, 52, 61): 3, (60, 60, 90, 90): 0, (10, 10, 50, 60): 3}
    assert first.classes[:2].tolist() == [3, 3]  # foreground first
    assert second.classes.tolist() == [0]
    heads.proposal_append_gt = False
    assert len(heads.label_and_sample_proposals(proposals, targets)[0].boxes) == 3


def test_mask_loss_is_the_mean_logistic_loss_of_each_roi_class_map(tiny_cfg):
    heads = build_model(tiny_cfg).roi_heads
    features = {f"p{k}": torch.randn(1, 32, 64 // 2 ** (k - 2), 64 // 2 ** (k - 2)) for k in range(2, 7)}
    masks = torch.zeros(1, 256, 256, dtype=torch.uint8)
    masks[0, 20:80, 30:100] = 1
    target = dict(boxes=torch.tensor([[30.0, 20, 100, 80]]), labels=torch.tensor([2]), masks=masks)
    sample = RoISample(torch.tensor([[30.0, 20, 100, 80], [40, 10, 120, 70], [0, 0, 30, 30]]),
                       torch.tensor([2, 2, 0]), torch.tensor([0, 0, 0]))
    loss = heads.mask_loss(features, [sample], [target])

    fg = sample.boxes[:2]  # the background RoI has no mask target
    logits = heads.mask_predictor(heads.mask_head(heads.mask_pooler(features, [fg])))
    assert logits.shape[1] == tiny_cfg.MODEL.ROI_HEADS.NUM_CLASSES + 1
    targets = crop_bitmasks(masks, fg, torch.tensor([0, 0]), 28)
    assert targets[0].all() and 0 < targets[1].float().mean() < 1  # the instance itself; a shifted box
    expected = F.binary_cross_entropy_with_logits(logits[:, 2], targets.float())  # class 2's maps
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_detections_per_class_above_threshold_after_nms_and_clipping():
    boxes = torch.tensor([[0.0, 0, 10, 10, 0, 0, 10, 10], [1, 1, 11, 11, -5, 2, 20, 12], [50, 50, 60, 60, 50, 50, 60, 60]])
    scores = torch.tensor([[0.1, 0.8, 0.1], [0.1, 0.7, 0.2], [0.0, 0.04, 0.96]])
    out = detect_in_image(boxes, scores, (15, 15), score_thresh=0.05, nms_thresh=0.5, detections_per_image=10)
    assert out["labels"].tolist() == [2, 1, 2, 2]
    assert out["scores"].tolist() == pytest.approx([0.96, 0.8, 0.2, 0.1])
    assert out["boxes"][0].tolist() == [15.0, 15.0, 15.0, 15.0]  # clipped to the 15 x 15 image
    assert out["boxes"][2].tolist() == [0.0, 2.0, 15.0, 12.0]
    top = detect_in_image(boxes, scores, (15, 15), score_thresh=0.5, nms_thresh=0.5, detections_per_image=1)
    assert top["labels"].tolist() == [2] and len(top["boxes"]) == 1


def test_class_agnostic_heads_train_and_detect(tiny_cfg):
    tiny_cfg.merge_from_list(["MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG", True,
                              "MODEL.ROI_MASK_HEAD.CLS_AGNOSTIC_MASK", True, "MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0])
    torch.manual_seed(0)
    model = build_model(tiny_cfg)
    assert model.roi_heads.box_predictor.bbox_pred.out_features == 4
    assert model.roi_heads.mask_predictor.mask_fcn_logits.out_channels == 1
    image, target = make_sample(96, 128, 2, 3, seed=0)
    losses = model([image], [target])
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    (out,) = model.eval()([image])
    assert out["masks"].shape[1:] == (1, 96, 128) and len(out["boxes"]) > 0
