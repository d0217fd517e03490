# SPDX-License-Identifier: MIT
"""Gated deep linear networks: forward pass, loss and the pathway gradient against autograd."""
import pytest
import torch

from ensemble_nets.data.routing import REFERENCE_SINGULAR_VALUES, RoutingTask, routing_batch
from ensemble_nets.layers.gated import GatedDeepLinearNetwork, gdln_loss, pathway_gradient
from ensemble_nets.models.routing import routing_network


def _random_graph(seed):
    """Two inputs, two hidden nodes (one reached by both inputs), a skip edge and two outputs."""
    gen = torch.Generator().manual_seed(seed)
    nodes = {"a": 3, "b": 2, "h1": 4, "h2": 5, "y1": 3, "y2": 2}
    edges = [("a_h1", "a", "h1"), ("b_h1", "b", "h1"), ("b_h2", "b", "h2"), ("h1_h2", "h1", "h2"),
             ("h2_y1", "h2", "y1"), ("h1_y2", "h1", "y2"), ("a_y1", "a", "y1")]
    net = GatedDeepLinearNetwork(nodes, edges, dtype=torch.float64)
    with torch.no_grad():
        for w in net.parameters():
            w.copy_(torch.randn(w.shape, generator=gen, dtype=torch.float64))
    n = 11
    inputs = {v: torch.randn(n, nodes[v], generator=gen, dtype=torch.float64) for v in ("a", "b")}
    targets = {v: torch.randn(n, nodes[v], generator=gen, dtype=torch.float64) for v in ("y1", "y2")}
    node_gates = {v: torch.rand(n, generator=gen, dtype=torch.float64) for v in ("a", "h1", "y1", "y2")}
    edge_gates = {e: (torch.rand(n, generator=gen) > 0.4).double() for e in ("b_h2", "a_y1", "h1_y2")}
    return net, inputs, targets, node_gates, edge_gates


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pathway_gradient_equals_autograd(seed):
    net, inputs, targets, node_gates, edge_gates = _random_graph(seed)
    assert len(net.pathways()) == 6
    loss = gdln_loss(net(inputs, node_gates, edge_gates), targets, node_gates)
    grads = torch.autograd.grad(loss, list(net.weights.values()))
    for (name, _), grad in zip(net.weights.items(), grads):
        path_grad = pathway_gradient(net, name, inputs, targets, node_gates, edge_gates)
        torch.testing.assert_close(path_grad, grad, rtol=1e-10, atol=1e-10)


def test_routing_pathway_gradient_equals_autograd():
    task = RoutingTask(n_domains=3, n_trained=2)
    net = routing_network(task, hidden=6, gain=0.7, seed=3, dtype=torch.float64)
    batch = routing_batch(task, "train", dtype=torch.float64)
    loss = gdln_loss(net(batch.inputs, batch.node_gates), batch.targets, batch.node_gates)
    loss.backward()
    for name in ("enc0", "hid", "dec2"):
        grad = pathway_gradient(net, name, batch.inputs, batch.targets, batch.node_gates)
        torch.testing.assert_close(grad, net.weight(name).grad, rtol=1e-10, atol=1e-10)


def test_gates_switch_pathways_off():
    net, inputs, targets, node_gates, edge_gates = _random_graph(0)
    zero = {v: torch.zeros(11, dtype=torch.float64) for v in ("y1", "y2")}
    out = net(inputs, {**node_gates, **zero}, edge_gates)
    assert all(bool((o == 0).all()) for o in out.values())
    # only the a -> y1 skip edge: y1 = W x_a
    only_skip = {"b": torch.zeros(11, dtype=torch.float64), "h1": torch.zeros(11, dtype=torch.float64)}
    out = net(inputs, only_skip)
    torch.testing.assert_close(out["y1"], inputs["a"] @ net.weight("a_y1").T)


def test_graph_validation():
    with pytest.raises(ValueError, match="cycle"):
        GatedDeepLinearNetwork({"a": 2, "b": 2}, [("ab", "a", "b"), ("ba", "b", "a")])
    with pytest.raises(ValueError, match="not in nodes"):
        GatedDeepLinearNetwork({"a": 2}, [("ab", "a", "b")])
    net, inputs, *_ = _random_graph(0)
    with pytest.raises(ValueError, match="input nodes"):
        net({"a": inputs["a"]})


def test_routing_sigma_yx_singular_values():
    task = RoutingTask()
    _, s, _ = task.svd()
    torch.testing.assert_close(s, torch.tensor(REFERENCE_SINGULAR_VALUES, dtype=torch.float64), atol=6e-3, rtol=0)
    # the per-pathway effective Sigma_yx seen by the network is Y X^T (items summed)
    batch = routing_batch(task, "train", dtype=torch.float64)
    on = batch.node_gates["in0"] * batch.node_gates["out1"]
    sigma = (on[:, None] * batch.targets["out1"]).T @ batch.inputs["in0"]
    torch.testing.assert_close(sigma, task.sigma_yx)


def test_routing_pairs_are_regular():
    task = RoutingTask()
    trained, held = task.trained_pairs(), task.held_out_pairs()
    assert len(trained) == 28 and len(held) == 21 and not set(trained) & set(held)
    for n in range(7):
        assert sum(1 for _, n2 in trained if n2 == n) == 4
