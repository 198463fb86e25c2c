"""FROC as a detectron2 DatasetEvaluator, to run beside its COCOEvaluator."""
import json
from typing import Dict, List

from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from ..evaluation.froc import froc

__all__ = ["FROCEvaluator"]


class FROCEvaluator(DatasetEvaluator):
    """Sensitivity at 1/8 ... 8 false positives per image, and recall per image
    (gn_detection.evaluation.froc), over a COCO-format dataset registered in detectron2
    (``MetadataCatalog.get(name).json_file``). ``evaluate()`` returns ``{"froc": {...}}``.
    """

    def __init__(self, dataset_name: str):
        meta = MetadataCatalog.get(dataset_name)
        with open(meta.json_file) as f:
            self._ground_truth = json.load(f)["annotations"]
        contiguous = getattr(meta, "thing_dataset_id_to_contiguous_id", None) or {}
        self._dataset_id = {label: dataset_id for dataset_id, label in contiguous.items()}
        self.reset()

    def reset(self) -> None:
        self._detections: List[dict] = []
        self._image_ids: List[int] = []

    def process(self, inputs, outputs) -> None:
        for inp, out in zip(inputs, outputs):
            self._image_ids.append(inp["image_id"])
            instances = out["instances"].to("cpu")
            boxes = instances.pred_boxes.tensor.clone()
            boxes[:, 2:] -= boxes[:, :2]
            for box, score, label in zip(boxes.tolist(), instances.scores.tolist(), instances.pred_classes.tolist()):
                category = self._dataset_id.get(label, label)
                self._detections.append(dict(image_id=inp["image_id"], category_id=category, bbox=box, score=score))

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        detections = [d for part in comm.gather(self._detections) for d in part]
        image_ids = [i for part in comm.gather(self._image_ids) for i in part]
        if not comm.is_main_process():
            return {}
        return {"froc": froc(detections, self._ground_truth, image_ids)}
