from .checkpointer import Checkpointer
from .export import export_to_detectron2_file, to_detectron2
from .io import atomic_save, atomic_write_text, load_pickle_file, load_torch_file, load_weights_file
from .rename import ConversionReport, Format, InputConvention, convert
from .weights import convert_checkpoint_file, convert_weights, load_weights, resolve_weights_path

__all__ = [
    "Checkpointer",
    "ConversionReport",
    "Format",
    "InputConvention",
    "atomic_save",
    "atomic_write_text",
    "convert",
    "convert_checkpoint_file",
    "convert_weights",
    "export_to_detectron2_file",
    "load_pickle_file",
    "load_torch_file",
    "load_weights",
    "load_weights_file",
    "resolve_weights_path",
    "to_detectron2",
]
