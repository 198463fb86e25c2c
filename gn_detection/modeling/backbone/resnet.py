"""ResNet-18/34/50/101/152 with one norm after every conv: the stem, each block, each shortcut."""
from typing import Dict, List, Sequence, Type

import torch
import torch.nn.functional as F
from fvcore.nn.weight_init import c2_msra_fill
from torch import nn

from ...layers import CNNBlockBase, Conv2d, NormSpec, ShapeSpec, conv_from_cfg, norm_from_cfg
from ...utils.errors import UserError
from .backbone import Backbone
from .build import BACKBONE_REGISTRY

__all__ = ["BasicStem", "BasicBlock", "BottleneckBlock", "ResNet", "make_stage", "build_resnet_backbone"]

# Blocks in res2..res5 for each depth (He et al. 2016, table 1).
STAGE_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
# Below this depth the blocks are two 3x3 convs; from it on, 1x1-3x3-1x1 bottlenecks.
BOTTLENECK_MIN_DEPTH = 50


def _init_convs(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            c2_msra_fill(m)


class BasicStem(CNNBlockBase):
    """7x7 stride-2 conv, norm, ReLU, then a 3x3 stride-2 max pool: stride 4. Inflated for clips
    (N, C, T, H, W) (``inflate_resnet``), the pool is 1x3x3: it pools each frame alone."""

    def __init__(
        self, in_channels: int = 3, out_channels: int = 64, *, norm: NormSpec = "FrozenBN", conv: Type[Conv2d] = Conv2d
    ):
        super().__init__(in_channels, out_channels, stride=4)
        self.conv1 = conv(in_channels, out_channels, 7, stride=2, norm=norm, activation=F.relu)
        _init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        if x.dim() == 5:
            return F.max_pool3d(x, kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        return F.max_pool2d(x, kernel_size=3, stride=2, padding=1)


class BasicBlock(CNNBlockBase):
    """Two 3x3 convs with a residual connection (ResNet-18/34)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        stride: int = 1,
        norm: NormSpec = "FrozenBN",
        conv: Type[Conv2d] = Conv2d,
    ):
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = (
            conv(in_channels, out_channels, 1, stride=stride, norm=norm)
            if in_channels != out_channels or stride != 1
            else None
        )
        self.conv1 = conv(in_channels, out_channels, 3, stride=stride, norm=norm, activation=F.relu)
        self.conv2 = conv(out_channels, out_channels, 3, norm=norm)
        _init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(self.conv2(self.conv1(x)) + identity)


class BottleneckBlock(CNNBlockBase):
    """1x1 reduce, 3x3 (grouped for ResNeXt), 1x1 expand, with a residual connection.

    Args:
        stride_in_1x1: put the stride in the first 1x1 conv, as the MSRA/Caffe2 weights were
            trained; False puts it in the 3x3, as torchvision and Detectron's GN weights do.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        bottleneck_channels: int,
        stride: int = 1,
        num_groups: int = 1,
        norm: NormSpec = "FrozenBN",
        stride_in_1x1: bool = False,
        conv: Type[Conv2d] = Conv2d,
    ):
        super().__init__(in_channels, out_channels, stride)
        self.shortcut = (
            conv(in_channels, out_channels, 1, stride=stride, norm=norm)
            if in_channels != out_channels or stride != 1
            else None
        )
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv(in_channels, bottleneck_channels, 1, stride=stride_1x1, norm=norm, activation=F.relu)
        self.conv2 = conv(
            bottleneck_channels,
            bottleneck_channels,
            3,
            stride=stride_3x3,
            groups=num_groups,
            norm=norm,
            activation=F.relu,
        )
        self.conv3 = conv(bottleneck_channels, out_channels, 1, norm=norm)
        _init_convs(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu_(self.conv3(self.conv2(self.conv1(x))) + identity)


def make_stage(
    block_class: Type[CNNBlockBase], num_blocks: int, *, in_channels: int, out_channels: int, stride: int, **kwargs
) -> List[CNNBlockBase]:
    """``num_blocks`` blocks; the first takes ``in_channels`` and ``stride``, the rest keep the size."""
    blocks = []
    for i in range(num_blocks):
        blocks.append(
            block_class(in_channels if i == 0 else out_channels, out_channels, stride=stride if i == 0 else 1, **kwargs)
        )
    return blocks


class ResNet(Backbone):
    """A stem and stages ``res2``, ``res3``, ...; returns the stages named in ``out_features``.

    Args:
        stem: the first block (stride 4 for BasicStem).
        stages: the blocks of res2, res3, ... in order; each stage halves the resolution.
        out_features: names to return, from "stem", "res2", ..., "res5".
        freeze_at: 0 trains everything; 1 freezes the stem; k >= 2 freezes the stem and
            res2..res<k>, as detectron2's MODEL.BACKBONE.FREEZE_AT.
    """

    def __init__(
        self,
        stem: CNNBlockBase,
        stages: Sequence[Sequence[CNNBlockBase]],
        *,
        out_features: Sequence[str],
        freeze_at: int = 0,
    ):
        super().__init__()
        self.stem = stem
        self.stage_names = [f"res{i + 2}" for i in range(len(stages))]
        known = ["stem"] + self.stage_names
        unknown = [f for f in out_features if f not in known]
        if unknown or not out_features:
            raise UserError(f"ResNet out_features {list(out_features)}: each must be one of {known}")
        self._out_features = list(out_features)
        self._shapes = {"stem": ShapeSpec(channels=stem.out_channels, stride=stem.stride)}
        stride = stem.stride
        for name, blocks in zip(self.stage_names, stages):
            self.add_module(name, nn.Sequential(*blocks))
            for block in blocks:
                stride *= block.stride
            self._shapes[name] = ShapeSpec(channels=blocks[-1].out_channels, stride=stride)
        self.freeze(freeze_at)

    def freeze(self, freeze_at: int) -> "ResNet":
        """Freeze the stem (freeze_at >= 1) and res2..res<freeze_at>; see the class docstring."""
        if not 0 <= freeze_at <= len(self.stage_names) + 1:
            raise UserError(
                f"MODEL.BACKBONE.FREEZE_AT={freeze_at}: expected 0 (train all) to "
                f"{len(self.stage_names) + 1} (freeze the stem and every stage)"
            )
        if freeze_at >= 1:
            self.stem.freeze()
        for index, name in enumerate(self.stage_names, start=2):
            if freeze_at >= index:
                for block in getattr(self, name):
                    block.freeze()
        return self

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        outputs = {}
        x = self.stem(x)
        if "stem" in self._out_features:
            outputs["stem"] = x
        for name in self.stage_names:
            x = getattr(self, name)(x)
            if name in self._out_features:
                outputs[name] = x
        return outputs

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {name: self._shapes[name] for name in self._out_features}


@BACKBONE_REGISTRY.register()
def build_resnet_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """ResNet from ``MODEL.RESNETS``; stages past the last of OUT_FEATURES are not built.

    Stage k has RES2_OUT_CHANNELS * 2^(k-2) output channels and, for bottlenecks,
    NUM_GROUPS * WIDTH_PER_GROUP * 2^(k-2) inner channels.
    """
    r = cfg.MODEL.RESNETS
    if r.DEPTH not in STAGE_BLOCKS:
        raise UserError(f"MODEL.RESNETS.DEPTH={r.DEPTH}: expected one of {sorted(STAGE_BLOCKS)}")
    if r.DEPTH < BOTTLENECK_MIN_DEPTH and r.RES2_OUT_CHANNELS != r.STEM_OUT_CHANNELS:
        raise UserError(
            f"MODEL.RESNETS.RES2_OUT_CHANNELS={r.RES2_OUT_CHANNELS}: ResNet-{r.DEPTH}'s res2 is as wide as "
            f"its stem; set it to MODEL.RESNETS.STEM_OUT_CHANNELS ({r.STEM_OUT_CHANNELS}; 64 in the standard net)"
        )
    norm, conv = norm_from_cfg(cfg, "MODEL.RESNETS.NORM"), conv_from_cfg(cfg, "MODEL.RESNETS.CONV")
    stem = BasicStem(input_shape.channels, r.STEM_OUT_CHANNELS, norm=norm, conv=conv)

    names = [f"res{i + 2}" for i in range(4)]
    num_stages = max((names.index(f) + 1 for f in r.OUT_FEATURES if f in names), default=0)
    in_channels, out_channels = r.STEM_OUT_CHANNELS, r.RES2_OUT_CHANNELS
    bottleneck_channels = r.NUM_GROUPS * r.WIDTH_PER_GROUP
    stages = []
    for index, num_blocks in enumerate(STAGE_BLOCKS[r.DEPTH][:num_stages]):
        if r.DEPTH >= BOTTLENECK_MIN_DEPTH:
            block_class, extra = BottleneckBlock, dict(
                bottleneck_channels=bottleneck_channels, num_groups=r.NUM_GROUPS, stride_in_1x1=r.STRIDE_IN_1X1
            )
        else:
            block_class, extra = BasicBlock, {}
        stages.append(
            make_stage(
                block_class,
                num_blocks,
                in_channels=in_channels,
                out_channels=out_channels,
                stride=1 if index == 0 else 2,
                norm=norm,
                conv=conv,
                **extra,
            )
        )
        in_channels, out_channels, bottleneck_channels = out_channels, out_channels * 2, bottleneck_channels * 2
    return ResNet(stem, stages, out_features=r.OUT_FEATURES, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)
