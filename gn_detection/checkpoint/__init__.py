from .checkpointer import Checkpointer
from .io import atomic_save, atomic_write_text, load_torch_file

__all__ = ["Checkpointer", "atomic_save", "atomic_write_text", "load_torch_file"]
