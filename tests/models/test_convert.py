# SPDX-License-Identifier: MIT
"""to_ensemble / sample_network / mean_network on a model with a residual block, BatchNorm and pooling."""
import pytest
import torch
from torch import nn

import ensemble_nets as en
from ensemble_nets.layers import SpikeSlabConv2d, SpikeSlabLinear, is_spike_slab, spike_slab_layers
from ensemble_nets.models import MLP, EnsembleMLP, mean_network, sample_network, to_ensemble
from tests.common import _one_thread  # noqa: F401  (autouse: one intra-op thread for this module)


class Residual(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)

    def forward(self, x):
        return torch.relu(x + self.conv2(torch.relu(self.bn(self.conv1(x)))))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block = Residual(4)
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 4, 10))

    def forward(self, x):
        return self.head(self.pool(self.block(torch.relu(self.stem(x)))))


@pytest.fixture
def net():
    model = Net()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        for _ in range(3):
            model(torch.randn(16, 1, 8, 8))
    return model.eval()


def test_from_weights_reproduces_the_network(net):
    x = torch.randn(32, 1, 8, 8)
    ensemble = to_ensemble(net, init="from_weights")
    kinds = {name: type(module) for name, module in ensemble.named_modules()}
    assert kinds["stem"] is SpikeSlabConv2d and kinds["block.conv2"] is SpikeSlabConv2d
    assert kinds["head.1"] is SpikeSlabLinear and kinds["block.bn"] is nn.BatchNorm2d
    assert ensemble.block.conv2.bias is None and ensemble.stem.bias is not None
    assert (mean_network(ensemble)(x) - net(x)).abs().max() <= 1e-5
    for _, layer in spike_slab_layers(ensemble):
        layer.eval_mode = "mean"
    assert (ensemble.eval()(x) - net(x)).abs().max() <= 1e-5
    # xi = 0, pi = 0: every sampled network is the original too
    assert (sample_network(ensemble)(x) - net(x)).abs().max() <= 1e-5
    assert ensemble.block.bn is not net.block.bn and not any(is_spike_slab(m) for m in net.modules())


def test_xi_init_makes_members_differ_and_reference_init_is_fresh(net):
    x = torch.randn(8, 1, 8, 8)
    ensemble = to_ensemble(net, init="from_weights", xi_init=0.5)
    assert all((layer.xi == 0.5).all() and (layer.pi == 0).all() for _, layer in spike_slab_layers(ensemble))
    assert not torch.allclose(sample_network(ensemble)(x), sample_network(ensemble)(x))
    fresh = to_ensemble(net, init="reference", xi_max=0.02, pi_init=0.1)
    stem = fresh.stem
    assert (stem.pi == 0.1).all() and stem.xi.max() <= 0.02 and not torch.allclose(stem.m, net.stem.weight * 3)


def test_sample_network_is_plain_and_computes_its_draw(net):
    ensemble = to_ensemble(net, init="from_weights", xi_init=0.3)
    with torch.no_grad():
        ensemble.stem.pi.fill_(0.4)
    x = torch.randn(8, 1, 8, 8)
    member = sample_network(ensemble, torch.Generator().manual_seed(3))
    assert not any(is_spike_slab(m) for m in member.modules())
    assert type(member.stem) is nn.Conv2d and type(member.head[1]) is nn.Linear and type(member) is Net
    # the same draw, applied by the ensemble's own sample mode
    for _, layer in spike_slab_layers(ensemble):
        layer.eval_mode = "sample"
    ensemble.eval()
    generator = torch.Generator().manual_seed(3)
    for _, layer in spike_slab_layers(ensemble):
        layer.resample(generator)
    assert torch.allclose(member(x), ensemble(x), atol=1e-5)
    stem_draw = torch.Generator().manual_seed(3)
    drawn = ensemble.stem.sample_weight(stem_draw)
    assert torch.allclose(member.stem.weight, drawn / 3.0)  # fan_in = 1 * 3 * 3
    assert (member.stem.weight == 0).float().mean() > 0.2  # absent kernel entries are exact zeros


