import numpy as np
import torch

from gn_detection.export.check import _difference


def detections(boxes, scores, labels):
    boxes = np.asarray(boxes, dtype=np.float32)
    masks = np.zeros((len(boxes), 1, 8, 8), dtype=np.float32)
    for k, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
        masks[k, 0, y0:y1, x0:x1] = 1
    return dict(boxes=boxes, scores=np.asarray(scores, dtype=np.float32), labels=np.asarray(labels), masks=masks)


def test_detections_are_paired_by_label_and_box_not_by_rank():
    """Two boxes whose scores tie to within float noise come out in either order."""
    eager = detections([[0, 0, 4, 4], [2, 2, 7, 7], [1, 1, 3, 3]], [0.0125001, 0.0125, 0.01], [1, 2, 1])
    exported = detections([[2, 2, 7, 7.2], [0, 0, 4, 4], [1, 1, 3, 3]], [0.0125002, 0.0125, 0.01], [2, 1, 1])
    exported["masks"] = exported["masks"][:, 0]  # the export's masks have no channel axis
    row = _difference({k: torch.from_numpy(v) for k, v in eager.items()}, exported, score_floor=0.05)
    assert row["paired"] == 3 and row["unpaired_eager"] == row["unpaired_exported"] == 0
    assert abs(row["max_box_difference"] - 0.2) < 1e-6 and row["max_score_difference"] < 1e-6
    assert row["min_mask_iou"] == 1.0 and row["max_mask_difference"] == 0.0


def test_a_box_moved_or_relabelled_is_left_unpaired():
    eager = detections([[0, 0, 4, 4], [2, 2, 7, 7]], [0.9, 0.8], [1, 2])
    exported = detections([[0, 0, 4, 4], [2, 2, 7, 7]], [0.9, 0.8], [1, 3])
    exported["boxes"][0] += 1.5
    exported["masks"] = exported["masks"][:, 0]
    row = _difference({k: torch.from_numpy(v) for k, v in eager.items()}, exported, score_floor=0.05)
    assert row["paired"] == 0 and row["unpaired_eager"] == row["unpaired_exported"] == 2
    assert row["eager_detections"] == row["exported_detections"] == 2


def test_two_empty_masks_agree():
    """An untrained mask head gives probabilities below 0.5 everywhere: nothing at 0.5 in either."""
    eager = detections([[0, 0, 4, 4]], [0.9], [1])
    eager["masks"][:] = 0.4
    exported = {k: v.copy() for k, v in eager.items()}
    exported["masks"] = exported["masks"][:, 0] + 1e-6
    row = _difference({k: torch.from_numpy(v) for k, v in eager.items()}, exported, score_floor=0.05)
    assert row["min_mask_iou"] == 1.0 and row["max_mask_difference"] < 1e-5
