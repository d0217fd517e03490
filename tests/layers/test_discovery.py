# SPDX-License-Identifier: MIT
"""``spike_slab_layers``: the one place that finds the spike-and-slab layers of a model."""
from torch import nn

import ensemble_nets as en
from ensemble_nets.layers import ScaledLinear, SpikeSlabLinear, is_spike_slab, spike_slab_layers


def test_finds_layers_in_order_with_their_module_names():
    model = nn.Sequential(SpikeSlabLinear(6, 5), nn.ReLU(), ScaledLinear(5, 4), nn.Sequential(SpikeSlabLinear(4, 3)))
    found = spike_slab_layers(model)
    assert [name for name, _ in found] == ["0", "3.0"]
    assert [layer for _, layer in found] == [model[0], model[3][0]]


def test_a_bare_layer_is_its_own_only_layer():
    layer = SpikeSlabLinear(3, 2)
    assert spike_slab_layers(layer) == [("", layer)]


def test_plain_modules_are_not_spike_slab():
    assert not is_spike_slab(nn.Linear(3, 2))
    assert not is_spike_slab(ScaledLinear(3, 2))
    assert spike_slab_layers(en.MLP((4, 3, 2))) == []
    assert len(spike_slab_layers(en.EnsembleMLP((4, 3, 2)))) == 2
