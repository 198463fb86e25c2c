"""Mask R-CNN with Group Normalization (Wu & He, ECCV 2018)."""
import warnings

# torchvision scripts a few helpers when imported and torch 2.14 deprecates torch.jit.script: a
# warning users can do nothing about, printed by every command.
warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)

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
