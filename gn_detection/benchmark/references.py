"""The models a benchmark compares ours with: torchvision's and detectron2's Mask R-CNN, built
with the topology and sampling of one of our configs.

Each builder returns ``(model, train_inputs, test_inputs)``: ``model(*train_inputs)`` is a dict
of losses in training mode and ``model(*test_inputs)`` the detections in eval mode, so a
benchmark times all models alike.
"""
import contextlib
import functools
import logging
from typing import Callable, Dict, List, Tuple

import torch
from torch import nn

from ..utils.errors import UserError

__all__ = ["REFERENCES", "build_torchvision_reference", "build_detectron2_reference"]

logger = logging.getLogger(__name__)


def build_torchvision_reference(cfg, images: List[torch.Tensor], targets: List[dict]) -> Tuple[nn.Module, tuple, tuple]:
    """torchvision's MaskRCNN with our config's ResNet depth, norms (GN everywhere or frozen
    BN), head convs and fcs, anchors, RoI sampling and proposal counts, in its stock fp32
    layout (NCHW, torchvision's RoIAlign)."""
    import torchvision
    from torchvision.models.detection import MaskRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.models.detection.faster_rcnn import FastRCNNConvFCHead, FastRCNNPredictor
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
    from torchvision.models.detection.rpn import RPNHead
    from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign

    model_cfg = cfg.MODEL
    widths = dict(STEM_OUT_CHANNELS=64, RES2_OUT_CHANNELS=256)
    changed = [f"MODEL.RESNETS.{k}={model_cfg.RESNETS[k]}" for k, v in widths.items() if model_cfg.RESNETS[k] != v]
    changed += [f"MODEL.FPN.OUT_CHANNELS={model_cfg.FPN.OUT_CHANNELS}"] if model_cfg.FPN.OUT_CHANNELS != 256 else []
    if changed:
        logger.warning("torchvision reference: %s not applied; its ResNet and FPN widths are fixed", ", ".join(changed))
    norms = {"GN": functools.partial(nn.GroupNorm, model_cfg.GROUP_NORM.NUM_GROUPS), "FrozenBN": FrozenBatchNorm2d, "": None}

    def norm(key: str, value: str) -> Callable:
        if value not in norms:
            raise UserError(f"the torchvision reference has no {key}={value!r}; it supports {sorted(norms)}")
        return norms[value]

    resnet = getattr(torchvision.models, f"resnet{model_cfg.RESNETS.DEPTH}")
    backbone = _resnet_fpn_extractor(
        resnet(norm_layer=norm("MODEL.RESNETS.NORM", model_cfg.RESNETS.NORM) or nn.BatchNorm2d),
        trainable_layers=5 - model_cfg.BACKBONE.FREEZE_AT,  # both count the stem as a stage
        norm_layer=norm("MODEL.FPN.NORM", model_cfg.FPN.NORM),
    )
    channels, num_classes = backbone.out_channels, model_cfg.ROI_HEADS.NUM_CLASSES + 1
    box, mask = model_cfg.ROI_BOX_HEAD, model_cfg.ROI_MASK_HEAD
    box_res, mask_res = box.POOLER_RESOLUTION, mask.POOLER_RESOLUTION
    aspect_ratios = tuple(model_cfg.ANCHOR_GENERATOR.ASPECT_RATIOS[0])
    anchors = AnchorGenerator(tuple(tuple(s) for s in model_cfg.ANCHOR_GENERATOR.SIZES), (aspect_ratios,) * 5)
    height, width = images[0].shape[-2:]
    model = MaskRCNN(
        backbone,
        min_size=min(height, width),
        max_size=max(height, width),
        image_mean=[m / 255 for m in model_cfg.PIXEL_MEAN],
        image_std=[s / 255 for s in model_cfg.PIXEL_STD],
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(channels, len(aspect_ratios)),
        rpn_pre_nms_top_n_train=model_cfg.RPN.PRE_NMS_TOPK_TRAIN,
        rpn_post_nms_top_n_train=model_cfg.RPN.POST_NMS_TOPK_TRAIN,
        rpn_pre_nms_top_n_test=model_cfg.RPN.PRE_NMS_TOPK_TEST,
        rpn_post_nms_top_n_test=model_cfg.RPN.POST_NMS_TOPK_TEST,
        rpn_batch_size_per_image=model_cfg.RPN.BATCH_SIZE_PER_IMAGE,
        box_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"], box_res, box.POOLER_SAMPLING_RATIO),
        box_head=FastRCNNConvFCHead(
            (channels, box_res, box_res),
            [box.CONV_DIM] * box.NUM_CONV,
            [box.FC_DIM] * box.NUM_FC,
            norm_layer=norm("MODEL.ROI_BOX_HEAD.NORM", box.NORM),
        ),
        box_predictor=FastRCNNPredictor(box.FC_DIM, num_classes),
        box_batch_size_per_image=model_cfg.ROI_HEADS.BATCH_SIZE_PER_IMAGE,
        box_positive_fraction=model_cfg.ROI_HEADS.POSITIVE_FRACTION,
        mask_roi_pool=MultiScaleRoIAlign(["0", "1", "2", "3"], mask_res, mask.POOLER_SAMPLING_RATIO),
        mask_head=MaskRCNNHeads(
            channels, [mask.CONV_DIM] * mask.NUM_CONV, 1, norm_layer=norm("MODEL.ROI_MASK_HEAD.NORM", mask.NORM)
        ),
        mask_predictor=MaskRCNNPredictor(mask.CONV_DIM, mask.CONV_DIM, num_classes),
    )
    # torchvision's models take 0-1 pixels
    images = [i / 255 for i in images]
    return model, (images, targets), (images,)


