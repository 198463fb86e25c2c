"""Reading and writing weight files: atomically, and without running code from them."""
import os
import tempfile
from typing import Any

import torch

__all__ = ["atomic_save", "atomic_write_text", "load_torch_file"]


def _atomic_replace(path: str, write) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX: readers see the old file or the new one
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_save(obj: Any, path: str) -> None:
    """torch.save to a temporary file beside ``path``, then rename it over ``path``."""
    _atomic_replace(path, lambda f: torch.save(obj, f))


def atomic_write_text(text: str, path: str) -> None:
    _atomic_replace(path, lambda f: f.write(text.encode("utf-8")))


def load_torch_file(path: str) -> Any:
    """``torch.load`` with ``weights_only=True``: tensors and plain containers only, no code.

    Raises:
        FileNotFoundError: naming the path.
        ValueError: the file holds objects other than weights, or is not a torch file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError or EOFError here
        raise ValueError(f"{path}: not a torch weights file that can be loaded safely ({e})") from None
