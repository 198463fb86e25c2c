"""Writing files so that a reader, or a run killed mid-write, never sees half of one."""
import json
import os
import tempfile
from typing import Any, BinaryIO, Callable

from .errors import UserError

__all__ = ["atomic_write", "atomic_write_json", "check_writable_folder"]


def atomic_write(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it over ``path``.

    The rename is atomic on POSIX: readers see the old file or the new one. The parent folder is
    created; the file gets the permissions a plain ``open`` would give it.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes the file private (0600)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_json(path: str, data: Any) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(data).encode("utf-8")))


def check_writable_folder(folder: str, what: str) -> None:
    """Create ``folder`` if needed and make sure a file can be written in it, before any work
    whose results would go there; ``what`` names it in the error (e.g. "OUTPUT_DIR")."""
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UserError(f"{what}={folder}: cannot write there ({e.strerror or e}); choose a writable folder") from None
