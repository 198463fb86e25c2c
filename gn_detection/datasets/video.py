"""Synthetic video clips whose class is a motion, for the GN paper's video experiments at small
scale (the paper fine-tunes I3D on Kinetics, where BN suffers from the few clips per GPU).

Each clip shows one white shape (square, disk or triangle) on a noisy dark background, moving
in a straight line at constant speed; the class is the direction (``MOTION_CLASSES``), so a model
must compare frames to tell it. The shape, its size, its speed and its position are drawn
independently of the class, and the shape sits at a position drawn from the same distribution
for every class at frame ``frames // 2``: that frame alone tells nothing about the class. (Other
single frames do a little: in a bounded frame a shape moving right cannot start at the right
edge. Only the middle frame can be made free of that.)
"""
from typing import Tuple

import numpy as np
import torch
from torch import Tensor

from ..utils.errors import UserError

__all__ = ["MOTION_CLASSES", "MOVING_SHAPES", "make_moving_shape_clips", "max_frames"]

MOTION_CLASSES = ("right", "left", "down", "up")
# (dx, dy) per pixel moved, in image coordinates (y grows downwards), in MOTION_CLASSES's order
_DIRECTIONS = np.array([(1, 0), (-1, 0), (0, 1), (0, -1)], dtype=np.float64)
MOVING_SHAPES = ("square", "disk", "triangle")
SIDE_AT_32 = (6.0, 10.0)  # the shape's side (or diameter) in pixels at size 32; scaled with size
SPEED = (1.0, 2.0)  # pixels per frame, at any size
BACKGROUND, WHITE, NOISE_STD = 0.1, 1.0, 0.05  # intensities in 0..1; noise on every pixel of every frame


def make_moving_shape_clips(num_clips: int, *, frames: int = 8, size: int = 32, seed: int = 0) -> Tuple[Tensor, Tensor]:
    """Clips of a shape moving right, left, down or up, the classes balanced.

    Args:
        num_clips: number of clips N; the four classes get N // 4 or N // 4 + 1 each.
        frames: frames T per clip.
        size: height and width of a frame, in pixels.
        seed: the clips depend on it only (a private generator; the global RNGs are untouched).

    Returns:
        (N, 1, T, size, size) float32 clips in 0..1 and (N,) int64 labels, indices into
        ``MOTION_CLASSES``.

    Raises:
        UserError: an argument is not positive, or ``frames`` is too many for the shape to cross
            the frame at the top speed and stay inside it.
    """
    for name, value in (("num_clips", num_clips), ("frames", frames), ("size", size)):
        if not isinstance(value, int) or value < 1:
            raise UserError(f"{name} must be a positive int, got {value!r}")
    if frames > max_frames(size):
        raise UserError(f"frames={frames} is too many for size={size}: a shape moving {SPEED[1]:g} px per frame "
                        f"would leave the frame; use at most {max_frames(size)} frames or a larger size")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(num_clips) % len(MOTION_CLASSES))
    kinds = rng.integers(0, len(MOVING_SHAPES), num_clips)
    radius = rng.uniform(*SIDE_AT_32, num_clips) * size / 32 / 2
    speed = rng.uniform(*SPEED, num_clips)
    # The centre (the position at frame T // 2) is drawn from one square for every class: its margin
    # fits the longest arm of the trajectory whatever the direction, and depends on no class.
    reach = radius + speed * (frames // 2)
    centre = reach[:, None] + rng.uniform(size=(num_clips, 2)) * (size - 1 - 2 * reach)[:, None]  # (N, 2) as x, y
    steps = np.arange(frames) - frames // 2
    # (N, T, 2): x, y of every clip at every frame
    positions = centre[:, None] + steps[None, :, None] * speed[:, None, None] * _DIRECTIONS[labels][:, None]
    masks = _draw(kinds, radius, positions, size)
    clips = np.where(masks, WHITE, BACKGROUND) + rng.normal(0.0, NOISE_STD, masks.shape)
    clips = np.clip(clips, 0.0, 1.0).astype(np.float32)[:, None]
    return torch.from_numpy(clips), torch.from_numpy(labels.astype(np.int64))


def max_frames(size: int) -> int:
    """The most frames a clip of ``size`` pixels can have: the largest, fastest shape, centred at
    frame T // 2 in the middle of the frame, must still be inside it at frame 0."""
    half_side = SIDE_AT_32[1] * size / 32 / 2
    return 2 * int(((size - 1) / 2 - half_side) // SPEED[1]) + 1


def _draw(kinds: np.ndarray, radius: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """(N, T, size, size) bool masks: shape ``kinds[n]`` of half-side ``radius[n]`` centred at
    ``positions[n, t]`` (x, y in pixels; pixel (i, j) is the point x = j, y = i)."""
    grid = np.arange(size, dtype=np.float64)
    dx = grid[None, None, None, :] - positions[:, :, 0, None, None]  # (N, T, 1, W)
    dy = grid[None, None, :, None] - positions[:, :, 1, None, None]  # (N, T, H, 1)
    r = radius[:, None, None, None]
    square = (np.abs(dx) <= r) & (np.abs(dy) <= r)
    disk = dx**2 + dy**2 <= r**2
    # pointing up: the width grows from 0 at the top (dy = -r) to 2 r at the bottom (dy = r)
    triangle = (np.abs(dy) <= r) & (np.abs(dx) <= (dy + r) / 2)
    kind = kinds[:, None, None, None]
    return np.select([kind == k for k in range(len(MOVING_SHAPES))], [square, disk, triangle], default=False)
