import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gn_detection import get_cfg
from gn_detection.layers import BatchNorm, Conv2d, Conv3d, FrozenBatchNorm2d, GroupNorm, ShapeSpec, WSConv2d, WSConv3d
from gn_detection.modeling.backbone import (
    BasicBlock,
    BasicStem,
    ResNet,
    build_resnet_backbone,
    inflate_resnet,
    make_stage,
)

TOL = dict(rtol=1e-4, atol=1e-5)


def build_2d(norm="GN", depth=18, freeze_at=0, **resnets):
    """A narrow ResNet from a config: 8 stem channels, GN with 4 groups."""
    cfg = get_cfg()
    r = cfg.MODEL.RESNETS
    r.DEPTH, r.NORM, r.STEM_OUT_CHANNELS = depth, norm, 8
    r.RES2_OUT_CHANNELS, r.WIDTH_PER_GROUP = (8, 64) if depth < 50 else (16, 4)
    for key, value in resnets.items():
        r[key] = value
    cfg.MODEL.GROUP_NORM.NUM_GROUPS = 4
    cfg.MODEL.BACKBONE.FREEZE_AT = freeze_at
    torch.manual_seed(0)
    return build_resnet_backbone(cfg, ShapeSpec(channels=3))


def build_2d_batchnorm():
    """The same narrow ResNet-18 with torch's own nn.BatchNorm2d (the registered "BN" may differ)."""
    torch.manual_seed(0)
    stem = BasicStem(3, 8, norm=nn.BatchNorm2d)
    stages, channels = [], 8
    for index in range(4):
        out = 8 * 2**index
        stages.append(make_stage(BasicBlock, 2, in_channels=channels, out_channels=out, stride=1 if index == 0 else 2,
                                 norm=nn.BatchNorm2d))
        channels = out
    return ResNet(stem, stages, out_features=["res2", "res3", "res4", "res5"])


def randomize_frozen_bn(model):
    """Statistics and affine far from the identity, so a frozen BN applied wrongly would show."""
    g = torch.Generator().manual_seed(1)
    frozen = [m for m in model.modules() if isinstance(m, FrozenBatchNorm2d)]
    assert frozen
    for m in frozen:
        c = m.weight.numel()
        m.weight.copy_(torch.rand(c, generator=g) + 0.5)
        m.bias.copy_(torch.randn(c, generator=g) * 0.2)
        m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
        m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    return model


def per_frame_2d(model, clip):
    """The 2-D network on each frame of ``clip`` (N, C, T, H, W), stacked back along T."""
    frames = [model(clip[:, :, t]) for t in range(clip.shape[2])]
    return {name: torch.stack([f[name] for f in frames], dim=2) for name in frames[0]}


def alternating(n):
    return [3 if i % 2 == 0 else 1 for i in range(n)]


