"""Model parts. Importing this registers every built-in backbone, head and meta-architecture."""
from .backbone import BACKBONE_REGISTRY, Backbone, build_backbone
from .heads import BOX_HEAD_REGISTRY, MASK_HEAD_REGISTRY, build_box_head, build_mask_head
from .meta_arch import META_ARCH_REGISTRY, MaskRCNN, build_model
from .poolers import ROIPooler

__all__ = [
    "BACKBONE_REGISTRY",
    "BOX_HEAD_REGISTRY",
    "MASK_HEAD_REGISTRY",
    "META_ARCH_REGISTRY",
    "Backbone",
    "MaskRCNN",
    "ROIPooler",
    "build_backbone",
    "build_box_head",
    "build_mask_head",
    "build_model",
]
