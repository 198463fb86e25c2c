"""Reading and writing weight files: atomically, and without running code from them."""
import codecs
import collections
import os
import pickle
from typing import Any, Callable, Dict, Tuple

import numpy as np
import torch

from ..utils.errors import UserError
from ..utils.file_io import atomic_write

try:  # numpy >= 2 moved its internals to numpy._core; numpy.core is a warning shim there
    from numpy._core import multiarray as _np_multiarray
    from numpy._core import numeric as _np_numeric
except ImportError:  # numpy 1.x
    from numpy.core import multiarray as _np_multiarray
    from numpy.core import numeric as _np_numeric

__all__ = [
    "atomic_save",
    "atomic_write_text",
    "load_pickle_file",
    "load_torch_file",
    "load_weights_file",
]


def atomic_save(obj: Any, path: str) -> None:
    """torch.save to a temporary file beside ``path``, then rename it over ``path``."""
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(text: str, path: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


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
        raise UserError(f"{path}: not a torch weights file that can be loaded safely ({e})") from None


def _latin1_encode(text: str, encoding: str, errors: str = "strict") -> bytes:
    """``_codecs.encode`` as pickles of ``bytes`` at protocol < 3 call it, and only that way.

    Python 3 pickles ``b"..."`` at protocols 0-2 as ``_codecs.encode("...", "latin1")``; any
    other codec (zlib, rot13, ...) is not needed for data and is refused.
    """
    if not isinstance(encoding, str) or encoding.replace("_", "-").lower() not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}; only latin1 is allowed")
    return codecs.encode(text, encoding, errors)


def _allowed_globals() -> Dict[Tuple[str, str], Callable]:
    """Every ``(module, name)`` a pickle of numpy arrays, numpy scalars and plain containers uses.

    Found by pickling arrays of every non-object dtype and 0-d scalars with protocols 0, 2, 4
    and 5, under numpy 1.x names (``numpy.core``, also what Python 2 wrote) and 2.x names
    (``numpy._core``). Protocols 0-2 spell ``builtins`` as ``__builtin__``. Each name maps to
    the object itself, so nothing is imported by the name a file gives.
    """
    allowed: Dict[Tuple[str, str], Callable] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("_codecs", "encode"): _latin1_encode,
    }
    for core in ("numpy.core", "numpy._core"):
        allowed[(f"{core}.multiarray", "_reconstruct")] = _np_multiarray._reconstruct
        allowed[(f"{core}.multiarray", "scalar")] = _np_multiarray.scalar
        allowed[(f"{core}.numeric", "_frombuffer")] = _np_numeric._frombuffer  # protocol 5
    for builtins_module in ("builtins", "__builtin__"):
        for container in (set, frozenset, bytes, bytearray, complex):
            allowed[(builtins_module, container.__name__)] = container
    return allowed


_ALLOWED_GLOBALS = _allowed_globals()


class _RefusedGlobal(ValueError):
    """A pickle named a global outside ``_ALLOWED_GLOBALS``; the message names file and global."""


class _WeightsUnpickler(pickle.Unpickler):
    """Builds numpy arrays, numpy scalars and plain containers; refuses every other global.

    A pickle runs code only through the globals it names (``os.system``, ``builtins.eval``,
    any class whose ``__setstate__`` does work), so refusing them here, before they are
    looked up, means nothing from the file runs.
    """

    def __init__(self, file, path: str):
        # latin1: Python 2 pickles (Detectron's) store array bytes as ``str``; latin1 maps
        # them 1:1 to code points and numpy encodes them back to the same bytes.
        super().__init__(file, encoding="latin1")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _RefusedGlobal(
                f"{self._path}: refused to load global '{module}.{name}': a weights pickle may "
                "only hold numpy arrays, numpy scalars and plain containers"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError(f"persistent id {pid!r}; weights pickles have none")


def load_pickle_file(path: str) -> Any:
    """Load a Detectron/detectron2 ``.pkl`` (Python 2 or 3) without running code from it.

    Only numpy arrays, numpy scalars, builtin containers and ``collections.OrderedDict`` are
    built (see ``_allowed_globals``); unlike ``pickle.load`` this is safe on untrusted files.

    Args:
        path: the pickle file, e.g. ``{"blobs": {name: ndarray}}`` from Detectron or
            ``{"model": {name: ndarray}, "__author__": ...}`` from detectron2.

    Returns:
        The unpickled object. Python 2 byte strings arrive as latin1-decoded ``str``.

    Raises:
        FileNotFoundError: naming the path.
        ValueError: naming the path and the refused ``module.name``, or saying the file is
            truncated or not a pickle.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such weights file")
    with open(path, "rb") as f:
        try:
            return _WeightsUnpickler(f, path).load()
        except _RefusedGlobal:
            raise
        except Exception as e:  # UnpicklingError, EOFError (truncated), TypeError, ...
            raise UserError(f"{path}: not a weights pickle that can be loaded safely ({e!r})") from None


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save since 1.6 writes a zip archive
# torch's legacy (pre-1.6) format opens with a protocol-2 pickle of this integer (LONG1, 10 bytes)
_TORCH_LEGACY_MAGIC = b"\x8a\x0a" + torch.serialization.MAGIC_NUMBER.to_bytes(10, "little")
_PICKLE_PROTO_OPCODE = b"\x80"  # protocols >= 2 start with PROTO
_PICKLE_V0_V1_STARTS = (b"(", b"c", b"}")  # MARK (dict/list/tuple), GLOBAL, EMPTY_DICT
_HEADER_BYTES = 32


def load_weights_file(path: str) -> Any:
    """Load a torch file or a weights pickle, telling them apart by content, not by name.

    torch files (zip, or the legacy format) go to ``load_torch_file`` (``weights_only=True``);
    other pickles go to ``load_pickle_file``. Neither path runs code from the file.

    Raises:
        FileNotFoundError: naming the path.
        ValueError: naming the path, if the file is neither format or holds more than weights.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such weights file")
    with open(path, "rb") as f:
        head = f.read(_HEADER_BYTES)
    if head.startswith(_ZIP_MAGIC) or _TORCH_LEGACY_MAGIC in head:
        return load_torch_file(path)
    if head.startswith(_PICKLE_PROTO_OPCODE) or head[:1] in _PICKLE_V0_V1_STARTS:
        return load_pickle_file(path)
    raise UserError(
        f"{path}: neither a torch file (zip or legacy) nor a pickle; it starts with {head[:8]!r}"
    )
