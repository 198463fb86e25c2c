"""Batch Renorm against the formulas of Ioffe (2017), Algorithm 1, written out in float64 NumPy."""
import numpy as np
import pytest
import torch
from torch import nn

from gn_detection import get_cfg
from gn_detection.layers import BatchRenorm, get_norm, norm_from_cfg


class NumpyBatchRenorm:
    """Algorithm 1 of the Batch Renorm paper, with BN's running-moment update (momentum 0.1,
    the unbiased batch variance) and BN's inference."""

    def __init__(self, channels: int, r_max: float, d_max: float, eps: float = 1e-5, momentum: float = 0.1):
        self.mean, self.var = np.zeros(channels), np.ones(channels)
        self.r_max, self.d_max, self.eps, self.momentum = r_max, d_max, eps, momentum

    def _axes(self, x):
        return (0,) + tuple(range(2, x.ndim))

    def _per_channel(self, v, x):
        return v.reshape((1, -1) + (1,) * (x.ndim - 2))

    def r_d(self, x):
        mean, var = x.mean(self._axes(x)), x.var(self._axes(x))
        sigma_b, sigma = np.sqrt(var + self.eps), np.sqrt(self.var + self.eps)
        return np.clip(sigma_b / sigma, 1 / self.r_max, self.r_max), np.clip((mean - self.mean) / sigma, -self.d_max, self.d_max)

    def train_step(self, x, gamma, beta):
        mean, var = x.mean(self._axes(x)), x.var(self._axes(x))
        r, d = self.r_d(x)
        x_hat = (x - self._per_channel(mean, x)) / self._per_channel(np.sqrt(var + self.eps), x)
        y = self._per_channel(gamma, x) * (x_hat * self._per_channel(r, x) + self._per_channel(d, x)) + self._per_channel(beta, x)
        count = x.size // x.shape[1]
        self.mean += self.momentum * (mean - self.mean)
        self.var += self.momentum * (var * count / (count - 1) - self.var)
        return y

    def test(self, x, gamma, beta):
        x_hat = (x - self._per_channel(self.mean, x)) / self._per_channel(np.sqrt(self.var + self.eps), x)
        return self._per_channel(gamma, x) * x_hat + self._per_channel(beta, x)


def _batches(shape, steps=5, seed=0):
    """Batches whose moments move away from the initial running ones (mean 0, var 1), so r and d clip."""
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64) * (1 + 2 * i) + 3 * i for i in range(steps)]


def _layer(channels, r_max, d_max):
    layer = BatchRenorm(channels, r_max=r_max, d_max=d_max).double()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        layer.weight.copy_(torch.rand(channels, generator=g, dtype=torch.float64) + 0.5)
        layer.bias.copy_(torch.randn(channels, generator=g, dtype=torch.float64))
    return layer


