"""Mask R-CNN with Group Normalization (Wu & He, ECCV 2018)."""
from .config import get_cfg
from .layers import NORM_REGISTRY, get_norm
from .modeling import BACKBONE_REGISTRY, BOX_HEAD_REGISTRY, MASK_HEAD_REGISTRY, META_ARCH_REGISTRY, build_model

__version__ = "0.1.0"

__all__ = [
    "BACKBONE_REGISTRY",
    "BOX_HEAD_REGISTRY",
    "MASK_HEAD_REGISTRY",
    "META_ARCH_REGISTRY",
    "NORM_REGISTRY",
    "build_model",
    "get_cfg",
    "get_norm",
]
