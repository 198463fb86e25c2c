from ...layers import ShapeSpec
from ...utils.registry import Registry, lookup

__all__ = ["BOX_HEAD_REGISTRY", "MASK_HEAD_REGISTRY", "build_box_head", "build_mask_head"]

_CONTRACT = """
An entry is a class with ``from_config(cfg, input_shape) -> dict`` of constructor keyword
arguments and ``output_shape() -> ShapeSpec``; ``input_shape`` is the ShapeSpec of the pooled
RoI features (C, h, w).
"""
BOX_HEAD_REGISTRY = Registry("ROI_BOX_HEAD")
BOX_HEAD_REGISTRY.__doc__ = "Box heads by ``MODEL.ROI_BOX_HEAD.NAME``: (R, C, h, w) -> (R, D)." + _CONTRACT
MASK_HEAD_REGISTRY = Registry("ROI_MASK_HEAD")
MASK_HEAD_REGISTRY.__doc__ = (
    "Mask heads by ``MODEL.ROI_MASK_HEAD.NAME``: (R, C, h, w) -> (R, C', h', w') features." + _CONTRACT
)


def build_box_head(cfg, input_shape: ShapeSpec):
    cls = lookup(BOX_HEAD_REGISTRY, cfg.MODEL.ROI_BOX_HEAD.NAME, "MODEL.ROI_BOX_HEAD.NAME")
    return cls(**cls.from_config(cfg, input_shape))


def build_mask_head(cfg, input_shape: ShapeSpec):
    cls = lookup(MASK_HEAD_REGISTRY, cfg.MODEL.ROI_MASK_HEAD.NAME, "MODEL.ROI_MASK_HEAD.NAME")
    return cls(**cls.from_config(cfg, input_shape))
