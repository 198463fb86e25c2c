"""Mask R-CNN with Group Normalization (Wu & He, ECCV 2018)."""
import importlib
import warnings

# torchvision scripts a few helpers when imported and torch 2.14 deprecates torch.jit.script: a
# warning users can do nothing about, printed by every command.
warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)

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

# Imported when first used, so that ``gn_detection.deploy`` (the exported-model predictor) runs
# where torch is not installed.
_LAZY = {
    "get_cfg": ".config",
    "NORM_REGISTRY": ".layers",
    "get_norm": ".layers",
    **dict.fromkeys(
        ("BACKBONE_REGISTRY", "BOX_HEAD_REGISTRY", "MASK_HEAD_REGISTRY", "META_ARCH_REGISTRY", "build_model"), ".modeling"
    ),
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
