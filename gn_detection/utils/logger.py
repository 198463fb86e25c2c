import logging
import os
import sys
from typing import Optional

__all__ = ["setup_logging"]

FORMAT = "[%(asctime)s %(name)s] %(message)s"


def setup_logging(output_dir: Optional[str] = None, rank: int = 0) -> None:
    """Log gn_detection's messages to the console (INFO on the main process, WARNING on others)
    and, on the main process, to ``<output_dir>/log.txt``."""
    root = logging.getLogger("gn_detection")
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(logging.INFO if rank == 0 else logging.WARNING)
    console.setFormatter(logging.Formatter(FORMAT, datefmt="%H:%M:%S"))
    root.addHandler(console)
    if output_dir and rank == 0:
        os.makedirs(output_dir, exist_ok=True)
        file_handler = logging.FileHandler(os.path.join(output_dir, "log.txt"))
        file_handler.setFormatter(logging.Formatter(FORMAT, datefmt="%Y-%m-%d %H:%M:%S"))
        root.addHandler(file_handler)
