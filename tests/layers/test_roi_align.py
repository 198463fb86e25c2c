import pytest
import torch
import torchvision

from gn_detection.layers import roi_align
from gn_detection.layers.roi_align import sampling_matrix


def random_rois(num, batch, size, seed):
    """Boxes of 2-200 % of the map, some past its borders, and a few degenerate ones."""
    g = torch.Generator().manual_seed(seed)
    wh = torch.exp(torch.empty(num, 2).uniform_(-4, 0.7, generator=g)) * size
    xy = torch.rand(num, 2, generator=g) * size * 1.2 - 0.1 * size - wh / 2
    boxes = torch.cat([xy, xy + wh], dim=1)
    boxes[:3, 2:] = boxes[:3, :2]  # zero width and height
    return torch.cat([torch.randint(0, batch, (num, 1), generator=g).float(), boxes], dim=1)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [0, 2])
@pytest.mark.parametrize("output_size", [7, 14])
def test_forward_and_backward_equal_torchvision(aligned, sampling_ratio, output_size):
    scale = 1 / 8
    features = torch.randn(2, 16, 23, 31, dtype=torch.float64)
    rois = random_rois(60, 2, 31 / scale, seed=output_size + sampling_ratio).double()
    ours_input = features.clone().requires_grad_()
    torchvision_input = features.clone().requires_grad_()

    ours = roi_align(ours_input, rois, output_size, scale, sampling_ratio, aligned)
    expected = torchvision.ops.roi_align(torchvision_input, rois, output_size, scale, sampling_ratio, aligned)
    grad = torch.randn_like(expected)
    ours.backward(grad)
    expected.backward(grad)

    assert ours.shape == expected.shape
    torch.testing.assert_close(ours, expected)
    torch.testing.assert_close(ours_input.grad, torchvision_input.grad)


def test_each_bin_averages_its_samples_weights_to_one_inside_the_map():
    rois = torch.tensor([[0, 8.0, 8.0, 40.0, 24.0], [1, 0.0, 0.0, 64.0, 64.0]])
    matrix = sampling_matrix(rois, (2, 16, 16), 7, 1 / 4, 0, True).to_dense()
    torch.testing.assert_close(matrix.sum(dim=1), torch.ones(2 * 49))
    assert matrix[:49, 256:].count_nonzero() == 0  # RoI 0 reads image 0 only
    assert matrix[49:, :256].count_nonzero() == 0


def test_inference_and_empty_rois_take_torchvision_path():
    features = torch.randn(1, 4, 8, 8, requires_grad=True)
    empty = roi_align(features, torch.zeros(0, 5), 7, 1.0, 0, True)
    assert empty.shape == (0, 4, 7, 7)
    with torch.no_grad():
        rois = torch.tensor([[0, 1.0, 1.0, 6.0, 5.0]])
        torch.testing.assert_close(
            roi_align(features, rois, 7, 1.0, 0, True), torchvision.ops.roi_align(features, rois, 7, 1.0, 0, True)
        )


def test_bf16_features_are_pooled_in_fp32():
    features = torch.randn(1, 8, 16, 16)
    rois = torch.tensor([[0, 2.0, 3.0, 50.0, 40.0]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pooled = roi_align(features.bfloat16().requires_grad_(), rois, 7, 1 / 4, 0, True)
    expected = torchvision.ops.roi_align(features.bfloat16().float(), rois, 7, 1 / 4, 0, True)
    assert pooled.dtype == torch.float32
    torch.testing.assert_close(pooled, expected)
