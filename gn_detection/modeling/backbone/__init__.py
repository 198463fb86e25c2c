from .backbone import Backbone
from .build import BACKBONE_REGISTRY, build_backbone
from .fpn import FPN, LastLevelMaxPool, build_resnet_fpn_backbone
from .inflate import inflate_resnet
from .resnet import BasicBlock, BasicStem, BottleneckBlock, ResNet, build_resnet_backbone, make_stage

__all__ = [
    "BACKBONE_REGISTRY",
    "Backbone",
    "BasicBlock",
    "BasicStem",
    "BottleneckBlock",
    "FPN",
    "LastLevelMaxPool",
    "ResNet",
    "build_backbone",
    "build_resnet_backbone",
    "build_resnet_fpn_backbone",
    "inflate_resnet",
    "make_stage",
]
