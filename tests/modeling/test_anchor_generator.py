import math

import torch
from gn_detection.modeling.anchor_generator import GridAnchorGenerator


def generator(round_anchors):
    return GridAnchorGenerator(
        [[32], [64], [128], [256], [512]], [[0.5, 1.0, 2.0]] * 5, strides=[4, 8, 16, 32, 64], round_anchors=round_anchors
    )


def test_cell_anchors_keep_exact_corners_unless_rounded():
    exact = generator(False).generate_anchors([32], [0.5, 1.0, 2.0])
    w = math.sqrt(32 * 32 / 0.5)  # area 32^2, height / width 0.5
    torch.testing.assert_close(exact[0], torch.tensor([-w / 2, -w / 4, w / 2, w / 4]))
    assert exact[1].tolist() == [-16.0, -16.0, 16.0, 16.0]
    assert generator(True).generate_anchors([32], [0.5, 1.0, 2.0])[0].tolist() == [-23.0, -11.0, 23.0, 11.0]


def test_each_level_uses_the_backbone_stride_even_where_its_grid_is_rounded_up():
    # An 800 x 1088 padded image: P6 has ceil(25 / 2) = 13 rows, so 800 // 13 would give 61.
    sizes = [(200, 272), (100, 136), (50, 68), (25, 34), (13, 17)]
    features = [torch.zeros(1, 1, h, w) for h, w in sizes]
    anchors = generator(False)(features)
    assert [a.shape for a in anchors] == [(3 * h * w, 4) for h, w in sizes]
    p6 = anchors[-1].view(13, 17, 3, 4)
    centres = (p6[..., :2] + p6[..., 2:]) / 2
    assert centres[1, 1, 1].tolist() == [64.0, 64.0] and centres[12, 16, 0].tolist() == [16 * 64.0, 12 * 64.0]


def test_anchors_stay_fp32_under_autocast():
    # bf16 spaces its numbers 8 apart above 1024: anchor corners there would move by pixels.
    sizes = [(256, 256), (128, 128), (64, 64), (32, 32), (16, 16)]
    exact = generator(False)([torch.zeros(1, 1, h, w) for h, w in sizes])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        anchors = generator(False)([torch.zeros(1, 1, h, w, dtype=torch.bfloat16) for h, w in sizes])
    assert all(a.dtype == torch.float32 and a.equal(e) for a, e in zip(anchors, exact))
