"""Batch Renormalization (Ioffe, "Batch Renormalization: Towards Reducing Minibatch Dependence in
Batch-Normalized Models", 2017): BN whose training output is pulled towards what the running
moments would give, so that small or non-i.i.d. batches matter less.

In training, with the batch moments mu_B, sigma_B and the running ones mu, sigma:

    r = clip(sigma_B / sigma, 1 / r_max, r_max),   d = clip((mu_B - mu) / sigma, -d_max, d_max)
    y = gamma * ((x - mu_B) / sigma_B * r + d) + beta

r and d are constants for the gradient. The running moments are updated as BN's are, and used at
test time. With r_max = 1 and d_max = 0 it is BN.
"""
import torch
import torch.nn as nn

from .norm import NORM_REGISTRY

__all__ = ["BatchRenorm"]


@NORM_REGISTRY.register_as("BRN")
class BatchRenorm(nn.modules.batchnorm._BatchNorm):
    """Batch Renorm over (N, C, H, W) or (N, C, T, H, W), with BatchNorm2d's parameters and buffers
    (so BN weights load into it). The moments are computed in fp32.

    Args:
        num_features: C.
        r_max, d_max: the clipping bounds; the GN paper compares with 1.5 and 0.5 (its Sec. 4.1).
            Ioffe ramps them up from 1 and 0 during training; here they are fixed, as in the GN
            paper's comparison.
        eps, momentum: as for BatchNorm2d (momentum 0.1: running = 0.9 running + 0.1 batch).
    """

    def __init__(self, num_features: int, r_max: float = 1.5, d_max: float = 0.5, eps: float = 1e-5,
                 momentum: float = 0.1):
        super().__init__(num_features, eps=eps, momentum=momentum)
        if r_max < 1 or d_max < 0:
            raise ValueError(f"BatchRenorm: r_max={r_max} must be >= 1 and d_max={d_max} >= 0 "
                             f"(MODEL.BATCH_RENORM.R_MAX, D_MAX)")
        self.r_max, self.d_max = r_max, d_max

    @classmethod
    def from_config(cls, cfg) -> dict:
        return dict(r_max=cfg.MODEL.BATCH_RENORM.R_MAX, d_max=cfg.MODEL.BATCH_RENORM.D_MAX)

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() not in (4, 5):
            raise ValueError(f"BatchRenorm: expected (N, C, H, W) or (N, C, T, H, W) input, got {input.dim()}-D")

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, r_max={self.r_max}, d_max={self.d_max}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        per_channel = (1, -1) + (1,) * (x.dim() - 2)
        if not self.training:
            return nn.functional.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                            False, 0.0, self.eps)
        if x.numel() == 0:  # a batch of zero RoIs (a film with no finding): nothing to measure
            return x * self.weight.view(per_channel) + self.bias.view(per_channel)
        axes = [0] + list(range(2, x.dim()))
        count = x.numel() // x.shape[1]
        if count < 2:  # as BatchNorm2d: one value per channel has no variance
            raise ValueError(f"BatchRenorm: expected more than 1 value per channel when training, got input {tuple(x.shape)}")
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        mean = xf.mean(axes)
        var = xf.var(axes, unbiased=False)
        std = (var + self.eps).sqrt()
        running_std = (self.running_var + self.eps).sqrt()
        with torch.no_grad():
            r = (std / running_std).clamp(1 / self.r_max, self.r_max)
            d = ((mean - self.running_mean) / running_std).clamp(-self.d_max, self.d_max)
            self.running_mean.lerp_(mean.to(self.running_mean.dtype), self.momentum)
            self.running_var.lerp_((var * count / (count - 1)).to(self.running_var.dtype), self.momentum)
            self.num_batches_tracked.add_(1)
        x_hat = (xf - mean.view(per_channel)) / std.view(per_channel) * r.view(per_channel) + d.view(per_channel)
        return (x_hat * self.weight.view(per_channel) + self.bias.view(per_channel)).to(x.dtype)
