from typing import Dict, Tuple

import numpy as np
import torch

from ..checkpoint.weights import load_weights
from ..data.image_io import read_image
from ..data.mapper import dicom_window_from_cfg
from ..modeling import build_model

__all__ = ["Predictor", "read_display_image"]


def read_display_image(path: str, cfg) -> np.ndarray:
    """The image as it is drawn: RGB uint8 (H, W, 3), a DICOM windowed as INPUT.DICOM says."""
    image = read_image(path, "RGB", dicom_window_from_cfg(cfg), cfg.INPUT.DICOM.FRAME)
    return np.clip(image, 0, 255).round().astype(np.uint8)


class Predictor:
    """A trained model that takes image files: ``predictor(path)`` returns the image as RGB
    uint8 (H, W, 3) for drawing and the model's detections in its pixels.

    Args:
        cfg: the config the model was trained with (INPUT.FORMAT decides what it sees).
        weights: any weights MODEL.WEIGHTS accepts (a file of any supported format, a URL or a
            short name); the load report is logged.
    """

    def __init__(self, cfg, weights: str):
        self.cfg = cfg
        self.model = build_model(cfg).eval()
        load_weights(self.model, weights, cfg=cfg)
        self.device = torch.device(cfg.MODEL.DEVICE)
        self.read_options = dict(dicom_window=dicom_window_from_cfg(cfg), dicom_frame=cfg.INPUT.DICOM.FRAME)

    def __call__(self, path: str) -> Tuple[np.ndarray, Dict[str, torch.Tensor]]:
        image = read_image(path, self.cfg.INPUT.FORMAT, **self.read_options)
        tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).to(self.device)
        with torch.no_grad():
            (detections,) = self.model([tensor])
        return read_display_image(path, self.cfg), {k: v.cpu() for k, v in detections.items()}