def build_detectron2_reference(cfg, images: List[torch.Tensor], targets: List[dict]) -> Tuple[nn.Module, tuple, tuple]:
    """detectron2's GeneralizedRCNN from its model zoo's Base-RCNN-FPN config with every key our
    config shares with it copied over (our keys are detectron2's names). Needs detectron2."""
    try:
        from detectron2 import model_zoo
        from detectron2.config import get_cfg as detectron2_get_cfg
        from detectron2.modeling import build_model as detectron2_build_model
        from detectron2.structures import BitMasks, Boxes, Instances
    except ImportError as e:
        raise UserError(f"the detectron2 reference needs detectron2 installed ({e})") from e

    d2_cfg = detectron2_get_cfg()
    d2_cfg.merge_from_file(model_zoo.get_config_file("Base-RCNN-FPN.yaml"))
    _copy_shared_keys(cfg, d2_cfg)
    # the parts named differently here (ours are registered under our own names)
    d2_cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    d2_cfg.MODEL.ROI_HEADS.NAME = "StandardROIHeads"
    d2_cfg.MODEL.WEIGHTS = ""
    model = _WithEventStorage(detectron2_build_model(d2_cfg))

    def instances(image: torch.Tensor, target: dict) -> Instances:
        # detectron2 numbers foreground classes from 0 and has no background class
        return Instances(
            tuple(image.shape[-2:]),
            gt_boxes=Boxes(target["boxes"]),
            gt_classes=target["labels"] - 1,
            gt_masks=BitMasks(target["masks"].bool()),
        )

    train = [{"image": i, "instances": instances(i, t)} for i, t in zip(images, targets)]
    test = [{"image": i} for i in images]
    return model, (train,), (test,)


class _WithEventStorage(nn.Module):
    """detectron2's models log training statistics into an EventStorage, which must exist."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs):
        from detectron2.utils.events import EventStorage

        with EventStorage() if self.training else contextlib.nullcontext():
            return self.model(inputs)


def _copy_shared_keys(ours, theirs, prefix: str = "") -> None:
    for key, value in ours.items():
        if key not in theirs:
            continue
        if hasattr(value, "items"):
            _copy_shared_keys(value, theirs[key], f"{prefix}{key}.")
        elif type(value) is type(theirs[key]) or isinstance(value, (list, tuple)):
            theirs[key] = value


# --vs name -> builder
REFERENCES: Dict[str, Callable] = {
    "torchvision": build_torchvision_reference,
    "detectron2": build_detectron2_reference,
}
