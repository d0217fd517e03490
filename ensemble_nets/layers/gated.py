# SPDX-License-Identifier: MIT
"""Gated deep linear networks (GDLN; Saxe, Sodhani & Lewallen, ICML 2022, arXiv 2207.10430).

A GDLN is a directed acyclic graph of linear layers. Nodes ``v`` carry a
width; edges ``e: u -> v`` carry a weight ``W_e`` of shape ``(n_v, n_u)``
(``nn.Linear`` layout). Node gates ``g_v(x)`` and edge gates ``g_e(x)`` are
supplied with the data, per example, and are never learned::

    h_v = g_v x_v                                  (input node: no incoming edge)
    h_v = g_v sum_{e: u -> v} g_e W_e h_u           (every other node)

Output nodes (no outgoing edge) give the prediction ``yhat_v = h_v``. The
loss is the squared error of the gated targets, averaged over the ``P``
examples and summed over output units (DESIGN.md 4.3)::

    L = (1/P) sum_p sum_{v in out} || g_v(p) y_v(p) - yhat_v(p) ||^2

Pathway view: a pathway ``p`` is a chain of edges from an
input node to an output node; its map is ``W_p = W_{e_L} ... W_{e_1}`` and
its gate ``g_p`` the product of every node and edge gate on it. Then
``yhat_v = sum_{p -> v} g_p W_p x_{in(p)}`` and the gradient of an edge is a
sum over the pathways through it, each a deep linear network on its own
effective data set::

    dL/dW_e = -2 sum_{p ∋ e} W_{>e}^T ( Sigma_yx^p - sum_{p' -> v} W_{p'} Sigma_xx^{p'p} ) W_{<e}^T
    Sigma_yx^p     = < g_p g_v y_v x_{in(p)}^T >
    Sigma_xx^{p'p} = < g_p' g_p x_{in(p')} x_{in(p)}^T >

(:func:`pathway_gradient`, checked against autograd in the tests). Gates are
given as dicts ``name -> (P,)`` tensors; a missing name means gate 1.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["GatedDeepLinearNetwork", "gdln_loss", "pathway_gradient"]


class GatedDeepLinearNetwork(nn.Module):
    """A graph of linear layers with data-supplied node and edge gates.

    :param nodes: (mapping str -> int) Node names and widths.
    :param edges: (sequence of (name, source, target)) Edge names and their
        end nodes; the graph must be acyclic. The weight of edge ``name`` is
        ``self.weight(name)``, shape ``(nodes[target], nodes[source])``.
    :param dtype: (torch.dtype, optional) Weight dtype (default float32).

    Weights start at zero; initialise them with ``torch.nn.init`` on
    :meth:`weight` or through a builder such as
    :func:`ensemble_nets.models.routing.routing_network`.
    """

    def __init__(self, nodes: Mapping[str, int], edges: Sequence[tuple[str, str, str]], *,
                 dtype: torch.dtype = torch.float32):
        super().__init__()
        self.nodes = dict(nodes)
        for name, width in self.nodes.items():
            if int(width) < 1:
                raise ValueError(f"node {name!r} has width {width}; widths must be positive integers")
        self.edges: dict[str, tuple[str, str]] = {}
        for name, src, dst in edges:
            for end in (src, dst):
                if end not in self.nodes:
                    raise ValueError(f"edge {name!r} names node {end!r}, which is not in nodes {sorted(self.nodes)}")
            if name in self.edges:
                raise ValueError(f"edge name {name!r} is used twice; edge names must be unique")
            self.edges[name] = (src, dst)
        self.order = self._topological_order()
        self.weights = nn.ParameterDict({
            name: nn.Parameter(torch.zeros(self.nodes[dst], self.nodes[src], dtype=dtype))
            for name, (src, dst) in self.edges.items()})
        self.input_nodes = [v for v in self.order if not any(d == v for _, d in self.edges.values())]
        self.output_nodes = [v for v in self.order if not any(s == v for s, _ in self.edges.values())]

    def _topological_order(self) -> list[str]:
        indegree = {v: 0 for v in self.nodes}
        for _, dst in self.edges.values():
            indegree[dst] += 1
        ready = [v for v in self.nodes if indegree[v] == 0]
        order = []
        while ready:
            v = ready.pop(0)
            order.append(v)
            for src, dst in self.edges.values():
                if src == v:
                    indegree[dst] -= 1
                    if indegree[dst] == 0:
                        ready.append(dst)
        if len(order) != len(self.nodes):
            raise ValueError("edges form a cycle; a gated deep linear network must be a directed acyclic graph")
        return order

    def weight(self, edge: str) -> Tensor:
        """The weight ``W_e`` of ``edge``, shape ``(n_target, n_source)``."""
        if edge not in self.weights:
            raise ValueError(f"unknown edge {edge!r}; edges are {list(self.edges)}")
        return self.weights[edge]

    def forward(self, inputs: Mapping[str, Tensor], node_gates: Mapping[str, Tensor] | None = None,
                edge_gates: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
        """Outputs ``{v: (P, n_v)}`` of every output node for inputs ``{u: (P, n_u)}`` of every input node."""
        node_gates, edge_gates = node_gates or {}, edge_gates or {}
        missing = [v for v in self.input_nodes if v not in inputs]
        if missing:
            raise ValueError(f"inputs lack input nodes {missing}; give a (P, width) tensor for each of "
                             f"{self.input_nodes}")
        h: dict[str, Tensor] = {}
        for v in self.order:
            if v in self.input_nodes:
                value = inputs[v]
            else:
                value = 0
                for name, (src, dst) in self.edges.items():
                    if dst == v:
                        term = h[src] @ self.weights[name].T  # (P, n_src) @ (n_src, n_v) -> (P, n_v)
                        if name in edge_gates:
                            term = edge_gates[name][:, None] * term
                        value = value + term
            h[v] = node_gates[v][:, None] * value if v in node_gates else value
        return {v: h[v] for v in self.output_nodes}

    def pathways(self) -> list[list[str]]:
        """Every pathway: a list of edge names from an input node to an output node."""
        paths: list[list[str]] = []

        def extend(node: str, prefix: list[str]) -> None:
            if node in self.output_nodes:
                paths.append(prefix)
                return
            for name, (src, dst) in self.edges.items():
                if src == node:
                    extend(dst, prefix + [name])

        for v in self.input_nodes:
            extend(v, [])
        return paths

    def pathway_map(self, path: Sequence[str]) -> Tensor:
        """``W_p = W_{e_L} ... W_{e_1}`` for a pathway given as its edge names (input side first)."""
        src = self.edges[path[0]][0]
        out = torch.eye(self.nodes[src], dtype=self.weights[path[0]].dtype, device=self.weights[path[0]].device)
        for name in path:
            out = self.weights[name] @ out
        return out

    def pathway_gate(self, path: Sequence[str], node_gates: Mapping[str, Tensor],
                     edge_gates: Mapping[str, Tensor], n_examples: int) -> Tensor:
        """``g_p``: the product of all node and edge gates on ``path``, shape ``(P,)``."""
        gate = torch.ones(n_examples, dtype=self.weights[path[0]].dtype, device=self.weights[path[0]].device)
        visited = [self.edges[path[0]][0]] + [self.edges[name][1] for name in path]
        for v in visited:
            if v in node_gates:
                gate = gate * node_gates[v]
        for name in path:
            if name in edge_gates:
                gate = gate * edge_gates[name]
        return gate


def gdln_loss(outputs: Mapping[str, Tensor], targets: Mapping[str, Tensor],
              node_gates: Mapping[str, Tensor] | None = None) -> Tensor:
    """``L = (1/P) sum_p sum_v || g_v y_v - yhat_v ||^2`` over the output nodes in ``outputs``."""
    node_gates = node_gates or {}
    total = 0
    for v, yhat in outputs.items():
        y = targets[v]
        if v in node_gates:
            y = node_gates[v][:, None] * y
        total = total + ((y - yhat) ** 2).sum()
    n_examples = next(iter(outputs.values())).shape[0]
    return total / n_examples


def pathway_gradient(net: GatedDeepLinearNetwork, edge: str, inputs: Mapping[str, Tensor],
                     targets: Mapping[str, Tensor], node_gates: Mapping[str, Tensor] | None = None,
                     edge_gates: Mapping[str, Tensor] | None = None) -> Tensor:
    """``dL/dW_edge`` of :func:`gdln_loss` as the sum over the pathways through ``edge`` (module docstring).

    Each pathway contributes the gradient of a deep linear network trained on
    its own effective data set ``(Sigma_yx^p, Sigma_xx^{p'p})``; no autograd is used.
    Returns a tensor shaped like ``net.weight(edge)``.
    """
    node_gates, edge_gates = node_gates or {}, edge_gates or {}
    net.weight(edge)  # validates the name
    n_examples = next(iter(inputs.values())).shape[0]
    paths = net.pathways()
    gates = [net.pathway_gate(p, node_gates, edge_gates, n_examples) for p in paths]
    grad = torch.zeros_like(net.weight(edge))
    with torch.no_grad():
        for path, g_p in zip(paths, gates):
            if edge not in path:
                continue
            k = path.index(edge)
            src, out = net.edges[path[0]][0], net.edges[path[-1]][1]
            x_p = inputs[src]
            y = targets[out] * node_gates[out][:, None] if out in node_gates else targets[out]
            sigma_yx = (g_p[:, None] * y).T @ x_p / n_examples  # (n_out, n_in(p))
            residual = sigma_yx
            for other, g_q in zip(paths, gates):
                if net.edges[other[-1]][1] != out:
                    continue
                x_q = inputs[net.edges[other[0]][0]]
                sigma_xx = (g_q[:, None] * x_q).T @ (g_p[:, None] * x_p) / n_examples  # (n_in(q), n_in(p))
                residual = residual - net.pathway_map(other) @ sigma_xx
            before = net.pathway_map(path[:k]) if k > 0 else torch.eye(x_p.shape[1], dtype=grad.dtype)
            after = net.pathway_map(path[k + 1:]) if k + 1 < len(path) else torch.eye(
                net.nodes[out], dtype=grad.dtype)
            grad = grad - 2 * after.T @ residual @ before.T
    return grad
