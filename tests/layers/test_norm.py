import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gn_detection import get_cfg
from gn_detection.layers import (
    NORM_REGISTRY,
    BatchNorm,
    BatchRenorm,
    EvoNormS0,
    FilterResponseNorm,
    FrozenBatchNorm2d,
    GroupNorm,
    InstanceNorm,
    LayerNorm,
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
    with pytest.raises(UnknownNameError, match=r"MODEL\.FPN\.NORM='GroupNormal'.*BN, BRN, EvoNormS0, FRN, FrozenBN, GN, IN, LN, SyncBN"):
        norm_from_cfg(cfg, "MODEL.FPN.NORM")


@pytest.mark.parametrize(
    "name, cls",
    [("GN", GroupNorm), ("LN", LayerNorm), ("IN", InstanceNorm), ("FrozenBN", FrozenBatchNorm2d), ("BN", BatchNorm),
     ("BRN", BatchRenorm), ("SyncBN", nn.SyncBatchNorm)],
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


def _layer_norm_then_affine(x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    """torch's layer_norm over every axis but N, then the per-channel scale and shift."""
    per_channel = (1, -1) + (1,) * (x.dim() - 2)
    return F.layer_norm(x, x.shape[1:], eps=norm.eps) * norm.weight.view(per_channel) + norm.bias.view(per_channel)


@pytest.mark.parametrize("shape", [(3, 16, 6, 5), (2, 16, 3, 6, 5)], ids=["NCHW", "NCTHW"])
def test_ln_is_layer_norm_over_all_but_the_batch_with_a_per_channel_affine_and_gn_with_one_group(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 4 + 1
    ln = get_norm("LN", 16)
    _random_affine(ln)
    torch.testing.assert_close(ln(x), _layer_norm_then_affine(x, ln), atol=1e-5, rtol=0)
    gn = GroupNorm(16, num_groups=1)
    gn.load_state_dict(ln.state_dict())
    torch.testing.assert_close(ln(x), gn(x), atol=0, rtol=0)


@pytest.mark.parametrize("shape", [(3, 16, 6, 5), (2, 16, 3, 6, 5)], ids=["NCHW", "NCTHW"])
def test_in_is_instance_norm_with_a_per_channel_affine_and_gn_with_a_group_per_channel(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0)) * 4 + 1
    norm = get_norm("IN", 16)
    _random_affine(norm)
    expected = F.instance_norm(x, weight=norm.weight, bias=norm.bias, eps=1e-5)
    torch.testing.assert_close(norm(x), expected, atol=1e-5, rtol=0)
    gn = GroupNorm(16, num_groups=16)
    gn.load_state_dict(norm.state_dict())
    torch.testing.assert_close(norm(x), gn(x), atol=0, rtol=0)


def test_ln_and_in_take_their_epsilon_from_group_norm_settings_and_ignore_the_group_count():
    cfg = get_cfg()
    cfg.MODEL.GROUP_NORM.NUM_GROUPS, cfg.MODEL.GROUP_NORM.EPSILON = 8, 1e-3
    cfg.MODEL.FPN.NORM, cfg.MODEL.RESNETS.NORM = "LN", "IN"
    ln, inorm = get_norm(norm_from_cfg(cfg, "MODEL.FPN.NORM"), 64), get_norm(norm_from_cfg(cfg, "MODEL.RESNETS.NORM"), 64)
    assert (ln.num_groups, ln.eps, inorm.num_groups, inorm.eps) == (1, 1e-3, 64, 1e-3)


def test_group_norm_reference_on_clips():
    """GN of a clip pools each group over T, H and W: the formula on (N, G, C/G * T, H, W)."""
    x = torch.randn(2, 32, 3, 5, 4, generator=torch.Generator().manual_seed(2))
    gn = GroupNorm(32, num_groups=8)
    _random_affine(gn)
    as_image = x.reshape(2, 32, 3 * 5, 4)  # T folded into H: the same groups of values
    expected = group_norm_reference(as_image.double().numpy(), 8, gn.weight.detach().double().numpy(),
                                    gn.bias.detach().double().numpy(), 1e-5)
    np.testing.assert_allclose(gn(x).detach().reshape(2, 32, 15, 4).numpy(), expected, atol=1e-5, rtol=0)


def _frames_as_images(x: torch.Tensor) -> torch.Tensor:
    n, c, t, h, w = x.shape
    return x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)


@pytest.mark.parametrize("name", sorted(name for name, _ in NORM_REGISTRY if name != "SyncBN"))
def test_every_registered_norm_takes_clips_as_it_takes_images(name):
    """A clip whose statistics are those of its frames: per-sample norms of a 1-frame clip, and
    batch norms of a clip folded into the batch (both pool every position of a channel)."""
    g = torch.Generator().manual_seed(3)
    layer = get_norm(name, 32)
    for p in layer.parameters():
        with torch.no_grad():
            p.copy_(torch.rand(p.shape, generator=g) + 0.5)
    for buffer_name in ("running_mean", "running_var"):
        if hasattr(layer, buffer_name):
            getattr(layer, buffer_name).copy_(torch.rand(32, generator=g) + 0.5)
    clip = torch.randn(2, 32, 3, 4, 5, generator=g)
    layer.eval()
    one_frame = clip[:, :, :1]
    torch.testing.assert_close(layer(one_frame)[:, :, 0], layer(one_frame[:, :, 0]), atol=1e-5, rtol=1e-5)
    if isinstance(layer, (nn.modules.batchnorm._BatchNorm, FrozenBatchNorm2d)):  # per position: frames are images
        torch.testing.assert_close(_frames_as_images(layer(clip)), layer(_frames_as_images(clip)), atol=1e-5, rtol=1e-5)
    assert layer.train()(clip.requires_grad_()).shape == clip.shape


def test_frozen_bn_on_clips_is_its_formula_with_and_without_gradient():
    frozen = FrozenBatchNorm2d(8)
    g = torch.Generator().manual_seed(4)
    for name in ("weight", "bias", "running_mean"):
        getattr(frozen, name).copy_(torch.randn(8, generator=g))
    frozen.running_var.copy_(torch.rand(8, generator=g) + 0.1)
    clip = torch.randn(2, 8, 3, 4, 4, generator=g)
    view = (1, 8, 1, 1, 1)
    expected = (clip - frozen.running_mean.view(view)) / (frozen.running_var.view(view) + frozen.eps).sqrt()
    expected = expected * frozen.weight.view(view) + frozen.bias.view(view)
    torch.testing.assert_close(frozen(clip), expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(frozen(clip.clone().requires_grad_()), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("channels_per_group", [16, 64])
def test_dim_per_gp_gives_every_gn_layer_of_an_r50_fpn_its_channels_over_that_many_groups(channels_per_group):
    from gn_detection.config import get_cfg as fresh_cfg
    from gn_detection.modeling import build_model

    cfg = fresh_cfg()
    cfg.merge_from_file("configs/COCO-GN/mask_rcnn_R_50_FPN_3x_gn.yaml")
    cfg.MODEL.GROUP_NORM.NUM_GROUPS, cfg.MODEL.GROUP_NORM.DIM_PER_GP = -1, channels_per_group
    cfg.MODEL.DEVICE = "meta"
    model = build_model(cfg)
    norms = {name: m for name, m in model.named_modules() if isinstance(m, GroupNorm)}
    assert len(norms) == 53 + 8 + 4 + 4  # R-50 (stem, 16 blocks x 3, 4 shortcuts), FPN, box head, mask head
    assert {n.num_groups for n in norms.values()} == {c // channels_per_group for c in (64, 128, 256, 512, 1024, 2048)}
    for name, norm in norms.items():
        assert norm.num_groups * channels_per_group == norm.num_channels, name


def test_setting_both_or_neither_group_key_is_an_error_naming_both():
    from gn_detection.layers import group_norm_settings

    cfg = get_cfg()
    cfg.MODEL.GROUP_NORM.DIM_PER_GP = 16
    with pytest.raises(ValueError, match=r"NUM_GROUPS=32 and MODEL\.GROUP_NORM\.DIM_PER_GP=16.*exactly one"):
        group_norm_settings(cfg)
    cfg.MODEL.GROUP_NORM.NUM_GROUPS, cfg.MODEL.GROUP_NORM.DIM_PER_GP = -1, -1
    with pytest.raises(ValueError, match=r"NUM_GROUPS=-1 and MODEL\.GROUP_NORM\.DIM_PER_GP=-1"):
        group_norm_settings(cfg)


def test_a_channel_count_that_dim_per_gp_does_not_divide_is_a_clear_error():
    with pytest.raises(ValueError, match=r"DIM_PER_GP=24 does not divide the 256 channels"):
        GroupNorm(256, channels_per_group=24)
    with pytest.raises(ValueError, match=r"DIM_PER_GP=24 does not divide the 256 channels"):
        EvoNormS0(256, channels_per_group=24)
