from dataclasses import dataclass
from typing import Optional

__all__ = ["ShapeSpec"]


@dataclass(frozen=True)
class ShapeSpec:
    """What a part produces, so the next part is sized from it instead of from a repeated literal.

    Attributes:
        channels: number of channels C.
        height, width: spatial size, where it is fixed (RoI features); None for image features.
        stride: input pixels per feature pixel, for image features.
    """

    channels: Optional[int] = None
    height: Optional[int] = None
    width: Optional[int] = None
    stride: Optional[int] = None
