"""EvoNorm-S0 (Liu et al., "Evolving Normalization-Activation Layers", 2020): a normalization
and activation in one layer, from per-sample group statistics only.

    y = x * sigmoid(v * x) / sqrt(var_group(x) + eps) * gamma + beta

The swish-like numerator replaces the ReLU that would follow (see Conv2d); without an activation
to replace it computes ``x / sqrt(var_group(x) + eps) * gamma + beta``.
"""
import math
from typing import Optional

import torch
import torch.nn as nn

from .norm import NORM_REGISTRY, group_count, group_norm_settings

__all__ = ["EvoNormS0"]


@NORM_REGISTRY.register_as("EvoNormS0")
class EvoNormS0(nn.Module):
    """EvoNorm-S0 for (N, C, H, W) and (N, C, T, H, W), channels first like every registered norm; the group count
    and epsilon are GN's (MODEL.GROUP_NORM, NUM_GROUPS or DIM_PER_GP), since both normalize by group statistics. The
    statistics are computed in fp32 under bf16/fp16."""

    carries_activation = True

    def __init__(self, num_channels: int, num_groups: Optional[int] = 32, eps: float = 1e-5, *,
                 channels_per_group: Optional[int] = None):
        super().__init__()
        self.num_groups = group_count("EvoNormS0", num_channels, num_groups, channels_per_group)
        self.eps = eps
        self.apply_activation = True
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.v = nn.Parameter(torch.ones(num_channels))

    @classmethod
    def from_config(cls, cfg) -> dict:
        return group_norm_settings(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        per_channel = (1, -1) + (1,) * (x.dim() - 2)
        xf = x.float()
        # the group size spelled out: -1 is ambiguous for a batch of zero RoIs (an image with no instance)
        group_size = c // self.num_groups * math.prod(x.shape[2:])
        var = xf.reshape(n, self.num_groups, group_size).var(dim=2, unbiased=False, keepdim=True)
        std = (var + self.eps).sqrt().expand(n, self.num_groups, group_size).reshape(x.shape)
        numerator = xf * torch.sigmoid(self.v.view(per_channel) * xf) if self.apply_activation else xf
        y = numerator / std * self.weight.view(per_channel) + self.bias.view(per_channel)
        return y.to(x.dtype)
