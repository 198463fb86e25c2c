from .blocks import CNNBlockBase
from .conv import CONV_REGISTRY, Conv2d, WSConv2d, conv_from_cfg
from .evonorm import EvoNormS0
from .frn import FilterResponseNorm
from .norm import (
    NORM_REGISTRY,
    FrozenBatchNorm2d,
    GroupNorm,
    NormSpec,
    convert_frozen_batchnorm,
    get_norm,
    is_norm,
    norm_from_cfg,
)
from .roi_align import roi_align
from .shape_spec import ShapeSpec

__all__ = [
    "CNNBlockBase",
    "CONV_REGISTRY",
    "Conv2d",
    "EvoNormS0",
    "FilterResponseNorm",
    "FrozenBatchNorm2d",
    "NORM_REGISTRY",
    "GroupNorm",
    "NormSpec",
    "ShapeSpec",
    "WSConv2d",
    "conv_from_cfg",
    "convert_frozen_batchnorm",
    "get_norm",
    "is_norm",
    "norm_from_cfg",
    "roi_align",
]
