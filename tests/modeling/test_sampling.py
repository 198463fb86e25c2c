import pytest
import torch

from gn_detection.modeling.sampling import Matcher, subsample_labels


def test_matcher_labels_each_prediction_by_its_best_iou():
    # 2 ground-truth boxes x 5 predictions
    iou = torch.tensor([[0.1, 0.5, 0.8, 0.0, 0.25], [0.2, 0.1, 0.75, 0.0, 0.3]])
    matched, labels = Matcher([0.3, 0.7], [0, -1, 1])(iou)
    assert matched.tolist() == [1, 0, 0, 0, 1]
    # below 0.3 background, from 0.3 (included) to 0.7 ignored, from 0.7 foreground
    assert labels.tolist() == [0, -1, 1, 0, -1]
    assert Matcher([0.3, 0.7], [0, -1, 1])(torch.tensor([[0.2999, 0.7]]))[1].tolist() == [0, 1]


def test_low_quality_matches_give_every_box_its_best_predictions():
    iou = torch.tensor([[0.1, 0.4, 0.4, 0.0], [0.05, 0.0, 0.2, 0.1]])
    _, labels = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)(iou)
    # box 0's best (0.4) is tied by predictions 1 and 2; box 1's best is prediction 2
    assert labels.tolist() == [0, 1, 1, 0]


def test_matcher_without_ground_truth_labels_everything_as_the_lowest_interval():
    matched, labels = Matcher([0.5], [0, 1])(torch.zeros(0, 4))
    assert matched.tolist() == [0, 0, 0, 0] and labels.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize("thresholds, labels", [([0.7, 0.3], [0, -1, 1]), ([0.5], [0, -1, 1]), ([0.5], [0, 2])])
def test_matcher_refuses_bad_settings(thresholds, labels):
    with pytest.raises(ValueError, match="IOU_"):
        Matcher(thresholds, labels)


def test_subsample_takes_up_to_the_positive_fraction_and_fills_with_negatives():
    labels = torch.tensor([1] * 10 + [0] * 100 + [-1] * 5)
    torch.manual_seed(0)
    pos, neg = subsample_labels(labels, 40, 0.25, 0)
    assert len(pos) == 10 and len(neg) == 30
    assert (labels[pos] == 1).all() and (labels[neg] == 0).all() and len(set(neg.tolist())) == 30
    few = torch.tensor([2, 3] + [0] * 3)  # any label but -1 and the background is foreground
    pos, neg = subsample_labels(few, 100, 0.5, 0)
    assert sorted(pos.tolist()) == [0, 1] and sorted(neg.tolist()) == [2, 3, 4]


def test_subsample_draws_as_detectron2_does_for_a_given_seed():
    labels = torch.tensor([1, 0, 1, 0, 0, 1, -1, 0])
    torch.manual_seed(3)
    pos, neg = subsample_labels(labels, 4, 0.5, 0)
    torch.manual_seed(3)
    positive, negative = torch.tensor([0, 2, 5]), torch.tensor([1, 3, 4, 7])
    assert pos.tolist() == positive[torch.randperm(3)[:2]].tolist()
    assert neg.tolist() == negative[torch.randperm(4)[:2]].tolist()


def test_a_bad_setting_is_named_with_its_config_key(tiny_cfg):
    from gn_detection import build_model

    tiny_cfg.MODEL.ROI_HEADS.IOU_THRESHOLDS = [0.4, 0.6]  # two thresholds need three labels
    with pytest.raises(ValueError, match=r"MODEL\.ROI_HEADS\.IOU_LABELS=\[0, 1\] .* expected 3 labels"):
        build_model(tiny_cfg)
