from .batch_renorm import BatchRenorm
from .blocks import CNNBlockBase
from .conv import CONV_REGISTRY, Conv2d, Conv3d, WSConv2d, WSConv3d, conv_from_cfg, inflate_conv
from .evonorm import EvoNormS0
from .frn import FilterResponseNorm
from .norm import (
    NORM_REGISTRY,
    BatchNorm,
    FrozenBatchNorm2d,
    GroupNorm,
    InstanceNorm,
    LayerNorm,
    NormSpec,
    convert_frozen_batchnorm,
    get_norm,
    is_norm,
    group_norm_settings,
    norm_from_cfg,
)
from .roi_align import roi_align
from .shape_spec import ShapeSpec

__all__ = [
    "BatchNorm",
    "BatchRenorm",
    "CNNBlockBase",
    "CONV_REGISTRY",
    "Conv2d",
    "Conv3d",
    "EvoNormS0",
    "FilterResponseNorm",
    "FrozenBatchNorm2d",
    "NORM_REGISTRY",
    "GroupNorm",
    "InstanceNorm",
    "LayerNorm",
    "NormSpec",
    "ShapeSpec",
    "WSConv2d",
    "WSConv3d",
    "conv_from_cfg",
    "convert_frozen_batchnorm",
    "get_norm",
    "group_norm_settings",
    "inflate_conv",
    "is_norm",
    "norm_from_cfg",
    "roi_align",
]
