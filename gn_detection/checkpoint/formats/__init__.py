"""One module of data per source format; ``FORMATS`` lists them by name."""
from .detectron import DETECTRON
from .detectron2 import DETECTRON2
from .torchvision import TIMM, TORCHVISION

FORMATS = {f.name: f for f in (DETECTRON, DETECTRON2, TORCHVISION, TIMM)}

__all__ = ["FORMATS", "DETECTRON", "DETECTRON2", "TORCHVISION", "TIMM"]
