import pytest

from gn_detection.evaluation.froc import FROC_FPS_PER_IMAGE, froc

KEYS = [f"sensitivity@{r}" for r in ("0.125", "0.25", "0.5", "1", "2", "4", "8")]


def _lesion(image_id, box, category_id=1, iscrowd=0):
    return dict(image_id=image_id, category_id=category_id, bbox=list(box), iscrowd=iscrowd)


def _det(image_id, box, score, category_id=1):
    return dict(image_id=image_id, category_id=category_id, bbox=list(box), score=score)


def _sensitivities(result):
    return [result[k] for k in KEYS]


def test_keys_follow_the_rates():
    result = froc([], [], [1])
    assert [f"sensitivity@{r:g}" for r in FROC_FPS_PER_IMAGE] == KEYS
    assert set(result) == {*KEYS, "mean_sensitivity", "recall_per_image", "images_with_lesions",
                           "lesions"}


def test_crafted_case_by_hand():
    # images 1..4; lesions A, B in image 1, C in image 2, none in image 3, D in image 4
    A, B, C, D = (0, 0, 10, 10), (50, 50, 10, 10), (20, 20, 10, 10), (70, 70, 10, 10)
    ground_truth = [_lesion(1, A), _lesion(1, B), _lesion(2, C), _lesion(4, D)]
    far = (85, 0, 10, 10)  # overlaps no lesion
    detections = [
        _det(1, A, 0.9),
        _det(1, (1, 0, 10, 10), 0.8),  # a second hit on A (IoU 90/110): a duplicate, not a FP
        _det(3, far, 0.7),             # image 3 has no lesion: a FP
        _det(2, C, 0.6),
        _det(1, far, 0.5),             # FP
        _det(2, far, 0.4),             # FP
        _det(1, B, 0.3),
        _det(3, far, 0.2),             # FP
    ]                                  # image 4 has no detection: D is never found
    # threshold: lesions hit / 4, FPs / 4 images
    #   0.9: A       25%   0     0.8: A (dup)  25%   0
    #   0.7: A       25%   0.25  0.6: A C      50%   0.25
    #   0.5: A C     50%   0.5   0.4: A C      50%   0.75
    #   0.3: A C B   75%   0.75  0.2: A C B    75%   1.0
    # best sensitivity with FPs/image <= 0.125: 25, 0.25: 50, 0.5: 50, 1 and up: 75
    # (counting the duplicate as a FP would give 25 at 0.25; leaving image 4 out of the
    # denominator would put 0.7 at 0.33 FPs/image and also give 25 at 0.25)
    result = froc(detections, ground_truth, [1, 2, 3, 4])
    assert _sensitivities(result) == pytest.approx([25, 50, 50, 75, 75, 75, 75])
    assert result["mean_sensitivity"] == pytest.approx((25 + 50 + 50 + 4 * 75) / 7)
    # at score >= 0.5: image 1 finds A of A, B (1/2), image 2 finds C (1/1), image 4 nothing (0/1)
    assert result["recall_per_image"] == pytest.approx((0.5 + 1 + 0) / 3 * 100)
    assert result["images_with_lesions"] == 3 and result["lesions"] == 4


def test_perfect_and_absent_detections():
    ground_truth = [_lesion(1, (0, 0, 10, 10)), _lesion(1, (30, 30, 20, 10)), _lesion(2, (5, 5, 8, 8))]
    perfect = [_det(a["image_id"], a["bbox"], 0.8) for a in ground_truth]
    result = froc(perfect, ground_truth, [1, 2, 3])
    assert _sensitivities(result) == pytest.approx([100.0] * 7)
    assert result["mean_sensitivity"] == pytest.approx(100.0)
    assert result["recall_per_image"] == pytest.approx(100.0)

    result = froc([], ground_truth, [1, 2, 3])
    assert _sensitivities(result) == [0.0] * 7
    assert result["mean_sensitivity"] == 0.0 and result["recall_per_image"] == 0.0
    assert result["images_with_lesions"] == 2 and result["lesions"] == 3


def test_no_lesions_give_zero():
    result = froc([_det(1, (0, 0, 10, 10), 0.9)], [], [1, 2])
    assert _sensitivities(result) == [0.0] * 7
    assert result["images_with_lesions"] == 0 and result["lesions"] == 0
    assert froc([], [], [])["mean_sensitivity"] == 0.0


