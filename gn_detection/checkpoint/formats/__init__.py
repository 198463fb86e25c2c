"""One module of data per source format; ``FORMATS`` lists them by name, in the order in which
they are tried on a checkpoint of unknown format (gn_detection's names last: detectron2 shares them)."""
from .detectron import DETECTRON
from .detectron2 import DETECTRON2
from .gn_detection import GN_DETECTION
from .torchvision import MMDET, TIMM, TORCHVISION

FORMATS = {f.name: f for f in (DETECTRON, TORCHVISION, MMDET, TIMM, DETECTRON2, GN_DETECTION)}

__all__ = ["FORMATS", "DETECTRON", "DETECTRON2", "GN_DETECTION", "MMDET", "TORCHVISION", "TIMM"]
