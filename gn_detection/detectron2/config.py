"""The keys gn_detection adds to a detectron2 config."""
from detectron2.config import CfgNode

from ..config import get_cfg

__all__ = ["add_gn_detection_config"]


def add_gn_detection_config(cfg: CfgNode) -> None:
    """Add, with gn_detection's defaults:

    - ``MODEL.GROUP_NORM.NUM_GROUPS`` (32), ``DIM_PER_GP`` (-1) and ``EPSILON`` (1e-5): every
      "GN" of the plugin's backbone and heads (detectron2's own "GN" is fixed at 32 groups), and
      the epsilon of its "LN" and "IN";
    - ``MODEL.BATCH_RENORM.R_MAX`` (1.5) and ``D_MAX`` (0.5): every "BRN";
    - ``INPUT.DICOM.*``: how the plugin's mapper windows DICOM files (see gn_detection's
      defaults.py);
    - ``TEST.FROC``: ``GNTrainer`` adds ``FROCEvaluator`` beside ``COCOEvaluator``;
    - ``DATASETS.COCO_INSTANCES``: ``[[name, instances json, image folder], ...]``, registered in
      detectron2's catalogs by ``register_datasets``.
    """
    ours = get_cfg()
    cfg.MODEL.GROUP_NORM = CfgNode(ours.MODEL.GROUP_NORM)
    cfg.MODEL.BATCH_RENORM = CfgNode(ours.MODEL.BATCH_RENORM)
    cfg.INPUT.DICOM = CfgNode(ours.INPUT.DICOM)
    cfg.TEST.FROC = False
    cfg.DATASETS.COCO_INSTANCES = []
