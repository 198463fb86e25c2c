from typing import Sequence

from torchvision.models.detection.transform import GeneralizedRCNNTransform

__all__ = ["ResizeNormalize", "build_transform"]


class ResizeNormalize(GeneralizedRCNNTransform):
    """torchvision's batching transform with separate train and test sizes.

    Normalizes with the pixel mean and std, resizes each image so its shorter edge is one of
    ``train_min_sizes`` (drawn per image) or ``test_min_size`` while the longer edge stays within
    the max size, and pads the batch to a multiple of ``size_divisibility``. Detections are
    mapped back to the input image's pixels.
    """

    def __init__(
        self,
        *,
        train_min_sizes: Sequence[int],
        train_max_size: int,
        test_min_size: int,
        test_max_size: int,
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        size_divisibility: int,
    ):
        super().__init__(
            tuple(train_min_sizes),
            train_max_size,
            list(pixel_mean),
            list(pixel_std),
            size_divisible=max(size_divisibility, 1),
        )
        self._sizes = {True: (tuple(train_min_sizes), train_max_size), False: ((test_min_size,), test_max_size)}

    def train(self, mode: bool = True) -> "ResizeNormalize":
        super().train(mode)
        self.min_size, self.max_size = self._sizes[mode]
        return self


def build_transform(cfg, size_divisibility: int) -> ResizeNormalize:
    i = cfg.INPUT
    if len(cfg.MODEL.PIXEL_MEAN) != len(cfg.MODEL.PIXEL_STD):
        raise ValueError(
            f"MODEL.PIXEL_MEAN has {len(cfg.MODEL.PIXEL_MEAN)} entries but MODEL.PIXEL_STD has "
            f"{len(cfg.MODEL.PIXEL_STD)}; give one of each per input channel"
        )
    return ResizeNormalize(
        train_min_sizes=i.MIN_SIZE_TRAIN,
        train_max_size=i.MAX_SIZE_TRAIN,
        test_min_size=i.MIN_SIZE_TEST,
        test_max_size=i.MAX_SIZE_TEST,
        pixel_mean=cfg.MODEL.PIXEL_MEAN,
        pixel_std=cfg.MODEL.PIXEL_STD,
        size_divisibility=size_divisibility,
    )