def test_ensemble_mlp_delegates_and_stays_sequential():
    model = EnsembleMLP((12, 7, 3))
    member = model.sample_network(torch.Generator().manual_seed(0))
    assert type(member) is nn.Sequential and [type(m) for m in member] == [nn.Linear, nn.ReLU, nn.Linear]
    same = en.sample_network(model, torch.Generator().manual_seed(0))
    assert torch.equal(member[0].weight, same[0].weight)
    assert type(en.mean_network(model)) is nn.Sequential
    state = torch.get_rng_state()
    model.mean_network(), model.sample_network(torch.Generator().manual_seed(1))
    assert torch.equal(torch.get_rng_state(), state)


def test_plain_mlp_and_shared_layers_convert():
    plain = MLP((10, 6, 3))
    x = torch.randn(4, 10)
    ensemble = to_ensemble(plain, init="from_weights")  # ScaledLinear: already on the scale of m
    assert torch.allclose(mean_network(ensemble)(x), plain(x), atol=1e-6)
    shared = nn.Linear(5, 5)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    converted = to_ensemble(model, init="from_weights")
    assert converted[0] is converted[2] and isinstance(converted[0], SpikeSlabLinear)
    assert len(spike_slab_layers(converted)) == 1


def test_exclude_and_layer_types(net):
    ensemble = to_ensemble(net, exclude=["head"])
    assert type(ensemble.head[1]) is nn.Linear and type(ensemble.stem) is SpikeSlabConv2d
    linear_only = to_ensemble(net, layer_types=[nn.Linear])
    assert type(linear_only.stem) is nn.Conv2d and type(linear_only.head[1]) is SpikeSlabLinear


def test_bad_input_raises_clear_errors(net):
    with pytest.raises(ValueError, match="nothing to convert"):
        to_ensemble(nn.Sequential(nn.ReLU(), nn.MaxPool2d(2)))
    with pytest.raises(ValueError, match="nothing to convert"):
        to_ensemble(net, layer_types=[nn.Conv1d])
    with pytest.raises(ValueError, match=r"exclude names \['hed'\] match no module"):
        to_ensemble(net, exclude=["hed"])
    with pytest.raises(ValueError, match="layer_types must be chosen from"):
        to_ensemble(net, layer_types=[nn.Conv3d])
    with pytest.raises(ValueError, match="init must be one of"):
        to_ensemble(net, init="kaiming")
    with pytest.raises(ValueError, match="xi_init"):
        to_ensemble(net, init="from_weights", xi_init=-1.0)
    attention = nn.Sequential(nn.Linear(8, 8))
    attention.attn = nn.MultiheadAttention(8, 2)
    with pytest.raises(TypeError, match=r"attn.out_proj \(NonDynamicallyQuantizableLinear\)"):
        to_ensemble(attention)
    assert isinstance(to_ensemble(attention, exclude=["attn"])[0], SpikeSlabLinear)
    with pytest.raises(ValueError, match="no spike-and-slab layers"):
        sample_network(net)
    with pytest.raises(ValueError, match="no spike-and-slab layers"):
        mean_network(net)


def test_plain_cnn_converts_exactly_and_ensemble_cnn_members_are_plain():
    from ensemble_nets.models import CNN, EnsembleCNN

    plain = CNN(channels=(2, 3), hidden=5)  # ScaledConv2d / ScaledLinear: already on the scale of m
    x = torch.rand(4, 1, 28, 28)
    ensemble = to_ensemble(plain, init="from_weights")
    assert isinstance(ensemble[0], SpikeSlabConv2d) and (mean_network(ensemble)(x) - plain(x)).abs().max() <= 1e-5
    model = EnsembleCNN(channels=(2, 3), hidden=5)
    member = model.sample_network(torch.Generator().manual_seed(0))
    assert type(member) is nn.Sequential and type(member[0]) is nn.Conv2d and type(member[7]) is nn.Linear
    model.eval_mode = "mean"
    assert torch.allclose(model.eval()(x), model.mean_network()(x), atol=1e-5)
