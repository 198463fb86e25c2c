import math

import torch

from gn_detection.modeling.box_regression import SCALE_CLAMP, decode_boxes, encode_boxes

WEIGHTS = (10.0, 10.0, 5.0, 5.0)


def test_encode_follows_the_rcnn_formula():
    reference = torch.tensor([[10.0, 20.0, 50.0, 40.0]])  # centre (30, 30), 40 x 20
    target = torch.tensor([[14.0, 18.0, 74.0, 58.0]])  # centre (44, 38), 60 x 40
    expected = [10 * 14 / 40, 10 * 8 / 20, 5 * math.log(60 / 40), 5 * math.log(40 / 20)]
    torch.testing.assert_close(encode_boxes(target, reference, WEIGHTS)[0], torch.tensor(expected))


def test_decode_inverts_encode_for_every_class_column():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(50, 2, generator=g) * 300
    references = torch.cat([xy, xy + 5 + torch.rand(50, 2, generator=g) * 100], dim=1)
    targets = references + torch.randn(50, 4, generator=g) * 4
    deltas = encode_boxes(targets, references, WEIGHTS)
    decoded = decode_boxes(torch.cat([deltas, deltas * 0], dim=1), references, WEIGHTS)
    torch.testing.assert_close(decoded[:, :4], targets, rtol=0, atol=1e-3)
    torch.testing.assert_close(decoded[:, 4:], references, rtol=0, atol=1e-3)


def test_decode_clamps_growth_and_works_in_fp32_whatever_the_deltas_dtype():
    reference = torch.tensor([[1000.0, 1000.0, 1016.0, 1016.0]])
    huge = decode_boxes(torch.tensor([[0.0, 0.0, 50.0, 50.0]]), reference, (1.0,) * 4)
    assert math.isclose(float(huge[0, 2] - huge[0, 0]), 16 * math.exp(SCALE_CLAMP), rel_tol=1e-5)  # 1000 px
    half = torch.tensor([[0.05, 0.0, 0.0, 0.0]])
    decoded = decode_boxes(half.bfloat16(), reference, (1.0,) * 4)
    # 0.05 in bf16 is 0.0500488..., times 16 px; a bf16 box would be rounded to 8-px steps
    assert decoded.dtype == torch.float32 and decoded[0, 0].item() == 1000.0 + 16 * float(half.bfloat16()[0, 0])
