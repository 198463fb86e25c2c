from .blocks import CNNBlockBase
from .conv import Conv2d
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
    "Conv2d",
    "FrozenBatchNorm2d",
    "NORM_REGISTRY",
    "GroupNorm",
    "NormSpec",
    "ShapeSpec",
    "convert_frozen_batchnorm",
    "get_norm",
    "is_norm",
    "norm_from_cfg",
    "roi_align",
]