def test_iou_threshold_decides_a_hit():
    ground_truth = [_lesion(1, (0, 0, 10, 10))]
    detections = [_det(1, (0, 0, 10, 4), 0.9)]  # IoU 40 / 100 = 0.4
    # at 0.5 it misses the lesion and is a FP; at 0.3 it finds it and is no FP
    strict = froc(detections, ground_truth, [1], iou_threshold=0.5)
    assert _sensitivities(strict) == [0.0] * 7
    loose = froc(detections, ground_truth, [1], iou_threshold=0.3)
    assert _sensitivities(loose) == pytest.approx([100.0] * 7)
    # IoU equal to the threshold is a hit, as in COCOeval
    at_threshold = froc(detections, ground_truth, [1], iou_threshold=0.4)
    assert at_threshold["mean_sensitivity"] == pytest.approx(100.0)


def test_crowd_regions_are_ignored():
    ground_truth = [_lesion(1, (0, 0, 10, 10)), _lesion(1, (50, 50, 40, 40), iscrowd=1)]
    lesion_hit = _det(1, (0, 0, 10, 10), 0.5)
    inside_crowd = _det(1, (55, 55, 10, 10), 0.9)  # IoU with the crowd box 100 / 1600, all inside
    # the crowd region is not a lesion: one lesion, found
    result = froc([lesion_hit, inside_crowd], ground_truth, [1])
    assert result["lesions"] == 1
    assert _sensitivities(result) == pytest.approx([100.0] * 7)
    # a detection only a quarter inside the crowd region is a FP, scored above the hit: every
    # threshold has 1 FP per image, so the rates below 1 see no hit
    mostly_outside = _det(1, (85, 85, 10, 10), 0.9)
    result = froc([lesion_hit, mostly_outside], ground_truth, [1])
    assert _sensitivities(result) == pytest.approx([0, 0, 0, 100, 100, 100, 100])


def test_class_agnostic_by_default():
    ground_truth = [_lesion(1, (0, 0, 10, 10), category_id=1)]
    detections = [_det(1, (0, 0, 10, 10), 0.9, category_id=2)]
    assert froc(detections, ground_truth, [1])["mean_sensitivity"] == pytest.approx(100.0)
    per_class = froc(detections, ground_truth, [1], class_agnostic=False)
    assert _sensitivities(per_class) == [0.0] * 7  # a miss and 1 FP per image


def test_recall_per_image_averages_images_not_lesions():
    ground_truth = [_lesion(1, (0, 0, 10, 10)), _lesion(1, (20, 0, 10, 10)),
                    _lesion(1, (40, 0, 10, 10)), _lesion(2, (0, 0, 10, 10))]
    detections = [
        _det(1, (0, 0, 10, 10), 0.5),     # counts: the threshold is inclusive
        _det(1, (20, 0, 10, 10), 0.49),   # below 0.5: not counted
        _det(2, (0, 0, 10, 10), 0.7),
        _det(3, (0, 0, 10, 10), 0.9),     # image 3 has no lesion: not in the mean
    ]
    result = froc(detections, ground_truth, [1, 2, 3])
    # image 1: 1 of 3, image 2: 1 of 1 -> (1/3 + 1) / 2; pooled it would be 2 of 4
    assert result["recall_per_image"] == pytest.approx((1 / 3 + 1) / 2 * 100)
    assert result["images_with_lesions"] == 2
    assert froc(detections, ground_truth, [1, 2, 3], recall_score_threshold=0.4)[
        "recall_per_image"] == pytest.approx((2 / 3 + 1) / 2 * 100)


def test_ground_truth_of_other_images_is_ignored():
    ground_truth = [_lesion(1, (0, 0, 10, 10)), _lesion(2, (0, 0, 10, 10))]
    result = froc([_det(1, (0, 0, 10, 10), 0.9)], ground_truth, [1])
    assert result["lesions"] == 1 and result["mean_sensitivity"] == pytest.approx(100.0)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="not in image_ids"):
        froc([_det(5, (0, 0, 1, 1), 0.9)], [], [1])
    with pytest.raises(ValueError, match=r"\[2\] repeat"):
        froc([], [], [1, 2, 2])
    with pytest.raises(ValueError, match="iou_threshold"):
        froc([], [], [1], iou_threshold=0)
    with pytest.raises(ValueError, match="fps_per_image"):
        froc([], [], [1], fps_per_image=())
    with pytest.raises(ValueError, match="score"):
        froc([dict(image_id=1, category_id=1, bbox=[0, 0, 1, 1])], [], [1])
