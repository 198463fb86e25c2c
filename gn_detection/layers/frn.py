"""Filter Response Normalization with its Thresholded Linear Unit (Singh & Krishnan, 2020):
per sample and channel, no batch and no mean.

    nu2 = mean over H, W (and T) of x^2;  y = gamma * x / sqrt(nu2 + eps) + beta;  z = max(y, tau)

TLU replaces the ReLU that would follow (see Conv2d); without an activation to replace it the
layer stops at y.
"""
import torch
import torch.nn as nn

from .norm import NORM_REGISTRY

__all__ = ["FilterResponseNorm"]


@NORM_REGISTRY.register_as("FRN")
class FilterResponseNorm(nn.Module):
    """FRN + TLU for (N, C, H, W) and (N, C, T, H, W). ``nu2`` is computed in fp32: in fp16 the mean of x^2
    overflows once |x| passes about 256."""

    carries_activation = True

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.apply_activation = True
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.tau = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        per_channel = (1, -1) + (1,) * (x.dim() - 2)
        xf = x.float()
        nu2 = xf.pow(2).mean(dim=tuple(range(2, x.dim())), keepdim=True)
        y = xf * torch.rsqrt(nu2 + self.eps) * self.weight.view(per_channel) + self.bias.view(per_channel)
        if self.apply_activation:
            y = torch.maximum(y, self.tau.view(per_channel))
        return y.to(x.dtype)
