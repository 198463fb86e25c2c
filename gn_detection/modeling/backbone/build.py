from typing import Optional

from ...layers import ShapeSpec
from ...utils.registry import Registry, lookup
from .backbone import Backbone

__all__ = ["BACKBONE_REGISTRY", "build_backbone"]

BACKBONE_REGISTRY = Registry("BACKBONE")
BACKBONE_REGISTRY.__doc__ = """
Backbones by ``MODEL.BACKBONE.NAME``. An entry is called as ``entry(cfg, input_shape)``, where
``input_shape`` is a ShapeSpec of the image channels, and returns a ``Backbone``.
"""


def build_backbone(cfg, input_shape: Optional[ShapeSpec] = None) -> Backbone:
    """Build the backbone named by ``MODEL.BACKBONE.NAME``; the input has one channel per
    ``MODEL.PIXEL_MEAN`` entry unless ``input_shape`` says otherwise."""
    if input_shape is None:
        input_shape = ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN))
    builder = lookup(BACKBONE_REGISTRY, cfg.MODEL.BACKBONE.NAME, "MODEL.BACKBONE.NAME")
    backbone = builder(cfg, input_shape)
    if not isinstance(backbone, Backbone):
        raise TypeError(
            f"MODEL.BACKBONE.NAME={cfg.MODEL.BACKBONE.NAME!r} returned a "
            f"{type(backbone).__name__}; backbone builders must return a Backbone"
        )
    return backbone
