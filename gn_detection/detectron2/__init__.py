"""gn_detection inside detectron2's own trainer: its norms (GN with any group count and epsilon,
and every norm in NORM_REGISTRY), DICOM / 16-bit / gray reading, FROC, and the weight
conversions, registered into detectron2's registries as its ``projects/`` do.

    from detectron2.config import get_cfg
    from gn_detection.detectron2 import add_gn_detection_config   # registers the parts

    cfg = get_cfg(); add_gn_detection_config(cfg); cfg.merge_from_file("configs/detectron2/...yaml")

Importable only where detectron2 is installed. An application beside the core: nothing in the
core imports it.
"""
try:
    import detectron2  # noqa: F401
except ImportError as e:
    raise ImportError(
        "gn_detection.detectron2 needs detectron2, which is not on the package index: install it from "
        "source, pip install 'git+https://github.com/facebookresearch/detectron2.git', or a wheel built "
        "for your torch (see detectron2's INSTALL.md)"
    ) from e

from .checkpoint import GNDetectionCheckpointer
from .config import add_gn_detection_config
from .data import GNDatasetMapper
from .datasets import register_datasets
from .engine import GNTrainer
from .evaluation import FROCEvaluator
from .modeling import GNFastRCNNConvFCHead, GNMaskRCNNConvUpsampleHead, build_gn_resnet_fpn_backbone

__all__ = [
    "FROCEvaluator",
    "GNDatasetMapper",
    "GNDetectionCheckpointer",
    "GNFastRCNNConvFCHead",
    "GNMaskRCNNConvUpsampleHead",
    "GNTrainer",
    "add_gn_detection_config",
    "build_gn_resnet_fpn_backbone",
    "register_datasets",
]
