"""EvoNorm-S0 and FRN + TLU against their papers' formulas, computed directly in NumPy."""
import numpy as np
import pytest
import torch

from gn_detection.layers import EvoNormS0, FilterResponseNorm


def _randomized(layer):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return layer


def _evonorm_s0(x, v, gamma, beta, groups, eps, activation=True):
    n, c, h, w = x.shape
    grouped = x.reshape(n, groups, -1)
    std = np.sqrt(grouped.var(axis=2) + eps)  # (n, groups), population variance
    std = np.repeat(std, c // groups, axis=1)[:, :, None, None]
    numerator = x / (1 + np.exp(-v[None, :, None, None] * x)) if activation else x
    return numerator / std * gamma[None, :, None, None] + beta[None, :, None, None]


def _frn_tlu(x, gamma, beta, tau, eps, activation=True):
    nu2 = (x**2).mean(axis=(2, 3), keepdims=True)
    y = gamma[None, :, None, None] * x / np.sqrt(nu2 + eps) + beta[None, :, None, None]
    return np.maximum(y, tau[None, :, None, None]) if activation else y


@pytest.mark.parametrize("activation", [True, False])
def test_evonorm_s0_is_its_formula(activation):
    layer = _randomized(EvoNormS0(16, num_groups=4, eps=1e-5))
    layer.apply_activation = activation
    x = torch.randn(3, 16, 5, 7, dtype=torch.float64).float()
    p = {k: v.detach().double().numpy() for k, v in layer.named_parameters()}
    expected = _evonorm_s0(x.double().numpy(), p["v"], p["weight"], p["bias"], 4, 1e-5, activation)
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("activation", [True, False])
def test_frn_tlu_is_its_formula(activation):
    layer = _randomized(FilterResponseNorm(8, eps=1e-6))
    layer.apply_activation = activation
    x = torch.randn(2, 8, 6, 4)
    p = {k: v.detach().double().numpy() for k, v in layer.named_parameters()}
    expected = _frn_tlu(x.double().numpy(), p["weight"], p["bias"], p["tau"], 1e-6, activation)
    np.testing.assert_allclose(layer(x).detach().numpy(), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("layer", [EvoNormS0(16, num_groups=4), FilterResponseNorm(16)], ids=["EvoNormS0", "FRN"])
def test_each_sample_is_normalized_alone(layer):
    layer = _randomized(layer)
    batch = torch.randn(4, 16, 6, 6)
    together = layer(batch)
    for i in range(4):
        torch.testing.assert_close(layer(batch[i : i + 1]), together[i : i + 1], rtol=0, atol=0)


def test_frn_statistics_do_not_overflow_in_fp16():
    layer = _randomized(FilterResponseNorm(4))
    x = torch.randn(1, 4, 8, 8) * 1000  # x^2 passes fp16's 65504
    half = layer(x.half())
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    torch.testing.assert_close(half.float(), layer(x.half().float()), rtol=1e-3, atol=1e-2)


def test_evonorm_statistics_are_fp32_under_bf16():
    layer = _randomized(EvoNormS0(8, num_groups=2))
    x = (torch.randn(2, 8, 16, 16) * 3 + 100).bfloat16()  # bf16 sums of these would lose the variance
    out = layer(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), layer(x.float()), rtol=1e-2, atol=2e-2)


@pytest.mark.parametrize("layer", [EvoNormS0(32, num_groups=8), FilterResponseNorm(32)], ids=["EvoNormS0", "FRN"])
def test_a_batch_of_zero_rois_passes(layer):
    """An image with no instance gives the mask head zero RoIs; training goes on."""
    x = torch.randn(0, 32, 14, 14, requires_grad=True)
    y = layer(x)
    y.sum().backward()
    assert y.shape == x.shape and x.grad.shape == x.shape
