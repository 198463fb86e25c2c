"""EvoNorm-S0 (Liu et al., "Evolving Normalization-Activation Layers", 2020): a normalization
and activation in one layer, from per-sample group statistics only.

    y = x * sigmoid(v * x) / sqrt(var_group(x) + eps) * gamma + beta

The swish-like numerator replaces the ReLU that would follow (see Conv2d); without an activation
to replace it computes ``x / sqrt(var_group(x) + eps) * gamma + beta``.
"""
import torch
import torch.nn as nn

from ..utils.errors import UserError
from .norm import NORM_REGISTRY

__all__ = ["EvoNormS0"]


@NORM_REGISTRY.register_as("EvoNormS0")
class EvoNormS0(nn.Module):
    """EvoNorm-S0 for (N, C, H, W), channels first like every registered norm; the group count
    and epsilon are GN's (MODEL.GROUP_NORM), since both normalize by group statistics. The
    statistics are computed in fp32 under bf16/fp16."""

    carries_activation = True

    def __init__(self, num_channels: int, num_groups: int = 32, eps: float = 1e-5):
        super().__init__()
        if num_groups <= 0 or num_channels % num_groups:
            raise UserError(
                f"EvoNormS0: MODEL.GROUP_NORM.NUM_GROUPS={num_groups} does not divide the {num_channels} channels"
            )
        self.num_groups, self.eps = num_groups, eps
        self.apply_activation = True
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.v = nn.Parameter(torch.ones(num_channels))

    @classmethod
    def from_config(cls, cfg) -> dict:
        return dict(num_groups=cfg.MODEL.GROUP_NORM.NUM_GROUPS, eps=cfg.MODEL.GROUP_NORM.EPSILON)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        xf = x.float()
        # the group size spelled out: -1 is ambiguous for a batch of zero RoIs (an image with no instance)
        group_size = c // self.num_groups * h * w
        var = xf.reshape(n, self.num_groups, group_size).var(dim=2, unbiased=False, keepdim=True)
        std = (var + self.eps).sqrt().expand(n, self.num_groups, group_size).reshape(n, c, h, w)
        numerator = xf * torch.sigmoid(self.v.view(1, -1, 1, 1) * xf) if self.apply_activation else xf
        y = numerator / std * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y.to(x.dtype)
