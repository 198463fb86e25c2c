"""An exported model that takes image files: ONNX through onnxruntime (no torch needed), or a
torch.export program. The image is read as training read it, with the DICOM window and input
format stored in the export's ``deploy.json``."""
import json
import os
from typing import Dict, Tuple

import numpy as np

from ..data.dicom import DicomReadOptions, DicomWindow
from ..data.image_io import read_image, to_rgb
from ..utils.errors import UserError
from .transforms import resize_image, to_image_pixels

__all__ = ["DEPLOY_FILE", "MIN_INPUT_SIDE", "MODEL_FILES", "ExportedPredictor"]

DEPLOY_FILE = "deploy.json"
MODEL_FILES = {"onnx": "model.onnx", "pt2": "model.pt2"}
# The smallest side of a resized image the graph takes: below it a feature level of the padded
# image would be one cell high or wide, which torch.export specializes on and cannot cover. Only
# images more elongated than MAX_SIZE_TEST : 65 resize below it (20 : 1 with COCO's 800/1333).
MIN_INPUT_SIDE = 65


class ExportedPredictor:
    """``predictor(path)`` returns the image as RGB uint8 (H, W, 3) for drawing and its detections
    in its pixels: ``boxes`` (D, 4) XYXY, ``scores`` (D,), ``labels`` (D,) in 1..K and ``masks``
    (D, H, W) probabilities, by decreasing score.

    Args:
        model_dir: a folder written by ``gn-detect export``.
        threads: onnxruntime's intra-op threads (0: its default, all cores).
    """

    def __init__(self, model_dir: str, threads: int = 0):
        deploy_file = os.path.join(model_dir, DEPLOY_FILE)
        if not os.path.isfile(deploy_file):
            raise FileNotFoundError(f"{deploy_file}: no such file; --model must be a folder written by gn-detect export")
        with open(deploy_file) as f:
            self.metadata = json.load(f)
        self.input = self.metadata["input"]
        window = self.input["dicom"]
        self.dicom = DicomReadOptions(
            window=DicomWindow(mode=window["mode"], center=window["center"], width=window["width"],
                               percentiles=tuple(window["percentiles"])),
            frame=window["frame"],
        )
        self.class_names = self.metadata["classes"]
        self._run = _load_graph(os.path.join(model_dir, MODEL_FILES[self.metadata["format"]]), self.metadata["format"],
                                threads)

    def read(self, path: str) -> np.ndarray:
        """(H, W, C) float32 0-255 in the model's INPUT.FORMAT, as the test mapper reads it."""
        return read_image(path, self.input["format"], self.dicom)

    def __call__(self, path: str) -> Tuple[np.ndarray, Dict[str, np.ndarray]]:
        image = self.read(path)
        return to_rgb(image, self.input["format"]), self.predict(image)

    def predict(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        """Detections on an (H, W, C) float image as ``read`` returns it."""
        style = self.input["resize_style"]
        resized = resize_image(image, min_size=self.input["min_size"], max_size=self.input["max_size"], style=style)
        if min(resized.shape[:2]) < MIN_INPUT_SIDE:
            raise UserError(
                f"a {image.shape[1]}x{image.shape[0]} image resizes to {resized.shape[1]}x{resized.shape[0]}, below the "
                f"exported graph's smallest side of {MIN_INPUT_SIDE} px; crop it, or use the eager model (gn-detect visualize)"
            )
        graph_input = np.ascontiguousarray(resized.transpose(2, 0, 1)[None], dtype=np.float32)
        boxes, scores, labels, masks = self._run(graph_input)
        detections = dict(boxes=boxes, scores=scores, labels=labels.astype(np.int64), masks=masks)
        return to_image_pixels(detections, resized.shape[:2], image.shape[:2], style)


def _load_graph(path: str, format: str, threads: int):
    """A function from the (1, C, h, w) input to the graph's four outputs as NumPy arrays."""
    if format == "onnx":
        try:
            import onnxruntime
        except ImportError:
            raise UserError(f"{path}: running an ONNX model needs onnxruntime: pip install gn_detection[export]") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda image: session.run(None, {name: image})
    import torch  # a torch.export program needs torch

    program = torch.export.load(path).module()

    def run(image: np.ndarray):
        with torch.no_grad():
            return [t.numpy() for t in program(torch.from_numpy(image))]

    return run
