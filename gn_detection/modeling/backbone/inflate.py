"""I3D inflation (Carreira & Zisserman 2017): a 2-D ResNet, ImageNet weights and all, made into a
3-D one for clips (N, C, T, H, W), as the GN paper's Kinetics experiment inflates its ResNet-50."""
import copy
import numbers
from typing import Dict, Mapping, Sequence, Union

from torch import nn

from ...layers import BatchNorm, inflate_conv
from ...utils.errors import UserError
from .resnet import ResNet

__all__ = ["inflate_resnet"]

# The one temporal kernel that changes nothing in time: every conv a key does not name gets it.
NO_TEMPORAL_EXTENT = 1


def inflate_resnet(resnet: ResNet, temporal_kernels: Mapping[str, Union[int, Sequence[int]]]) -> ResNet:
    """A 3-D copy of ``resnet``; ``resnet`` itself is left as it was.

    Each conv is inflated by ``inflate_conv``: its k x k kernel becomes t x k x k, the 2-D weights
    repeated over t and divided by t, with temporal stride 1 and temporal padding t // 2 (zeros),
    so a clip keeps its length and, away from its first and last frames, a clip whose frames are
    all equal gets the 2-D network's output at every frame. Spatial strides are unchanged, so
    ``output_shape()`` stays; the stem's max pool becomes 1x3x3 (``BasicStem.forward``).

    Where t goes: to the stem's conv1 and to the FIRST conv (``conv1``) of each block, every other
    conv (conv2, conv3, the shortcut) getting t = 1. In a BottleneckBlock conv1 is the 1x1, which
    becomes t x 1 x 1, as in the I3D ResNet-50 of Wang et al. 2018 (non-local networks), which
    puts 3 in some blocks and 1 elsewhere; in a BasicBlock it is the first 3x3.

    Norms keep their modules and parameters: every registered norm (GN, FrozenBN, ...) takes 5-D
    input. Only a plain ``nn.BatchNorm2d`` (that exact type), which refuses 5-D input, becomes the
    registered ``BatchNorm`` (which takes clips) holding the same parameters and buffers (the same state-dict names).

    Args:
        resnet: a 2-D ResNet, e.g. from ``build_resnet_backbone``, with its weights loaded.
        temporal_kernels: t by part: "stem" to an int, a stage ("res2", ...) to an int for every
            block or to a sequence with one t per block. Parts not named get 1. Each t is odd and
            >= 1.

    Returns:
        the inflated ResNet, mapping (N, C, T, H, W) to features (N, C_k, T, H / s_k, W / s_k).

    Raises:
        UserError: a key names no part of ``resnet``, a t is not an odd integer >= 1, a stage's
            sequence has not one t per block, or "stem" is given a sequence.
        TypeError: ``resnet`` holds a conv other than Conv2d/WSConv2d, or a block without a 2-D
            conv1 (an inflated network, say).
    """
    times = _first_conv_times(resnet, temporal_kernels)
    inflated = copy.deepcopy(resnet)
    done = _inflate_children(inflated, times, prefix="")
    missing = sorted(set(times) - done)
    if missing:
        raise TypeError(f"inflate_resnet: {missing} are not 2-D convs (Conv2d or WSConv2d); is the ResNet 2-D?")
    return inflated


def _first_conv_times(resnet: ResNet, temporal_kernels: Mapping[str, Union[int, Sequence[int]]]) -> Dict[str, int]:
    """The temporal kernel of the stem's conv1 and of each block's conv1, by module name
    ("stem.conv1", "res2.0.conv1", ...), from the checked ``temporal_kernels``."""
    parts = ["stem"] + list(resnet.stage_names)
    unknown = [key for key in temporal_kernels if key not in parts]
    if unknown:
        raise UserError(f"inflate_resnet temporal_kernels: unknown keys {unknown}; expected some of {parts}")
    stem = temporal_kernels.get("stem", NO_TEMPORAL_EXTENT)
    times = {"stem.conv1": _checked_time('temporal_kernels["stem"]', stem)}
    for name in resnet.stage_names:
        num_blocks = len(getattr(resnet, name))
        value = temporal_kernels.get(name, NO_TEMPORAL_EXTENT)
        if isinstance(value, Sequence) and not isinstance(value, str):
            if len(value) != num_blocks:
                raise UserError(
                    f'inflate_resnet temporal_kernels["{name}"]={list(value)}: expected an int or one temporal '
                    f"kernel per block of {name} ({num_blocks} blocks), got {len(value)}"
                )
            per_block = list(value)
        else:
            per_block = [value] * num_blocks
        for index, time in enumerate(per_block):
            times[f"{name}.{index}.conv1"] = _checked_time(f'temporal_kernels["{name}"]', time)
    return times


def _checked_time(where: str, time) -> int:
    if isinstance(time, bool) or not isinstance(time, numbers.Integral) or time < 1 or time % 2 == 0:
        raise UserError(
            f"inflate_resnet {where}={time!r}: expected an odd integer >= 1 (1, 3, 5, ...), or for a stage a "
            f"sequence of them, one per block: padding t // 2 keeps the clip length only for an odd t"
        )
    return int(time)


def _inflate_children(module: nn.Module, times: Dict[str, int], prefix: str) -> set:
    """Inflate, in place, every conv and plain BatchNorm2d under ``module``, whose name in the
    ResNet is ``prefix`` (ending with "." unless empty). Returns the names of the convs that
    ``times`` names and that were inflated."""
    done = set()
    for name, child in list(module.named_children()):
        path = prefix + name
        if type(child) is nn.BatchNorm2d:
            setattr(module, name, _batchnorm_3d(child))
            continue
        if isinstance(child, nn.Conv2d):
            child = inflate_conv(child, times.get(path, NO_TEMPORAL_EXTENT))
            setattr(module, name, child)
            done.add(path)
        done |= _inflate_children(child, times, path + ".")
    return done


def _batchnorm_3d(bn: nn.BatchNorm2d) -> BatchNorm:
    """``bn`` as the registered BatchNorm, which takes clips, holding the very same parameters and
    buffers, in the same mode: the two differ only in the input rank they accept. (Still a
    BatchNorm2d, so ``convert_frozen_batchnorm`` and ``ResNet.freeze`` treat it as before.)"""
    bn3d = BatchNorm(
        bn.num_features, eps=bn.eps, momentum=bn.momentum, affine=bn.affine, track_running_stats=bn.track_running_stats
    )
    for name, parameter in bn.named_parameters(recurse=False):
        setattr(bn3d, name, parameter)
    for name, buffer in bn.named_buffers(recurse=False):
        setattr(bn3d, name, buffer)
    return bn3d.train(bn.training)
