"""detectron2's DetectionCheckpointer, loading every format gn_detection loads."""
from typing import Optional

from detectron2.checkpoint import DetectionCheckpointer

from ..checkpoint import InputConvention
from ..checkpoint.export import to_detectron2
from ..checkpoint.io import load_weights_file
from ..checkpoint.weights import convert_weights

__all__ = ["GNDetectionCheckpointer"]


class GNDetectionCheckpointer(DetectionCheckpointer):
    """Loads Detectron .pkl, timm and torchvision ResNets and gn_detection checkpoints into a
    detectron2 model, converted as gn_detection converts them (the stem adapted to
    ``INPUT.FORMAT``, folded into one channel for "L"), then renamed to detectron2's names.
    detectron2's own files (its model zoo and its trainer's checkpoints, which ``resume`` needs
    whole) load as detectron2 loads them. Every file is read without running code from it.

    Args:
        input: the model's input (``InputConvention.from_config(cfg)``); None leaves the stem.
        other arguments: DetectionCheckpointer's.
    """

    def __init__(self, model, save_dir: str = "", *, input: Optional[InputConvention] = None, **kwargs):
        super().__init__(model, save_dir, **kwargs)
        self.input = input

    def _load_file(self, filename: str) -> dict:
        obj = load_weights_file(filename)
        if isinstance(obj, dict) and "model" in obj and obj.get("format") != "gn_detection":
            if "__author__" in obj or "iteration" in obj:  # detectron2's model zoo, or its trainer
                return obj if filename.endswith(".pkl") else dict(obj, matching_heuristics=False)
        tensors, report, _ = convert_weights(filename, input=self.input)
        self.logger.info("converted %s\n%s", filename, report.summary())
        return {"model": to_detectron2(tensors), "__author__": "gn_detection", "matching_heuristics": False}
