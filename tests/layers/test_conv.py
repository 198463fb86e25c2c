import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gn_detection import build_model, get_cfg
from gn_detection.layers import Conv2d, Conv3d, EvoNormS0, FilterResponseNorm, WSConv2d, WSConv3d, inflate_conv
from gn_detection.layers.conv import standardize_weight
from tests.helpers import TINY_CONFIG


def _standardized_in_numpy(weight: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """The WS authors' formula: per output filter, minus the mean, over (std, ddof 1) + eps."""
    flat = weight.reshape(weight.shape[0], -1).astype(np.float64)
    centred = flat - flat.mean(axis=1, keepdims=True)
    return (centred / (centred.std(axis=1, ddof=1, keepdims=True) + eps)).reshape(weight.shape)


def test_weight_standardization_follows_the_formula():
    torch.manual_seed(0)
    conv = WSConv2d(4, 6, 3)
    x = torch.randn(2, 4, 9, 11)
    expected_weight = torch.from_numpy(_standardized_in_numpy(conv.weight.detach().numpy())).float()
    torch.testing.assert_close(standardize_weight(conv.weight.detach()), expected_weight, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(conv(x), F.conv2d(x, expected_weight, conv.bias, padding=1), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(conv(x), F.conv2d(x, conv.weight, conv.bias, padding=1))  # the stored weight stays


def test_weight_standardization_statistics_are_fp32_for_bf16_weights():
    weight = (torch.randn(8, 16, 3, 3) * 0.01 + 0.3).bfloat16()
    expected = torch.from_numpy(_standardized_in_numpy(weight.float().numpy())).bfloat16()
    assert standardize_weight(weight).dtype == torch.bfloat16
    torch.testing.assert_close(standardize_weight(weight), expected, rtol=0, atol=0)


@pytest.mark.parametrize("norm", ["EvoNormS0", "FRN"])
def test_a_norm_with_its_own_activation_replaces_the_relu(norm):
    with_relu = Conv2d(4, 32, 3, norm=norm, activation=F.relu)
    without = Conv2d(4, 32, 3, norm=norm)
    assert with_relu.activation is None and with_relu.norm.apply_activation
    assert without.activation is None and not without.norm.apply_activation
    if norm == "FRN":
        with torch.no_grad():
            with_relu.norm.tau.fill_(-0.25)  # TLU clamps at tau, which ReLU would have clamped at 0
    x = torch.randn(2, 4, 8, 8)
    out = with_relu(x)
    assert out.min() < 0  # a ReLU stacked on top would leave nothing below 0
    if norm == "FRN":
        assert out.min().item() == pytest.approx(-0.25)


def test_the_whole_model_builds_and_trains_with_ws_and_each_batch_free_norm():
    from tests.helpers import make_sample

    image, target = make_sample(96, 128, 2, 3, seed=0)
    for norm in ("GN", "EvoNormS0", "FRN"):
        cfg = get_cfg()
        cfg.merge_from_file(str(TINY_CONFIG))
        for part in ("RESNETS", "FPN", "ROI_BOX_HEAD", "ROI_MASK_HEAD"):
            cfg.MODEL[part].NORM, cfg.MODEL[part].CONV = norm, "WS"
        model = build_model(cfg)
        convs = [m for m in model.modules() if isinstance(m, Conv2d) and m.norm is not None]
        assert convs and all(isinstance(c, WSConv2d) for c in convs)
        kind = {"GN": torch.nn.GroupNorm, "EvoNormS0": EvoNormS0, "FRN": FilterResponseNorm}[norm]
        assert all(isinstance(c.norm, kind) for c in convs)
        losses = model([image], [target])
        sum(losses.values()).backward()
        assert all(torch.isfinite(v) for v in losses.values())


def test_weight_standardization_of_a_3d_kernel_follows_the_formula():
    torch.manual_seed(0)
    conv = WSConv3d(4, 6, (3, 3, 5), stride=(1, 2, 2))
    x = torch.randn(2, 4, 5, 9, 11)
    expected_weight = torch.from_numpy(_standardized_in_numpy(conv.weight.detach().numpy())).float()
    torch.testing.assert_close(standardize_weight(conv.weight.detach()), expected_weight, rtol=1e-6, atol=1e-6)
    expected = F.conv3d(x, expected_weight, conv.bias, stride=(1, 2, 2), padding=(1, 1, 2))
    torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)


def test_conv3d_is_conv_then_norm_then_activation():
    torch.manual_seed(0)
    conv = Conv3d(4, 6, 3, stride=(1, 2, 2), norm=lambda c: nn.GroupNorm(2, c), activation=F.relu)
    with torch.no_grad():
        conv.norm.weight.uniform_(0.5, 2)
        conv.norm.bias.uniform_(-1, 1)
    x = torch.randn(2, 4, 5, 9, 11)
    expected = F.relu(F.group_norm(F.conv3d(x, conv.weight, None, (1, 2, 2), 1), 2, conv.norm.weight, conv.norm.bias))
    assert conv.bias is None and conv(x).shape == (2, 6, 5, 5, 6)
    torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)
    frn = Conv3d(4, 6, 3, norm="FRN", activation=F.relu)
    assert frn.activation is None and frn.norm.apply_activation


def _constant_clip(image: torch.Tensor, frames: int) -> torch.Tensor:
    return image.unsqueeze(2).expand(-1, -1, frames, -1, -1)


def test_an_inflated_conv_gives_a_constant_clip_the_2d_response_inside_the_clip():
    torch.manual_seed(0)
    conv = Conv2d(4, 6, 3, stride=2, activation=F.relu)
    image = torch.randn(2, 4, 9, 11)
    inflated = inflate_conv(conv, 3)
    out = inflated(_constant_clip(image, 5))
    expected = conv(image)
    for t in range(1, 4):
        torch.testing.assert_close(out[:, :, t], expected, rtol=1e-5, atol=1e-6)
    # the first and last frames see one frame of zero padding: 2/3 of the response before the ReLU
    torch.testing.assert_close(out[:, :, 0], F.relu(F.conv2d(image, conv.weight * 2 / 3, conv.bias, 2, 1)),
                               rtol=1e-5, atol=1e-6)


def test_an_inflated_ws_conv_scales_a_constant_clip_by_the_documented_factor():
    torch.manual_seed(0)
    conv = WSConv2d(4, 6, 3, bias=False)
    image = torch.randn(2, 4, 9, 11)
    time, n = 3, 4 * 3 * 3
    out = inflate_conv(conv, time)(_constant_clip(image, 5))[:, :, 2]
    factor = (time * (n * time - 1) / (n - 1)) ** 0.5
    torch.testing.assert_close(out, conv(image) * factor, rtol=1e-3, atol=1e-4)


def test_inflate_conv_keeps_dtype_trainability_and_the_norm():
    conv = Conv2d(4, 8, 1, norm=lambda c: nn.GroupNorm(2, c)).double()
    conv.weight.requires_grad_(False)
    inflated = inflate_conv(conv, 5)
    assert inflated.weight.dtype == torch.float64 and not inflated.weight.requires_grad
    assert inflated.norm is conv.norm and inflated.weight.shape == (8, 4, 5, 1, 1) and inflated.padding == (2, 0, 0)


@pytest.mark.parametrize("time", [0, 2, -1, True, 3.0])
def test_inflate_conv_needs_an_odd_time(time):
    with pytest.raises(ValueError, match=rf"inflate_conv: time={time!r}; expected an odd temporal kernel size >= 1"):
        inflate_conv(Conv2d(4, 8, 3), time)


def test_inflate_conv_refuses_other_convs():
    with pytest.raises(TypeError, match=r"Conv2d or WSConv2d \(exactly\), got torch\.nn\.modules\.conv\.Conv2d"):
        inflate_conv(nn.Conv2d(4, 8, 3), 3)
