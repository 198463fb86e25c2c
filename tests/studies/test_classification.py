import math

import numpy as np
import pytest
import torch
from torch import nn

from gn_detection.layers import BatchNorm, BatchRenorm, GroupNorm, InstanceNorm, LayerNorm, WSConv2d
from gn_detection.studies.classification import Schedule, build_classifier, evaluate, moment_gaps, norm_has_groups


@pytest.mark.parametrize("norm, kind", [("BN", BatchNorm), ("GN", GroupNorm), ("LN", LayerNorm), ("IN", InstanceNorm),
                                        ("BRN", BatchRenorm)])
def test_classifiers_differ_only_in_their_norms(norm, kind):
    model = build_classifier(norm, in_channels=1, num_classes=10, width=64)
    norms = [m for m in model.modules() if isinstance(m, (nn.modules.batchnorm._BatchNorm, nn.GroupNorm))]
    assert len(norms) == 1 + 6 * 2 + 2 and all(type(m) is kind for m in norms)  # stem, 6 blocks, 2 shortcuts
    reference = build_classifier("GN", in_channels=1, num_classes=10, width=64)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters())
    # the paper's recipe: each block's last norm starts at zero scale, the others at one
    assert all(float(b.conv2.norm.weight.detach().abs().sum()) == 0 for s in ("res2", "res3", "res4") for b in getattr(model.backbone, s))
    assert float(model.backbone.stem.conv1.norm.weight.detach().sum()) == 64
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)


def test_group_settings_reach_every_gn_layer_and_ws_its_convs():
    fixed_g = build_classifier("GN", in_channels=3, num_classes=2, width=64, groups=4)
    assert {m.num_groups for m in fixed_g.modules() if isinstance(m, GroupNorm)} == {4}
    per_group = build_classifier("GN+WS", in_channels=3, num_classes=2, width=64, channels_per_group=16)
    gns = [m for m in per_group.modules() if isinstance(m, GroupNorm)]
    assert {(m.num_channels, m.num_groups) for m in gns} == {(64, 4), (128, 8), (256, 16)}
    assert all(isinstance(m, WSConv2d) for m in per_group.modules() if isinstance(m, nn.Conv2d))
    assert norm_has_groups("GN+WS") and norm_has_groups("EvoNormS0") and not norm_has_groups("LN")
    assert not norm_has_groups("BN")


def test_schedule_counts_full_batches_of_epochs_or_fixed_steps():
    assert Schedule(epochs=2).steps(100, 32) == 6 and Schedule(epochs=0.5).steps(100, 2) == 25
    assert Schedule(iterations=7).steps(100, 32) == 7
    with pytest.raises(ValueError, match="exactly one"):
        Schedule(epochs=1, iterations=3)


def _bn_net(channels=3):
    net = nn.Sequential(nn.BatchNorm2d(channels), nn.Flatten(), nn.Linear(channels * 4, 2))
    g = torch.Generator().manual_seed(0)
    net[0].running_mean.copy_(torch.randn(channels, generator=g))
    net[0].running_var.copy_(torch.rand(channels, generator=g) + 0.5)
    return net


def test_moment_gaps_are_batch_renorms_d_and_log_r_against_a_numpy_recomputation():
    net, images = _bn_net(), torch.randn(12, 3, 2, 2, generator=torch.Generator().manual_seed(1)) * 2 + 1
    gaps = moment_gaps(net, images, batch=4)
    x = images.numpy().reshape(3, 4, 3, 4).transpose(0, 2, 1, 3).reshape(3, 3, 16)  # batch, channel, values
    sigma = np.sqrt(net[0].running_var.numpy() + 1e-5)
    d = np.abs((x.mean(2) - net[0].running_mean.numpy()) / sigma).mean()
    log_r = np.abs(np.log(np.sqrt(x.var(2) + 1e-5) / sigma)).mean()
    assert gaps["d"] == pytest.approx(d, rel=1e-5) and gaps["log_r"] == pytest.approx(log_r, rel=1e-5)


def test_error_with_batch_statistics_leaves_the_running_moments_alone():
    net = _bn_net()
    images, labels = torch.randn(16, 3, 2, 2), torch.randint(0, 2, (16,))
    before = (net[0].running_mean.clone(), net[0].running_var.clone(), int(net[0].num_batches_tracked))
    batch_error = evaluate(net, images, labels, batch=4)
    assert torch.equal(net[0].running_mean, before[0]) and torch.equal(net[0].running_var, before[1])
    assert int(net[0].num_batches_tracked) == before[2]
    assert not net.training
    with torch.no_grad():
        net.train()
        expected = torch.cat([net(c).argmax(1) for c in images.split(4)])
    assert batch_error == pytest.approx(float((expected != labels).float().mean()) * 100)
    assert math.isfinite(evaluate(net, images, labels))
