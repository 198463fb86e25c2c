"""Exporting a trained model for deployment: the graph (``DetectorGraph``) as ONNX or a
torch.export program, with what runs outside it described in ``deploy.json``."""
from .exporter import EXPORT_FORMATS, export_model
from .graph import DetectorGraph

__all__ = ["DetectorGraph", "EXPORT_FORMATS", "export_model"]