@pytest.mark.parametrize("depth, conv", [(18, ""), (18, "WS"), (50, "")])
def test_inflated_kernels_sum_over_time_to_the_2d_kernels(depth, conv):
    model = build_2d(depth=depth, CONV=conv)
    res3_times = alternating(len(model.res3))
    inflated = inflate_resnet(model, {"stem": 3, "res3": res3_times, "res4": 5})

    def expected_time(name):
        if name == "stem.conv1":
            return 3
        stage, block, conv_name = name.split(".")
        if conv_name != "conv1":
            return 1
        if stage == "res3":
            return res3_times[int(block)]
        return 5 if stage == "res4" else 1

    convs_2d = {n: m for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}
    modules_3d = dict(inflated.named_modules())
    assert {n for n, m in modules_3d.items() if isinstance(m, nn.Conv3d)} == set(convs_2d)
    assert not any(isinstance(m, nn.Conv2d) for m in inflated.modules())
    seen_times = set()
    for name, c2 in convs_2d.items():
        c3, t = modules_3d[name], expected_time(name)
        seen_times.add(t)
        assert type(c3) is (WSConv3d if conv == "WS" else Conv3d)
        w2, w3 = c2.weight.detach(), c3.weight.detach()
        assert w3.shape == (w2.shape[0], w2.shape[1], t, *w2.shape[2:])
        torch.testing.assert_close(w3.sum(dim=2), w2, rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(w3, (w2 / t).unsqueeze(2).expand_as(w3), rtol=0, atol=0)
        assert (c3.stride, c3.padding, c3.dilation) == ((1, *c2.stride), (t // 2, *c2.padding), (1, *c2.dilation))
        assert c3.groups == c2.groups and (c3.bias is None) == (c2.bias is None)
        assert type(c3.norm) is type(c2.norm) and c3.activation is c2.activation
        torch.testing.assert_close(c3.norm.weight, c2.norm.weight, rtol=0, atol=0)
    assert seen_times == {1, 3, 5}
    assert inflated.output_shape() == model.output_shape()


def test_with_temporal_kernels_1_and_frozen_bn_each_frame_gets_the_2d_output():
    model = randomize_frozen_bn(build_2d("FrozenBN")).eval()
    inflated = inflate_resnet(model, {})
    clip = torch.randn(2, 3, 4, 32, 32)  # four different frames
    with torch.no_grad():
        expected, actual = per_frame_2d(model, clip), inflated(clip)
    assert list(actual) == ["res2", "res3", "res4", "res5"]
    for name, shape in model.output_shape().items():
        assert actual[name].shape == (2, shape.channels, 4, 32 // shape.stride, 32 // shape.stride)
        torch.testing.assert_close(actual[name], expected[name], **TOL)


def test_with_temporal_kernels_1_and_gn_equal_frames_get_the_2d_output():
    model = build_2d("GN").eval()
    inflated = inflate_resnet(model, {})
    frame = torch.randn(2, 3, 1, 32, 32)
    with torch.no_grad():
        constant, distinct = frame.expand(-1, -1, 3, -1, -1), torch.randn(2, 3, 3, 32, 32)
        for name, value in inflated(constant).items():
            torch.testing.assert_close(value, per_frame_2d(model, constant)[name], **TOL)
        # GN's statistics pool over (C / G, T, H, W): distinct frames share one mean and variance
        # per group, where the 2-D network normalizes each frame by its own.
        actual, expected = inflated(distinct)["res2"], per_frame_2d(model, distinct)["res2"]
        assert (actual - expected).abs().max() > 1e-2


def test_temporal_kernels_3_keep_the_2d_output_of_a_constant_clip_away_from_its_ends():
    model = randomize_frozen_bn(build_2d("FrozenBN")).eval()
    inflated = inflate_resnet(model, {"stem": 3, "res2": [1, 3], "res4": [3, 1]})
    # Three t=3 convs in a row, each padding time with zeros: the outer 3 frames at each end see
    # those zeros, frames 3 and 4 of 8 see only the constant clip.
    clip = torch.randn(1, 3, 1, 32, 32).expand(-1, -1, 8, -1, -1)
    with torch.no_grad():
        expected, actual = per_frame_2d(model, clip), inflated(clip)
    for name in expected:
        torch.testing.assert_close(actual[name][:, :, 3:5], expected[name][:, :, 3:5], **TOL)
    assert (actual["res5"][:, :, 0] - expected["res5"][:, :, 0]).abs().max() > 1e-3


class ClipClassifier(nn.Module):
    """An inflated backbone, global average pooling over (T, H, W), a linear layer."""

    def __init__(self, backbone: ResNet, num_classes: int):
        super().__init__()
        self.backbone = backbone
        self.fc = nn.Linear(backbone.output_shape()["res5"].channels, num_classes)

    def forward(self, clip):
        return self.fc(self.backbone(clip)["res5"].mean(dim=(2, 3, 4)))


@pytest.mark.parametrize("norm", ["GN", "nn.BatchNorm2d"])
def test_an_inflated_classifier_trains(norm):
    model = build_2d("GN") if norm == "GN" else build_2d_batchnorm()
    inflated = inflate_resnet(model, {"stem": 3, "res3": [3, 1], "res4": 3})
    if norm == "GN":
        assert all(isinstance(m.norm, GroupNorm) for m in inflated.modules() if isinstance(m, Conv3d))
    else:
        assert not any(type(m) is nn.BatchNorm2d for m in inflated.modules())
        assert sum(type(m) is BatchNorm for m in inflated.modules()) == sum(
            type(m) is nn.BatchNorm2d for m in model.modules()
        )
        mean_before = inflated.res5[1].conv2.norm.running_mean.clone()
    classifier = ClipClassifier(inflated, num_classes=5).train()
    g = torch.Generator().manual_seed(2)
    clips, labels = torch.randn(2, 3, 4, 32, 32, generator=g), torch.tensor([1, 4])
    loss = F.cross_entropy(classifier(clips), labels)
    loss.backward()
    assert torch.isfinite(loss)
    trainable = [(n, p) for n, p in classifier.named_parameters() if p.requires_grad]
    assert len(trainable) == sum(1 for _ in classifier.parameters())
    for name, p in trainable:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    before = classifier.fc.weight.detach().clone()
    torch.optim.SGD(classifier.parameters(), lr=0.1).step()
    assert not torch.equal(classifier.fc.weight, before)
    if norm != "GN":
        assert not torch.equal(inflated.res5[1].conv2.norm.running_mean, mean_before)  # batch statistics in train
        torch.testing.assert_close(model.res5[1].conv2.norm.running_mean, mean_before, rtol=0, atol=0)


def test_bn3d_holds_the_2d_parameters_and_statistics():
    model = build_2d_batchnorm()
    bn = model.res3[0].conv1.norm
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 2)
    bn3d = inflate_resnet(model, {}).res3[0].conv1.norm
    assert type(bn3d) is BatchNorm and (bn3d.eps, bn3d.momentum) == (bn.eps, bn.momentum)
    assert bn3d.state_dict().keys() == bn.state_dict().keys()
    for key, value in bn.state_dict().items():
        torch.testing.assert_close(bn3d.state_dict()[key], value, rtol=0, atol=0)


def test_frozen_weights_stay_frozen():
    inflated = inflate_resnet(build_2d("GN", freeze_at=2), {"stem": 3, "res2": 3, "res3": 3})
    frozen = [inflated.stem.conv1, inflated.res2[0].conv1, inflated.res2[1].conv2]
    assert not any(p.requires_grad for conv in frozen for p in conv.parameters())
    assert all(p.requires_grad for p in inflated.res3.parameters())


def test_the_2d_network_is_left_unchanged():
    model = build_2d("GN").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    image = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        output_before = model(image)["res5"]
        inflated = inflate_resnet(model, {"stem": 3, "res2": 3})
        inflated.stem.conv1.norm.weight.add_(1.0)  # the copy's parameters are its own
        output_after = model(image)["res5"]
    assert model.state_dict().keys() == before.keys()
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    assert all(type(m) in (Conv2d, WSConv2d) for m in model.modules() if isinstance(m, nn.modules.conv._ConvNd))
    torch.testing.assert_close(output_after, output_before, rtol=0, atol=0)


@pytest.mark.parametrize(
    "temporal_kernels, message",
    [
        ({"res6": 3}, r"unknown keys \['res6'\]; expected some of \['stem', 'res2', 'res3', 'res4'\]"),
        ({"res5": 3}, r"unknown keys \['res5'\]"),  # not built: OUT_FEATURES stops at res4
        ({"res3": 0}, r'temporal_kernels\["res3"\]=0: expected an odd integer >= 1'),
        ({"stem": 2}, r'temporal_kernels\["stem"\]=2: expected an odd integer'),
        ({"res2": [3, 2]}, r'temporal_kernels\["res2"\]=2: expected an odd integer'),
        ({"res2": True}, r'temporal_kernels\["res2"\]=True'),
        ({"res2": "3"}, r"temporal_kernels\[\"res2\"\]='3'"),
        ({"stem": [3]}, r'temporal_kernels\["stem"\]=\[3\]'),
        ({"res2": [3, 1, 3]}, r'temporal_kernels\["res2"\]=\[3, 1, 3\]: expected an int or one temporal kernel per '
                              r"block of res2 \(2 blocks\), got 3"),
    ],
)
def test_bad_temporal_kernels_are_named(temporal_kernels, message):
    model = build_2d(OUT_FEATURES=["res2", "res4"])
    with pytest.raises(ValueError, match=message):
        inflate_resnet(model, temporal_kernels)


def test_an_inflated_network_cannot_be_inflated_again():
    inflated = inflate_resnet(build_2d(), {})
    with pytest.raises(TypeError, match=r"'stem\.conv1'.* are not 2-D convs"):
        inflate_resnet(inflated, {})
