"""``export_model``: a model and its weights -> ``model.onnx`` or ``model.pt2`` and ``deploy.json``
(what the predictor in ``gn_detection.deploy`` needs to read, resize and map back as the eager
model does)."""
import dataclasses
import json
import logging
import os
import time
from typing import Dict, Sequence

import torch

from ..checkpoint import InputConvention, load_weights
from ..data.dicom import DicomReadOptions
from ..deploy.predictor import DEPLOY_FILE, MIN_INPUT_SIDE, MODEL_FILES
from ..modeling import build_model
from ..utils.errors import UserError
from ..utils.file_io import atomic_write
from .graph import DetectorGraph

__all__ = ["EXPORT_FORMATS", "export_model"]

logger = logging.getLogger(__name__)

EXPORT_FORMATS = tuple(MODEL_FILES)
# ONNX's GroupNormalization with one scale and bias per channel, as GN has: opset 21. Older
# opsets' GroupNormalization-18 had them per group, so exporters decompose GN there.
ONNX_OPSET = 21


def export_model(cfg, weights: str, format: str, output_dir: str, class_names: Sequence[str]) -> Dict:
    """Write ``cfg``'s model with ``weights`` to ``output_dir`` as ``format`` (of EXPORT_FORMATS).

    Returns: the model file, its size in bytes and the seconds the export took.
    """
    if format not in EXPORT_FORMATS:
        raise UserError(f"--format {format!r}: expected one of {', '.join(EXPORT_FORMATS)}")
    model = build_model(cfg).eval()
    if weights:
        load_weights(model, weights, input=InputConvention.from_config(cfg))
    graph = DetectorGraph(model)
    # torch.export proves the graph for every image size in this range
    size = (torch.export.Dim("height", min=MIN_INPUT_SIDE, max=8192), torch.export.Dim("width", min=MIN_INPUT_SIDE, max=8192))
    example = torch.rand(1, len(cfg.MODEL.PIXEL_MEAN), cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST) * 255
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, MODEL_FILES[format])
    start = time.perf_counter()
    with torch.no_grad():
        program = torch.export.export(graph, (example,), dynamic_shapes={"image": {2: size[0], 3: size[1]}}, strict=False)
        if format == "pt2":
            atomic_write(path, lambda f: torch.export.save(program, f))
        else:
            onnx_program = torch.onnx.export(program, (example,), dynamo=True, opset_version=ONNX_OPSET,
                                             input_names=["image"], output_names=["boxes", "scores", "labels", "masks"])
            partial = f"{path}.tmp"
            onnx_program.save(partial)
            os.replace(partial, path)
    seconds = time.perf_counter() - start
    dicom = DicomReadOptions.from_config(cfg)
    metadata = dict(
        format=format,
        classes=list(class_names),
        input=dict(
            format=cfg.INPUT.FORMAT, min_size=cfg.INPUT.MIN_SIZE_TEST, max_size=cfg.INPUT.MAX_SIZE_TEST,
            resize_style=cfg.INPUT.RESIZE_STYLE, dicom=dict(dataclasses.asdict(dicom.window), frame=dicom.frame),
        ),
        score_threshold=cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST,
        weights=weights,
    )
    atomic_write(os.path.join(output_dir, DEPLOY_FILE), lambda f: f.write(json.dumps(metadata, indent=1).encode()))
    logger.info("wrote %s (%.1f MB) in %.1f s", path, os.path.getsize(path) / 1e6, seconds)
    return dict(path=path, bytes=os.path.getsize(path), seconds=seconds)
