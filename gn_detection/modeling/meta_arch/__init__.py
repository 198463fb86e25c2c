from .build import META_ARCH_REGISTRY, build_model
from .mask_rcnn import MaskRCNN
from .transform import ResizeNormalize, build_transform

__all__ = ["META_ARCH_REGISTRY", "MaskRCNN", "ResizeNormalize", "build_model", "build_transform"]
