# SPDX-License-Identifier: MIT
"""Helpers shared by the tests."""
import contextlib

import pytest
import torch


@contextlib.contextmanager
def one_thread():
    """One intra-op thread inside the block: small convolutions on a shared, busy CPU run several times faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """:func:`one_thread` around every test of a module that imports this fixture."""
    with one_thread():
        yield


def make_layer(n_in=30, n_out=7, *, pi=None, m=None, xi=None, dtype=torch.float64, **kwargs):
    """A SpikeSlabLinear with chosen (or random interior) parameters."""
    from ensemble_nets.layers import SpikeSlabLinear

    layer = SpikeSlabLinear(n_in, n_out, dtype=dtype, **kwargs)
    with torch.no_grad():
        layer.pi.copy_(torch.rand(n_out, n_in, dtype=dtype) * 0.8 + 0.1 if pi is None else pi)
        layer.m.copy_(torch.randn(n_out, n_in, dtype=dtype) if m is None else m)
        layer.xi.copy_(torch.rand(n_out, n_in, dtype=dtype) * 0.5 if xi is None else xi)
    return layer


def load_script(name, folder="experiments"):
    """A script of ``experiments/`` (or ``benchmarks/``) as a module (to call its ``main(argv)`` in-process)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / folder / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_same_training(resumed, full):
    """Two TrainResults of one run (e.g. resumed against unbroken): equal metrics rows but for the timing,
    and bit-equal parameters."""
    drop = {"train_seconds"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in resumed.history] == \
           [{k: v for k, v in r.items() if k not in drop} for r in full.history]
    for a, b in zip(resumed.model.parameters(), full.model.parameters()):
        assert torch.equal(a, b)
