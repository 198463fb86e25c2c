"""Moving-shape clips: the class is the direction of motion, seen across frames and in no single
(middle) frame."""
import numpy as np
import pytest
import torch

from gn_detection.datasets.video import MOTION_CLASSES, make_moving_shape_clips, max_frames
from gn_detection.utils.errors import UserError

# (dx, dy) of each class, in image coordinates (y grows downwards), written out independently
DIRECTIONS = {"right": (1, 0), "left": (-1, 0), "down": (0, 1), "up": (0, -1)}


@pytest.fixture(scope="module")
def clips():
    return make_moving_shape_clips(400, frames=8, size=32, seed=0)


def _centres_of_mass(frames: np.ndarray) -> np.ndarray:
    """(N, H, W) frames -> (N, 2) x, y centre of the bright (shape) pixels."""
    bright = frames > 0.5
    ys, xs = np.mgrid[: frames.shape[1], : frames.shape[2]]
    count = bright.sum(axis=(1, 2))
    assert (count > 0).all()  # every frame shows its shape
    return np.stack([(bright * xs).sum(axis=(1, 2)) / count, (bright * ys).sum(axis=(1, 2)) / count], axis=1)


def test_shapes_dtypes_and_balanced_labels(clips):
    videos, labels = clips
    assert videos.shape == (400, 1, 8, 32, 32) and videos.dtype == torch.float32 and labels.dtype == torch.int64
    assert 0 <= float(videos.min()) and float(videos.max()) <= 1
    assert labels.bincount(minlength=4).tolist() == [100, 100, 100, 100]
    assert MOTION_CLASSES == tuple(DIRECTIONS)


def test_the_same_seed_gives_the_same_clips_and_another_seed_others(clips):
    videos, labels = clips
    again_videos, again_labels = make_moving_shape_clips(400, frames=8, size=32, seed=0)
    assert torch.equal(again_videos, videos) and torch.equal(again_labels, labels)
    other_videos, _ = make_moving_shape_clips(400, frames=8, size=32, seed=1)
    assert not torch.equal(other_videos, videos)


def test_the_global_random_state_is_left_alone():
    state = torch.random.get_rng_state()
    numpy_state = np.random.get_state()[1].copy()
    make_moving_shape_clips(4)
    assert torch.equal(torch.random.get_rng_state(), state) and np.array_equal(np.random.get_state()[1], numpy_state)


def test_the_shape_moves_in_the_labelled_direction_at_one_to_two_pixels_a_frame(clips):
    videos, labels = clips
    frames = videos[:, 0].numpy()
    moved = _centres_of_mass(frames[:, -1]) - _centres_of_mass(frames[:, 0])  # over 7 steps
    direction = np.array([DIRECTIONS[MOTION_CLASSES[k]] for k in labels.tolist()], dtype=np.float64)
    along = (moved * direction).sum(axis=1)
    across = np.abs(moved[:, 0] * direction[:, 1] - moved[:, 1] * direction[:, 0])
    assert along.min() > 7 * 1 - 1 and along.max() < 7 * 2 + 1  # 1-2 px per frame, rasterized
    assert across.max() < 1


def test_the_middle_frame_alone_does_not_tell_the_class(clips):
    """Where the shape is at frame T // 2 is distributed alike for every class: per class, the mean
    and spread of its centre agree within sampling error (about 0.35 px for the mean of 100)."""
    videos, labels = clips
    middle = _centres_of_mass(videos[:, 0, 4].numpy())
    means = np.stack([middle[labels.numpy() == k].mean(axis=0) for k in range(4)])
    spreads = np.stack([middle[labels.numpy() == k].std(axis=0) for k in range(4)])
    assert np.abs(means - means.mean(axis=0)).max() < 1.5
    assert np.abs(spreads - spreads.mean(axis=0)).max() < 1.0
    # and not because the shape barely moves: at the first frame the classes are pixels apart
    first = _centres_of_mass(videos[:, 0, 0].numpy())
    assert first[labels.numpy() == 0, 0].mean() < first[labels.numpy() == 1, 0].mean() - 5


def test_sizes_scale_and_too_many_frames_are_refused():
    videos, _ = make_moving_shape_clips(8, frames=max_frames(64), size=64, seed=0)
    bright = (videos > 0.5).sum(dim=(1, 3, 4)).float()  # (N, T) shape pixels
    assert bright.min() >= 0.8 * 12**2 / 2 and bright.max() <= 21**2  # sides 12-20 px at 64: triangle to square
    # even at the most frames the shape stays whole in every frame: a clipped one would lose pixels
    assert (bright.min(dim=1).values / bright.max(dim=1).values).min() > 0.8
    assert max_frames(32) == 11
    with pytest.raises(UserError, match="frames=12 is too many for size=32"):
        make_moving_shape_clips(4, frames=12, size=32)
    with pytest.raises(UserError, match="num_clips must be a positive int, got 0"):
        make_moving_shape_clips(0)
