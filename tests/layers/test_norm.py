import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gn_detection import get_cfg
from gn_detection.layers import (
    NORM_REGISTRY,
    FrozenBatchNorm2d,
    GroupNorm,
    convert_frozen_batchnorm,
    get_norm,
    is_norm,
    norm_from_cfg,
)
from gn_detection.utils.registry import UnknownNameError


def group_norm_reference(x: np.ndarray, groups: int, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    """The GN paper's formula, in float64 NumPy."""
    n, c, h, w = x.shape
    grouped = x.reshape(n, groups, c // groups, h, w)
    mean = grouped.mean(axis=(2, 3, 4), keepdims=True)
    var = grouped.var(axis=(2, 3, 4), keepdims=True)
    normalized = ((grouped - mean) / np.sqrt(var + eps)).reshape(n, c, h, w)
    return normalized * gamma.reshape(1, c, 1, 1) + beta.reshape(1, c, 1, 1)


def _random_affine(norm: nn.Module, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        norm.weight.copy_(torch.randn(norm.weight.shape, generator=g))
        norm.bias.copy_(torch.randn(norm.bias.shape, generator=g))


@pytest.mark.parametrize("groups", [1, 4, 32, 64])
def test_gn_matches_numpy_reference(groups):
    x = torch.randn(3, 64, 7, 5, generator=torch.Generator().manual_seed(1)) * 3 + 2
    norm = get_norm(functools.partial(GroupNorm, num_groups=groups, eps=1e-5), 64)
    _random_affine(norm)
    expected = group_norm_reference(
        x.double().numpy(), groups, norm.weight.detach().double().numpy(), norm.bias.detach().double().numpy(), 1e-5
    )
    np.testing.assert_allclose(norm(x).detach().numpy(), expected, atol=1e-5, rtol=0)


def test_gn_with_one_group_is_layer_norm_over_chw():
    x = torch.randn(2, 16, 6, 6)
    gn = GroupNorm(16, num_groups=1)
    expected = F.layer_norm(x, normalized_shape=(16, 6, 6), eps=1e-5)
    torch.testing.assert_close(gn(x), expected, atol=1e-5, rtol=0)


def test_gn_with_one_group_per_channel_is_instance_norm():
    x = torch.randn(2, 16, 6, 6)
    gn = GroupNorm(16, num_groups=16)
    torch.testing.assert_close(gn(x), F.instance_norm(x, eps=1e-5), atol=1e-5, rtol=0)


def test_gn_output_of_a_sample_ignores_the_rest_of_the_batch_while_bn_does_not():
    g = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 32, 8, 8, generator=g)
    batch_a = torch.cat([sample, torch.randn(3, 32, 8, 8, generator=g)])
    batch_b = torch.cat([sample, 5 * torch.randn(3, 32, 8, 8, generator=g) + 3])

    gn = get_norm("GN", 32)
    torch.testing.assert_close(gn(batch_a)[0], gn(batch_b)[0], atol=1e-6, rtol=0)

    bn = get_norm("BN", 32).train()
    assert (bn(batch_a)[0] - bn(batch_b)[0]).abs().max() > 0.1


def test_gn_defaults_follow_the_paper():
    gn = get_norm("GN", 256)
    assert isinstance(gn, GroupNorm) and gn.num_groups == 32 and gn.eps == 1e-5 and gn.num_channels == 256


def test_gn_rejects_a_group_count_that_does_not_divide_the_channels():
    with pytest.raises(ValueError, match=r"NUM_GROUPS=24 does not divide the 256 channels.*e\.g\. 32"):
        GroupNorm(256, num_groups=24)


def test_norm_from_cfg_binds_group_norm_settings():
    cfg = get_cfg()
    cfg.MODEL.GROUP_NORM.NUM_GROUPS = 8
    cfg.MODEL.GROUP_NORM.EPSILON = 1e-3
    cfg.MODEL.FPN.NORM = "GN"
    gn = get_norm(norm_from_cfg(cfg, "MODEL.FPN.NORM"), 64)
    assert (gn.num_groups, gn.eps) == (8, 1e-3)
    cfg.MODEL.FPN.NORM = ""
    assert norm_from_cfg(cfg, "MODEL.FPN.NORM") is None


def test_norm_from_cfg_names_the_key_of_an_unknown_norm():
    cfg = get_cfg()
    cfg.MODEL.FPN.NORM = "GroupNormal"
    with pytest.raises(UnknownNameError, match=r"MODEL\.FPN\.NORM='GroupNormal'.*BN, EvoNormS0, FRN, FrozenBN, GN, SyncBN"):
        norm_from_cfg(cfg, "MODEL.FPN.NORM")


@pytest.mark.parametrize(
    "name, cls", [("GN", GroupNorm), ("FrozenBN", FrozenBatchNorm2d), ("BN", nn.BatchNorm2d), ("SyncBN", nn.SyncBatchNorm)]
)
def test_every_builtin_name_builds_its_layer(name, cls):
    layer = get_norm(name, 64)
    assert type(layer) is cls
    assert is_norm(layer)
    assert layer(torch.randn(2, 64, 4, 4)).shape == (2, 64, 4, 4)


def test_empty_name_means_no_norm_and_bad_specs_fail_clearly():
    assert get_norm("", 8) is None and get_norm(None, 8) is None
    with pytest.raises(UnknownNameError, match="registered names"):
        get_norm("LN2d", 8)
    with pytest.raises(TypeError, match="got int"):
        get_norm(3, 8)


def test_a_callable_spec_is_called_with_the_channel_count():
    layer = get_norm(lambda c: nn.GroupNorm(2, c), 6)
    assert layer.num_channels == 6


def test_a_plugin_norm_registers_by_name_and_counts_as_a_norm():
    name = "TestScaleNorm"

    class ScaleNorm(nn.Module):
        def __init__(self, channels):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(channels))

        def forward(self, x):
            return x * self.scale[:, None, None]

    NORM_REGISTRY.register_as(name)(ScaleNorm)
    try:
        layer = get_norm(name, 5)
        assert isinstance(layer, ScaleNorm) and is_norm(layer)
    finally:
        NORM_REGISTRY._obj_map.pop(name)


def test_convert_frozen_batchnorm_keeps_statistics_and_leaves_gn_alone():
    bn = nn.BatchNorm2d(8)
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    _random_affine(bn)
    model = nn.Sequential(nn.Conv2d(3, 8, 1), bn, GroupNorm(8, num_groups=2))
    x = torch.randn(2, 3, 5, 5)
    expected = model.eval()(x)
    converted = convert_frozen_batchnorm(model)
    assert isinstance(converted[1], FrozenBatchNorm2d) and isinstance(converted[2], GroupNorm)
    torch.testing.assert_close(converted(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_gn_keeps_its_statistics_in_fp32_under_bf16_autocast(memory_format):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(2, 64, 32, 32, generator=g) * 4 + 100).to(torch.bfloat16)  # a large mean
    x = x.contiguous(memory_format=memory_format).requires_grad_()
    gn = GroupNorm(64, num_groups=8)
    _random_affine(gn)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = gn(x)
    assert y.dtype == torch.bfloat16
    x64 = x.detach().double().requires_grad_()
    reference = F.group_norm(x64, 8, gn.weight.double(), gn.bias.double(), 1e-5)
    # only the final rounding to bf16 is lost (8 bits of mantissa: relative 2^-8)
    torch.testing.assert_close(y.double(), reference, rtol=2**-7, atol=2**-7 * reference.abs().max().item())
    if memory_format == torch.contiguous_format:  # PyTorch's NHWC kernel rounds bf16 more in both
        naive = F.group_norm(x.detach(), 8, gn.weight.to(torch.bfloat16), gn.bias.to(torch.bfloat16), 1e-5)
        assert (naive.double() - reference).abs().max() > (y.double() - reference).abs().max()

    grad = torch.randn(y.shape, generator=g)
    y.backward(grad.to(torch.bfloat16))
    reference.backward(grad.double())
    assert gn.weight.grad.dtype == torch.float32  # parameters and their gradients stay fp32
    assert (x.grad.double() - x64.grad).abs().max() <= 2**-6 * x64.grad.abs().max()


def test_frozen_bn_scales_by_its_statistics_with_and_without_a_gradient():
    layer = FrozenBatchNorm2d(8)
    g = torch.Generator().manual_seed(0)
    for name in ("weight", "bias", "running_mean"):
        getattr(layer, name).copy_(torch.randn(8, generator=g))
    layer.running_var.copy_(torch.rand(8, generator=g) + 0.5)
    x = torch.randn(2, 8, 5, 5, generator=g, dtype=torch.float64).float()
    scale = layer.weight / torch.sqrt(layer.running_var + layer.eps)
    expected = (x - layer.running_mean[:, None, None]) * scale[:, None, None] + layer.bias[:, None, None]
    frozen_input = layer(x)  # no gradient through it: the fused kernel, as detectron2
    assert torch.equal(frozen_input, F.batch_norm(x, layer.running_mean, layer.running_var, layer.weight, layer.bias, eps=layer.eps))
    trained_input = layer(x.clone().requires_grad_())
    torch.testing.assert_close(frozen_input, expected)
    torch.testing.assert_close(trained_input, expected)
    trained_input.sum().backward()
    assert layer.weight.grad is None  # frozen: the gradient reaches the input only
