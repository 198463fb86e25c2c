"""Per-channel pixel mean and std of a training set, for MODEL.PIXEL_MEAN / PIXEL_STD."""
from typing import Callable, List, Sequence, Tuple

import numpy as np

from ..utils.errors import UserError

__all__ = ["pixel_statistics"]


def pixel_statistics(
    file_names: Sequence[str], read: Callable[[str], np.ndarray]
) -> Tuple[List[float], List[float]]:
    """Mean and standard deviation of every pixel of every image, per channel.

    Args:
        file_names: the images.
        read: returns an (H, W, C) float array for a file name, as the model's data pipeline
            reads it (so in INPUT.FORMAT's channel order and the same DICOM window).

    Returns:
        (mean, std), one entry per channel, in 0-255 units.
    """
    if not file_names:
        raise UserError("pixel_statistics: no images")
    count, total, total_sq = 0, 0.0, 0.0
    for name in file_names:
        pixels = read(name).astype(np.float64)
        flat = pixels.reshape(-1, pixels.shape[-1])
        count += flat.shape[0]
        total = total + flat.sum(axis=0)
        total_sq = total_sq + (flat**2).sum(axis=0)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - mean**2, 0.0))
    return mean.tolist(), std.tolist()
