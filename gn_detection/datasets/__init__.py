"""Making datasets, beside the library: the built-in synthetic sets (shapes, chest X-rays), COCO
JSON from folders of images and masks (``prepare``), and pixel statistics. The core (``data/``)
only loads; nothing in the core imports this package."""
import os
from typing import Optional, Tuple

from ..data.catalog import register_dataset
from .shapes import SHAPE_CLASSES, ensure_shapes_dataset
from .xray import XRAY_CLASSES, ensure_xray_dataset

__all__ = ["BUILTIN_DATASETS", "SHAPE_CLASSES", "XRAY_CLASSES", "register_builtin_datasets"]

BUILTIN_DATASETS = ("shapes_train", "shapes_val", "xray_train", "xray_val")


def register_builtin_datasets(
    cache_dir: Optional[str] = None,
    *,
    shapes: Tuple[int, int] = (800, 100),
    xray: Tuple[int, int] = (160, 40),
    xray_format: str = "dicom",
) -> None:
    """Register ``shapes_train``/``shapes_val`` and ``xray_train``/``xray_val``, each generated
    into the cache on first use (``ensure_shapes_dataset``, ``ensure_xray_dataset``). A second
    call replaces the entries, so tests can register small sets.

    Args:
        cache_dir: parent of the generated folders; default ``$GN_DETECTION_CACHE`` or
            ``~/.cache/gn_detection``, with a sub-folder per dataset.
        shapes, xray: (train images, val images) of each.
        xray_format: ``"dicom"`` or ``"png16"``.
    """
    def folder(name: str) -> Optional[str]:
        return os.path.join(cache_dir, name) if cache_dir else None

    for split in ("train", "val"):
        register_dataset(
            f"shapes_{split}",
            lambda split=split: ensure_shapes_dataset(folder("shapes_v1"), num_train=shapes[0], num_val=shapes[1])[split],
            replace=True,
        )
        register_dataset(
            f"xray_{split}",
            lambda split=split: ensure_xray_dataset(
                folder("xray_v1"), num_train=xray[0], num_val=xray[1], file_format=xray_format
            )[split],
            replace=True,
        )
