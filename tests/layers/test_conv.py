import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gn_detection import build_model, get_cfg
from gn_detection.layers import Conv2d, EvoNormS0, FilterResponseNorm, WSConv2d
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
