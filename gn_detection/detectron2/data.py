"""detectron2's DatasetMapper, reading images as gn_detection does."""
import copy

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils
from detectron2.data import transforms as T

from ..data.dicom import DicomReadOptions
from ..data.image_io import read_image

__all__ = ["GNDatasetMapper"]


class GNDatasetMapper(DatasetMapper):
    """detectron2's DatasetMapper with gn_detection's ``read_image``: DICOM windowed as
    ``INPUT.DICOM`` says, 16-bit PNG/TIFF scaled to 0-255 keeping their fractions, gray files
    replicated or read as "L", EXIF orientation applied. Pixels are float32, which detectron2's
    resize and model take as they are. Precomputed proposals and semantic segmentation, which
    Mask R-CNN does not use, are left out.

    Args:
        dicom: the DICOM window and frame (``DicomReadOptions.from_config(cfg)``).
        other arguments: detectron2's DatasetMapper's.
    """

    @configurable
    def __init__(self, is_train: bool, *, dicom: DicomReadOptions = DicomReadOptions(), **kwargs):
        super().__init__(is_train, **kwargs)
        self.dicom = dicom

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        return dict(super().from_config(cfg, is_train), dicom=DicomReadOptions.from_config(cfg))

    def __call__(self, dataset_dict: dict) -> dict:
        dataset_dict = copy.deepcopy(dataset_dict)
        image = read_image(dataset_dict["file_name"], self.image_format, self.dicom)
        detection_utils.check_image_size(dataset_dict, image)
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if not self.is_train:
            dataset_dict.pop("annotations", None)
            return dataset_dict
        if "annotations" in dataset_dict:
            self._transform_annotations(dataset_dict, transforms, image.shape[:2])
        return dataset_dict
