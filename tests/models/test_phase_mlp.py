# SPDX-License-Identifier: MIT
"""The reference phase-diagram network (issue 12 item 1): architecture, readout points, rebuild."""
import pytest
import torch
from torch import nn

from ensemble_nets.analysis.separation import class_covariances
from ensemble_nets.layers import SpikeSlabLinear, spike_slab_layers
from ensemble_nets.models import DeepMLP, PhaseMLP, build_model


def test_reference_architecture():
    net = PhaseMLP(alpha=0.2, dropout=0.1)
    assert isinstance(net.input_norm, nn.BatchNorm1d) and net.input_norm.num_features == 100
    assert len(net.blocks) == 7
    for block in net.blocks:
        linear, norm, act, drop = block
        assert isinstance(linear, nn.Linear) and (linear.in_features, linear.out_features) == (100, 100)
        assert isinstance(norm, nn.BatchNorm1d) and norm.num_features == 100
        assert isinstance(act, nn.LeakyReLU) and act.negative_slope == 0.2
        assert isinstance(drop, nn.Dropout) and drop.p == 0.1
    assert (net.readout.in_features, net.readout.out_features) == (100, 10)
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params == 2 * 100 + 7 * (100 * 100 + 100 + 2 * 100) + 100 * 10 + 10


def test_readout_points_shapes_and_values():
    net = PhaseMLP(n_in=12, n_classes=3, width=8, depth=4, alpha=0.0)
    x = torch.randn(32, 12) * 5 + 3
    with torch.no_grad():
        for _ in range(20):  # fill the BatchNorm running statistics
            net(x)
    net.eval()
    reps = net.representations(x)
    assert [name for name, _ in reps] == ["input", "block1", "block2", "block3", "block4", "logits"]
    assert [tuple(h.shape) for _, h in reps] == [(32, 12)] + [(32, 8)] * 4 + [(32, 3)]
    torch.testing.assert_close(reps[-1][1], net(x))
    # "input" is after the input BatchNorm, not the raw x
    torch.testing.assert_close(reps[0][1], net.input_norm(x))
    assert not torch.allclose(reps[0][1], x)
    assert all((h >= 0).all() for _, h in reps[1:-1])  # ReLU blocks
    # the hooks of readout_points see the same tensors as representations
    seen = {}
    handles = [module.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
               for name, module in net.readout_points]
    net(x)
    for handle in handles:
        handle.remove()
    for name, h in reps:
        torch.testing.assert_close(seen[name], h)


def test_train_mode_normalizes_input_batch_and_drops():
    net = PhaseMLP(n_in=6, width=5, depth=2, dropout=0.5).train()
    reps = dict(net.representations(torch.randn(64, 6) * 4 + 1))
    torch.testing.assert_close(reps["input"].mean(0), torch.zeros(6), atol=1e-5, rtol=0)
    assert (reps["block1"] == 0).float().mean() > 0.5  # ReLU zeros plus dropout zeros


def test_separation_readable_at_every_point():
    net = PhaseMLP(n_in=10, width=6, depth=3).eval()
    x, y = torch.randn(60, 10), torch.arange(60) % 3
    for _, h in net.representations(x):
        sigma_w, sigma_b = class_covariances(h, y)
        assert sigma_w.trace() > 0 and sigma_b.trace() > 0


def test_spike_slab_variant_and_rebuild():
    net = PhaseMLP(n_in=10, width=6, depth=2, layer="spike_slab", xi_max=0.02)
    assert len(spike_slab_layers(net)) == 3 and all(isinstance(layer, SpikeSlabLinear)
                                                    for _, layer in spike_slab_layers(net))
    rebuilt = build_model(net.model_args)
    assert isinstance(rebuilt, PhaseMLP) and rebuilt.model_args == net.model_args
    rebuilt.load_state_dict(net.state_dict())
    assert net.eval()(torch.randn(4, 10)).shape == (4, 10)


def test_bad_input_named():
    with pytest.raises(ValueError, match="alpha"):
        PhaseMLP(alpha=1.5)
    with pytest.raises(ValueError, match="dropout"):
        PhaseMLP(dropout=1.0)
    with pytest.raises(ValueError, match=r"x must be \(n, 100\)"):
        PhaseMLP()(torch.randn(4, 784))
    with pytest.raises(ValueError, match="layer_kwargs"):
        PhaseMLP(xi_max=0.1)


def test_deep_mlp_unchanged():
    net = DeepMLP(100, 10, width=16, depth=3, alpha=0.2, dropout=0.1)
    assert len(net) == 3 * 4 + 1 and net(torch.randn(5, 100)).shape == (5, 10)
    assert build_model(net.model_args).model_args == net.model_args
