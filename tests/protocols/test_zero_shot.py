# SPDX-License-Identifier: MIT
"""Zero-shot routing against init gain (issue 12 item 6b), on synthetic class-structured images."""
from types import SimpleNamespace

import pytest
import torch

from ensemble_nets.data.domains import domain_batch, domain_statistics
from ensemble_nets.layers.gated import gdln_loss
from ensemble_nets.protocols.zero_shot import ZeroShotConfig, moment_loss, run_zero_shot, zero_shot_network


@pytest.fixture(scope="module")
def blobs():
    """10 classes of 784-pixel images: a class prototype (smooth at 7x7) plus pixel noise."""
    gen = torch.Generator().manual_seed(0)
    protos = torch.nn.functional.interpolate(torch.rand(10, 1, 7, 7, generator=gen), scale_factor=4).reshape(10, 784)

    def draw(n):
        y = torch.arange(n) % 10
        return protos[y] + 0.3 * torch.randn(n, 784, generator=gen), y

    (x, y), (x_test, y_test) = draw(400), draw(400)
    return SimpleNamespace(x_train=x, y_train=y, x_test=x_test, y_test=y_test)


def test_moment_loss_is_the_gated_loss():
    cfg = ZeroShotConfig(n_domains=3, n_trained=1, hidden=6, image_size=7, gain=0.7)
    net = zero_shot_network(cfg).double()
    x, y = torch.randn(12, 49, dtype=torch.float64), torch.randint(0, 10, (12,))
    batch = domain_batch(cfg.task, x, y)
    direct = gdln_loss(net(batch.inputs, batch.node_gates), batch.targets, batch.node_gates)
    torch.testing.assert_close(moment_loss(net, domain_statistics(cfg.task, x, y)), direct)


def test_small_gain_generalizes_zero_shot_large_gain_does_not(blobs):
    common = dict(n_domains=4, n_trained=2, hidden=16, image_size=7, n_steps=300, n_train=400)
    rich = run_zero_shot(ZeroShotConfig(gain=0.1, **common), blobs)
    lazy = run_zero_shot(ZeroShotConfig(gain=2.0, **common), blobs)
    assert rich["acc_trained"] > 0.9 and lazy["acc_trained"] > 0.9
    assert rich["acc_zero_shot"] > 0.9
    assert lazy["acc_zero_shot"] < 0.5


def test_bad_config():
    with pytest.raises(ValueError, match="image_size"):
        ZeroShotConfig(image_size=5)
    with pytest.raises(ValueError, match="gain"):
        ZeroShotConfig(gain=0.0)