@pytest.mark.parametrize("shape", [(4, 6, 5, 3), (2, 6, 3, 4, 5)], ids=["NCHW", "NCTHW"])
def test_training_outputs_running_moments_and_test_output_follow_the_paper(shape):
    layer, reference = _layer(6, 1.5, 0.5), NumpyBatchRenorm(6, 1.5, 0.5)
    gamma, beta = layer.weight.detach().numpy(), layer.bias.detach().numpy()
    layer.train()
    for x in _batches(shape):
        np.testing.assert_allclose(layer(x).detach().numpy(), reference.train_step(x.numpy(), gamma, beta), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(layer.running_mean.numpy(), reference.mean, rtol=1e-10)
    np.testing.assert_allclose(layer.running_var.numpy(), reference.var, rtol=1e-10)
    assert int(layer.num_batches_tracked) == 5
    x = _batches(shape, steps=1, seed=7)[0]
    np.testing.assert_allclose(layer.eval()(x).detach().numpy(), reference.test(x.numpy(), gamma, beta), rtol=1e-6, atol=1e-8)


def test_r_and_d_are_clipped_at_r_max_and_d_max():
    """A batch 3x wider and shifted by 2 running sigmas: unclipped, r = 3 and d = 2."""
    layer, reference = _layer(1, 1.5, 0.5), NumpyBatchRenorm(1, 1.5, 0.5)
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = (x - x.mean()) / x.std(unbiased=False) * 3 + 2
    r, d = reference.r_d(x.numpy())
    assert r[0] == 1.5 and d[0] == 0.5
    # y = gamma * (x_hat * r + d) + beta: the output's mean and std give d and r back
    # (x_hat's std is sqrt(var / (var + eps)), a hair below 1)
    y = ((layer.train()(x) - layer.bias) / layer.weight).detach()
    assert float(y.mean()) == pytest.approx(0.5, abs=1e-9)
    assert float(y.std(unbiased=False)) == pytest.approx(1.5 * (9 / (9 + 1e-5)) ** 0.5, rel=1e-9)
    # and below 1/r_max: a batch 3x narrower is scaled by 1/1.5, not by 1/3
    layer, narrow = _layer(1, 1.5, 0.5), x / 9
    y = ((layer.train()(narrow) - layer.bias) / layer.weight).detach()
    assert float(y.std(unbiased=False)) == pytest.approx((1 / 9 / (1 / 9 + 1e-5)) ** 0.5 / 1.5, rel=1e-9)


def test_no_gradient_flows_through_r_and_d():
    """The gradient is that of gamma * (x_hat * r + d) + beta with r and d constants: with the
    batch's own x_hat computed by autograd and r, d taken from the reference as plain numbers."""
    layer, reference = _layer(3, 1.5, 0.5), NumpyBatchRenorm(3, 1.5, 0.5)
    x = (_batches((4, 3, 5, 5), steps=3)[2]).requires_grad_()
    upstream = torch.randn(x.shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    (layer.train()(x) * upstream).sum().backward()
    r, d = (torch.from_numpy(v).view(1, -1, 1, 1) for v in reference.r_d(x.detach().numpy()))
    x2 = x.detach().clone().requires_grad_()
    mean, var = x2.mean((0, 2, 3), keepdim=True), x2.var((0, 2, 3), unbiased=False, keepdim=True)
    expected = layer.weight.detach().view(1, -1, 1, 1) * ((x2 - mean) / (var + 1e-5).sqrt() * r + d) + layer.bias.detach().view(1, -1, 1, 1)
    (expected * upstream).sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-8, atol=1e-10)
    assert (r != 1).all()  # the check would be blind with r = 1


def test_with_r_max_1_and_d_max_0_it_is_batch_norm_in_training():
    brn = _layer(6, 1.0, 0.0)
    bn = nn.BatchNorm2d(6).double()
    bn.load_state_dict(brn.state_dict())
    brn.train(), bn.train()
    for x in _batches((3, 6, 4, 4)):
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        y1, y2 = brn(x1), bn(x2)
        torch.testing.assert_close(y1, y2, rtol=1e-9, atol=1e-9)
        y1.pow(2).sum().backward(), y2.pow(2).sum().backward()
        torch.testing.assert_close(x1.grad, x2.grad, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(brn.running_var, bn.running_var, rtol=1e-12, atol=0)


def test_settings_come_from_model_batch_renorm_and_bn_weights_load():
    cfg = get_cfg()
    cfg.MODEL.FPN.NORM = "BRN"
    cfg.MODEL.BATCH_RENORM.R_MAX, cfg.MODEL.BATCH_RENORM.D_MAX = 3.0, 1.0
    layer = get_norm(norm_from_cfg(cfg, "MODEL.FPN.NORM"), 16)
    assert (layer.r_max, layer.d_max) == (3.0, 1.0)
    layer.load_state_dict(nn.BatchNorm2d(16).state_dict())  # the same names: BN checkpoints fit
    with pytest.raises(ValueError, match="r_max=0.5 must be >= 1"):
        BatchRenorm(8, r_max=0.5)


def test_a_batch_of_zero_rois_and_a_single_value_per_channel():
    layer = BatchRenorm(4).train()
    assert layer(torch.zeros(0, 4, 7, 7)).shape == (0, 4, 7, 7)
    assert int(layer.num_batches_tracked) == 0
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        layer(torch.randn(1, 4, 1, 1))
