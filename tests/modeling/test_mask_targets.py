import numpy as np
import pytest
import torch

from gn_detection.modeling.mask_targets import crop_bitmasks, mask_targets, rasterize_polygons_in_box


def test_polygons_are_drawn_as_seen_through_the_box():
    box = np.array([2.0, 4.0, 12.0, 10.0], dtype=np.float32)
    left_half = [np.array([2, 4, 7, 4, 7, 10, 2, 10], dtype=np.float64)]
    mask = rasterize_polygons_in_box(left_half, box, 28)
    assert mask.shape == (28, 28) and mask.dtype == bool
    assert mask[:, :14].all() and not mask[:, 14:].any()
    whole = rasterize_polygons_in_box(left_half, np.array([2.0, 4.0, 7.0, 10.0], dtype=np.float32), 28)
    assert whole.all()  # the box is the polygon: every cell is inside
    two_parts = left_half + [np.array([9, 4, 12, 4, 12, 10, 9, 10], dtype=np.float64)]
    assert rasterize_polygons_in_box(two_parts, box, 10)[:, 7:].all()


def test_degenerate_boxes_and_empty_instances_give_finite_masks():
    flat = rasterize_polygons_in_box([np.array([0, 0, 5, 0, 5, 5, 0, 5], dtype=np.float64)],
                                     np.array([1.0, 1.0, 1.0, 4.0], dtype=np.float32), 7)
    assert flat.shape == (7, 7)
    assert not rasterize_polygons_in_box([], np.array([0, 0, 4, 4], dtype=np.float32), 7).any()


def test_bitmasks_are_cut_with_aligned_roi_align_and_thresholded():
    masks = torch.zeros(2, 40, 60, dtype=torch.uint8)
    masks[1, 10:30, 20:40] = 1
    boxes = torch.tensor([[20.0, 10.0, 40.0, 30.0], [20.0, 10.0, 60.0, 30.0], [0.0, 0.0, 10.0, 10.0]])
    crops = crop_bitmasks(masks, boxes, torch.tensor([1, 1, 0]), 14)
    assert crops.dtype == torch.bool and crops.shape == (3, 14, 14)
    assert crops[0].all()  # the box is the instance
    assert crops[1, :, :7].all() and not crops[1, :, 7:].any()  # twice as wide: the left half
    assert not crops[2].any()  # instance 0 is empty


def test_targets_come_from_polygons_when_the_target_has_them():
    boxes = torch.tensor([[2.0, 4.0, 12.0, 10.0]])
    polygon_target = dict(polygons=[[np.array([2, 4, 7, 4, 7, 10, 2, 10], dtype=np.float64)]])
    assert mask_targets(polygon_target, boxes, torch.tensor([0]), 28)[0, :, :14].all()
    bitmask = torch.zeros(1, 20, 20, dtype=torch.uint8)
    bitmask[0, 4:10, 2:7] = 1
    from_bitmask = mask_targets(dict(masks=bitmask), boxes, torch.tensor([0]), 28)
    from_polygon = mask_targets(polygon_target, boxes, torch.tensor([0]), 28)
    # the same region; a bitmask's corner pixels are bilinearly blended with the outside
    assert (from_bitmask != from_polygon).sum() <= 4 and not from_bitmask[:, :, 14:].any()
    assert mask_targets(polygon_target, boxes[:0], torch.tensor([], dtype=torch.int64), 28).shape == (0, 28, 28)
    with pytest.raises(KeyError, match="'masks' or 'polygons'"):
        mask_targets({}, boxes, torch.tensor([0]), 28)
