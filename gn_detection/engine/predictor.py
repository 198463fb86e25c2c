"""A trained model that takes image files, for drawing and quick checks."""
from typing import Dict, Tuple

import numpy as np
import torch

from ..checkpoint import InputConvention, load_weights
from ..data.image_io import to_rgb
from ..data.mapper import DatasetMapper
from ..modeling import build_model

__all__ = ["Predictor"]


class Predictor:
    """``predictor(path)`` returns the image as RGB uint8 (H, W, 3) for drawing and the model's
    detections in its pixels. The file is read once, by the test mapper, as evaluation reads it.

    Args:
        cfg: the config the model was trained with (INPUT.FORMAT and INPUT.DICOM decide what it
            sees).
        weights: any weights MODEL.WEIGHTS accepts (a file of any supported format, a URL or a
            short name); the load report is logged.
    """

    def __init__(self, cfg, weights: str):
        self.model = build_model(cfg).eval()
        load_weights(self.model, weights, input=InputConvention.from_config(cfg))
        self.mapper = DatasetMapper(**DatasetMapper.from_config(cfg, is_train=False))
        self.device = torch.device(cfg.MODEL.DEVICE)

    def __call__(self, path: str) -> Tuple[np.ndarray, Dict[str, torch.Tensor]]:
        image = self.mapper.read(path)
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(self.device)
        with torch.no_grad():
            (detections,) = self.model([tensor])
        return to_rgb(image, self.mapper.image_format), {k: v.cpu() for k, v in detections.items()}
