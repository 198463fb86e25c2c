"""gn_detection names -> detectron2 names: the inverse of formats/detectron2.py, so that a model
trained here can be served by detectron2's tooling. detectron2 puts background last in
cls_score and keeps no background rows in bbox_pred or the mask predictor."""
import re
from typing import Dict, Optional

import torch

from .io import atomic_save
from .rename import ConversionReport, InputConvention
from .weights import convert_weights

__all__ = ["DETECTRON2_EXPORT_RULES", "export_to_detectron2_file", "to_detectron2"]

DETECTRON2_EXPORT_RULES = (
    (r"^rpn\.head\.", "proposal_generator.rpn_head."),
    (r"^roi_heads\.mask_predictor\.mask_fcn_logits\.", "roi_heads.mask_head.predictor."),
)


def to_detectron2(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A gn_detection state dict with detectron2's names and class order. Class-agnostic
    predictors (4 box rows, 1 mask row) have no background row and keep their rows."""
    out = {}
    for key, tensor in state.items():
        for pattern, replacement in DETECTRON2_EXPORT_RULES:
            key = re.sub(pattern, replacement, key)
        if key.startswith("roi_heads.box_predictor.cls_score."):
            tensor = torch.cat([tensor[1:], tensor[:1]])  # background first -> last
        elif key.startswith("roi_heads.box_predictor.bbox_pred.") and tensor.shape[0] > 4:
            tensor = tensor[4:]
        elif key.startswith("roi_heads.mask_head.predictor.") and tensor.shape[0] > 1:
            tensor = tensor[1:]
        out[key] = tensor
    return out


def export_to_detectron2_file(
    source: str, destination: str, *, input: Optional[InputConvention] = None, format: str = "auto"
) -> ConversionReport:
    """Write ``source`` (any format gn_detection loads) as a detectron2 checkpoint (.pth:
    ``{"model": ..., "__author__": "gn_detection", "input": ...}``) that detectron2's
    DetectionCheckpointer loads. The channel order stays the model's (detectron2 reads RGB, BGR and L alike); the
    report's last note gives the INPUT.FORMAT, MODEL.PIXEL_MEAN and MODEL.PIXEL_STD that the
    detectron2 config must set, from ``input`` (the model's config) or the file."""
    tensors, report, convention = convert_weights(source, input=input, format=format)
    convention = convention or input
    payload = {"model": to_detectron2(tensors), "__author__": "gn_detection"}
    if convention is not None:  # detectron2 ignores it; gn_detection reads it back
        payload["input"] = dict(
            format=convention.format, pixel_mean=list(convention.pixel_mean), pixel_std=list(convention.pixel_std)
        )
    atomic_save(payload, destination)
    if convention is not None:
        report.notes.append(
            f"set in the detectron2 config: INPUT.FORMAT {convention.format}, MODEL.PIXEL_MEAN "
            f"{list(convention.pixel_mean)}, MODEL.PIXEL_STD {list(convention.pixel_std)}"
        )
    return report
