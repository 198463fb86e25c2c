"""detectron2's DefaultTrainer with the plugin's mapper, evaluators and checkpointer."""
import os
import weakref

from detectron2.data import build_detection_test_loader, build_detection_train_loader
from detectron2.engine import DefaultTrainer
from detectron2.evaluation import COCOEvaluator, DatasetEvaluators

from ..checkpoint import InputConvention
from .checkpoint import GNDetectionCheckpointer
from .data import GNDatasetMapper
from .evaluation import FROCEvaluator

__all__ = ["GNTrainer"]


class GNTrainer(DefaultTrainer):
    """DefaultTrainer that reads data with ``GNDatasetMapper``, evaluates COCO AP (and FROC with
    ``TEST.FROC``), and loads any weights gn_detection loads (``GNDetectionCheckpointer``)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.checkpointer = GNDetectionCheckpointer(
            self._trainer.model, cfg.OUTPUT_DIR, input=InputConvention.from_config(cfg), trainer=weakref.proxy(self)
        )

    @classmethod
    def build_train_loader(cls, cfg):
        return build_detection_train_loader(cfg, mapper=GNDatasetMapper(cfg, is_train=True))

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(cfg, dataset_name, mapper=GNDatasetMapper(cfg, is_train=False))

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
        evaluators = [COCOEvaluator(dataset_name, output_dir=output_folder)]
        if cfg.TEST.FROC:
            evaluators.append(FROCEvaluator(dataset_name))
        return DatasetEvaluators(evaluators)
