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


def _filled(net, x):
    with torch.no_grad():
        for _ in range(3):  # non-trivial BatchNorm running statistics
            net(x)
    return net


@pytest.mark.parametrize("train", [True, False])
def test_stacked_forward_and_gradients_equal_phase_mlp(train):
    from ensemble_nets.models.deep import StackedPhaseMLP

    torch.manual_seed(0)
    nets = [PhaseMLP(n_in=12, n_classes=4, width=8, depth=3, alpha=a) for a in (0.0, 0.3, 1.0)]
    x = torch.randn(3, 20, 12) * 2 + 1
    for k, net in enumerate(nets):
        _filled(net, x[k])
    stack = StackedPhaseMLP(nets)
    for net in nets:
        net.train(train)
    stack.train(train)
    out = stack(x)  # (3, 20, 4)
    ref = torch.stack([net(x[k]) for k, net in enumerate(nets)])
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    out.pow(2).sum().backward()
    ref.pow(2).sum().backward()
    for k, net in enumerate(nets):
        torch.testing.assert_close(stack.weight[0].grad[k], net.blocks[0][0].weight.grad, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(stack.norm_weight[0].grad[k], net.input_norm.weight.grad, atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(stack.bias[-1].grad[k], net.readout.bias.grad, atol=1e-4, rtol=1e-4)
    if train:  # running statistics advanced as torch's BatchNorm advances them
        for k, net in enumerate(nets):
            torch.testing.assert_close(stack.running_var1[k], net.blocks[0][1].running_var)
            torch.testing.assert_close(stack.running_mean0[k], net.input_norm.running_mean)


def test_stacked_round_trip_and_dropout_masks():
    from ensemble_nets.models.deep import StackedPhaseMLP

    nets = [PhaseMLP(n_in=6, width=5, depth=2, alpha=0.2, dropout=p) for p in (0.0, 0.5)]
    stack = StackedPhaseMLP(nets)
    back = stack.to_models()
    assert [b.model_args for b in back] == [n.model_args for n in nets]
    for a, b in zip(nets, back):
        for (name, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
            if "num_batches" not in name:
                torch.testing.assert_close(p, q)
    x = torch.randn(2, 7, 6)
    masks = torch.zeros(2, 2, 7, 5)  # every unit dropped in every block: the logits are the readout bias
    out = stack.train()(x, masks)
    torch.testing.assert_close(out, stack.bias[-1][:, None].expand(2, 7, 10))


def test_stacked_refuses_mixed_shapes_and_ensembles():
    from ensemble_nets.models.deep import StackedPhaseMLP

    with pytest.raises(ValueError, match="one shape"):
        StackedPhaseMLP([PhaseMLP(width=8), PhaseMLP(width=9)])
    with pytest.raises(ValueError, match="spike-and-slab"):
        StackedPhaseMLP([PhaseMLP(layer="spike_slab")])
    with pytest.raises(ValueError, match="x must be"):
        StackedPhaseMLP([PhaseMLP()])(torch.randn(2, 3, 100))
