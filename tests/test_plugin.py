"""A plugin from outside the package: its own backbone, norm and config keys, used from YAML."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gn_detection import BACKBONE_REGISTRY, NORM_REGISTRY, build_model, get_cfg
from gn_detection.config import CfgNode
from gn_detection.layers import Conv2d, ShapeSpec, norm_from_cfg
from gn_detection.modeling.backbone import FPN, Backbone, LastLevelMaxPool
from tests.helpers import TINY_CONFIG, make_sample


class LayerNorm2d(nn.GroupNorm):
    """LayerNorm over (C, H, W): GN with a single group."""

    def __init__(self, channels):
        super().__init__(1, channels)


class PlainConvNet(Backbone):
    """Four stride-2 conv stages after a stride-2 stem: features at strides 4 to 32."""

    def __init__(self, in_channels, width, norm):
        super().__init__()
        self.stem = Conv2d(in_channels, width, 3, stride=2, norm=norm, activation=F.relu)
        self.widths = [width * 2**i for i in range(4)]
        channels = width
        for i, w in enumerate(self.widths):
            self.add_module(f"stage{i + 2}", Conv2d(channels, w, 3, stride=2, norm=norm, activation=F.relu))
            channels = w

    def forward(self, x):
        x = self.stem(x)
        out = {}
        for i in range(2, 6):
            x = getattr(self, f"stage{i}")(x)
            out[f"stage{i}"] = x
        return out

    def output_shape(self):
        return {f"stage{i + 2}": ShapeSpec(channels=w, stride=2 ** (i + 2)) for i, w in enumerate(self.widths)}


def add_plain_convnet_config(cfg):
    cfg.MODEL.PLAIN_CONVNET = CfgNode()
    cfg.MODEL.PLAIN_CONVNET.WIDTH = 8
    cfg.MODEL.PLAIN_CONVNET.NORM = "LN2d"


def build_plain_convnet_fpn_backbone(cfg, input_shape):
    bottom_up = PlainConvNet(
        input_shape.channels, cfg.MODEL.PLAIN_CONVNET.WIDTH, norm_from_cfg(cfg, "MODEL.PLAIN_CONVNET.NORM")
    )
    return FPN(
        bottom_up,
        list(bottom_up.output_shape()),
        cfg.MODEL.FPN.OUT_CHANNELS,
        norm=norm_from_cfg(cfg, "MODEL.FPN.NORM"),
        top_block=LastLevelMaxPool(),
    )


@pytest.fixture
def plugin():
    NORM_REGISTRY.register_as("LN2d")(LayerNorm2d)
    BACKBONE_REGISTRY.register(build_plain_convnet_fpn_backbone)
    yield
    NORM_REGISTRY._obj_map.pop("LN2d")
    BACKBONE_REGISTRY._obj_map.pop("build_plain_convnet_fpn_backbone")


def test_model_from_yaml_uses_the_plugin_backbone_and_norm(plugin, tmp_path):
    path = tmp_path / "plain_convnet.yaml"
    path.write_text(
        """
_BASE_: "{tiny}"
MODEL:
  BACKBONE:
    NAME: "build_plain_convnet_fpn_backbone"
  PLAIN_CONVNET:
    WIDTH: 8
    NORM: "LN2d"
  FPN:
    NORM: "LN2d"
  ROI_BOX_HEAD:
    NORM: "LN2d"
""".format(tiny=TINY_CONFIG)
    )
    cfg = get_cfg()
    add_plain_convnet_config(cfg)
    cfg.merge_from_file(str(path))
    model = build_model(cfg)

    assert isinstance(model.backbone.bottom_up, PlainConvNet)
    assert isinstance(model.backbone.bottom_up.stage3.norm, LayerNorm2d)
    assert isinstance(model.backbone.fpn_output4.norm, LayerNorm2d)
    assert isinstance(model.roi_heads.box_head.conv2.norm, LayerNorm2d)
    assert math.isclose(model.backbone.output_shape()["p6"].stride, 64)

    image, target = make_sample(96, 128, 2, 3, seed=0)
    losses = model([image], [target])
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert model.backbone.bottom_up.stage2.norm.weight.grad is not None


def test_plugin_keys_are_unknown_without_the_plugin_config(tmp_path):
    path = tmp_path / "needs_plugin.yaml"
    path.write_text("MODEL:\n  PLAIN_CONVNET:\n    WIDTH: 8\n")
    with pytest.raises(ValueError, match="unknown config key MODEL.PLAIN_CONVNET"):
        get_cfg().merge_from_file(str(path))
