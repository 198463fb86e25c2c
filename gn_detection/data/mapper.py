"""From a dataset record to what the model takes: an image tensor and its training target."""
from typing import Optional, Sequence

import numpy as np
import torch

from ..utils.errors import UserError
from .dicom import DicomReadOptions
from .image_io import IMAGE_FORMATS, read_image
from .segmentation import segmentation_to_mask

__all__ = ["DatasetMapper", "check_polygon_annotations"]

FLIP_MODES = ("horizontal", "none")
MASK_FORMATS = ("polygon", "bitmask")


class DatasetMapper:
    """Reads a record's image and turns its annotations into a torchvision-style target.

    The returned dict holds ``image`` (C, H, W) float32 in 0-255, channels in ``image_format``
    order; ``image_id``, ``file_name``, ``height`` and ``width`` from the record; and in training
    ``target``: ``boxes`` (G, 4) XYXY float32, ``labels`` (G,) int64 and either ``polygons`` (per
    instance a list of float64 arrays [x0, y0, x1, y1, ...]) or ``masks`` (G, H, W) uint8. Crowd
    regions are left out of the target: the evaluator reads them from the JSON.

    Args:
        is_train: build the target and apply the augmentation.
        image_format: "RGB", "BGR" or "L" (INPUT.FORMAT).
        flip: "horizontal" flips half of the training images, masks and boxes with them; "none".
        mask_format: "polygon" keeps the annotations' polygons (see
            :func:`check_polygon_annotations`), "bitmask" draws every mask (INPUT.MASK_FORMAT).
    """

    def __init__(
        self,
        *,
        is_train: bool,
        image_format: str,
        flip: str = "horizontal",
        mask_format: str = "polygon",
        brightness: float = 0.0,
        contrast: float = 0.0,
        dicom: DicomReadOptions = DicomReadOptions(),
    ):
        if image_format not in IMAGE_FORMATS:
            raise UserError(f"INPUT.FORMAT={image_format!r}: expected one of {IMAGE_FORMATS}")
        if flip not in FLIP_MODES:
            raise UserError(f"INPUT.RANDOM_FLIP={flip!r}: expected one of {FLIP_MODES}")
        if mask_format not in MASK_FORMATS:
            raise UserError(f"INPUT.MASK_FORMAT={mask_format!r}: expected one of {MASK_FORMATS}")
        if not (0 <= brightness < 1 and 0 <= contrast < 1):
            raise UserError(f"INPUT.BRIGHTNESS={brightness} and INPUT.CONTRAST={contrast}: each must be in [0, 1)")
        self.is_train = is_train
        self.image_format = image_format
        self.flip = flip
        self.mask_format = mask_format
        self.brightness = brightness
        self.contrast = contrast
        self.dicom = dicom

    @classmethod
    def from_config(cls, cfg, is_train: bool) -> dict:
        return dict(
            is_train=is_train,
            image_format=cfg.INPUT.FORMAT,
            flip=cfg.INPUT.RANDOM_FLIP,
            mask_format=cfg.INPUT.MASK_FORMAT,
            brightness=cfg.INPUT.BRIGHTNESS,
            contrast=cfg.INPUT.CONTRAST,
            dicom=DicomReadOptions.from_config(cfg),
        )

    def read(self, file_name: str) -> np.ndarray:
        """The image as the model sees it: (H, W, C) float32 in 0-255, in ``image_format``."""
        return read_image(file_name, self.image_format, self.dicom)

    def __call__(self, record: dict, rng: Optional[np.random.Generator] = None) -> dict:
        """Map one record; ``rng`` draws the augmentation (required in training)."""
        try:
            image = self.read(record["file_name"])
        except (FileNotFoundError, ValueError) as e:
            raise type(e)(f"image id {record['image_id']}: {e}") from None
        height, width = image.shape[:2]
        if (height, width) != (record["height"], record["width"]):
            raise UserError(
                f"{record['file_name']} (image id {record['image_id']}): the file is {height}x{width} "
                f"(HxW) but the annotations say {record['height']}x{record['width']}"
            )
        out = dict(
            image=torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))),
            image_id=record["image_id"],
            file_name=record["file_name"],
            height=height,
            width=width,
        )
        if not self.is_train:
            return out

        annotations = [a for a in record["annotations"] if not a.get("iscrowd", 0)]
        target = dict(
            boxes=torch.tensor([a["bbox"] for a in annotations], dtype=torch.float32).reshape(-1, 4),
            labels=torch.tensor([a["category_id"] for a in annotations], dtype=torch.int64),
        )
        if self.mask_format == "polygon":
            target["polygons"] = [[np.array(p, dtype=np.float64) for p in a["segmentation"]] for a in annotations]
        else:
            masks = np.zeros((len(annotations), height, width), dtype=np.uint8)
            for i, a in enumerate(annotations):
                masks[i] = segmentation_to_mask(a["segmentation"], height, width)
            target["masks"] = torch.from_numpy(masks)

        if self.contrast or self.brightness:
            gain = rng.uniform(1 - self.contrast, 1 + self.contrast)
            offset = 255 * rng.uniform(-self.brightness, self.brightness)
            out["image"] = (out["image"] * gain + offset).clamp(0, 255)
        if self.flip == "horizontal" and rng.random() < 0.5:
            out["image"] = out["image"].flip(-1)
            _flip_target(target, width)
        out["target"] = target
        return out


def _flip_target(target: dict, width: int) -> None:
    """Mirror a target's boxes and masks or polygons in place, about an image ``width`` wide."""
    x0, y0, x1, y1 = target["boxes"].unbind(dim=1)
    target["boxes"] = torch.stack([width - x1, y0, width - x0, y1], dim=1)
    if "masks" in target:
        target["masks"] = target["masks"].flip(-1)
    for polygon in (p for instance in target.get("polygons", ()) for p in instance):
        polygon[0::2] = width - polygon[0::2]


def check_polygon_annotations(records: Sequence[dict], key: str) -> None:
    """Raise if a training annotation has no polygons (an RLE), which INPUT.MASK_FORMAT
    "polygon" cannot use; crowd regions are not trained on and may be RLEs."""
    for record in records:
        for a in record["annotations"]:
            if not a.get("iscrowd", 0) and isinstance(a["segmentation"], dict):
                raise UserError(
                    f"{key}: annotation id {a['id']} of {record['file_name']} is an RLE mask, which "
                    'INPUT.MASK_FORMAT "polygon" cannot draw inside its RoIs; set INPUT.MASK_FORMAT '
                    '"bitmask" to train on RLE and polygon masks alike'
                )
