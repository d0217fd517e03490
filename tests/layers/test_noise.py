# SPDX-License-Identifier: MIT
"""The mean-field noise sources: the counter generator's law, its C kernel against its torch version, the
layers and train_many with noise="counter"."""
import math
import os
import subprocess
import sys

import pytest
import torch

import ensemble_nets as en
from ensemble_nets.layers import NOISE_SOURCES, SpikeSlabConv2d, SpikeSlabLinear, noise
from tests.common import _one_thread, make_layer  # noqa: F401  (autouse: one intra-op thread for this module)

HAS_COMPILER = noise._compiler() is not None


@pytest.fixture
def kernel():
    """The C kernel; where a compiler exists it must build (a failure is a test failure, not a skip)."""
    if not HAS_COMPILER:
        pytest.skip("no C compiler: the counter noise runs as torch operations (tested below)")
    lib = noise._kernel()
    assert lib is not None, "a C compiler was found but the counter-noise kernel did not build or load"
    return lib


@pytest.fixture
def no_kernel(monkeypatch):
    """The torch-operations version only, as on a machine without a compiler."""
    monkeypatch.setattr(noise, "_kernel_state", {"lib": None})


def test_counter_normal_is_standard_normal():
    z = noise.counter_normal(1_000_000, 12345, dtype=torch.float64)
    n = z.numel()
    assert abs(z.mean().item()) < 5 / math.sqrt(n)
    assert abs(z.var().item() - 1) < 5 * math.sqrt(2 / n)
    assert abs(((z - z.mean()) ** 3).mean().item()) < 5 * math.sqrt(15 / n)
    assert abs(((z - z.mean()) ** 4).mean().item() - 3) < 5 * math.sqrt(96 / n)
    ks = (torch.special.ndtr(z.sort().values) - torch.arange(1, n + 1, dtype=torch.float64) / n).abs().max()
    assert ks < 1.63 / math.sqrt(n) * 1.5  # the 1% Kolmogorov-Smirnov value, with room
    # cosine and sine halves are uncorrelated with each other and along the stream
    half = n // 2
    assert abs(torch.corrcoef(torch.stack([z[:half], z[half:]]))[0, 1].item()) < 5 / math.sqrt(half)
    assert abs(torch.corrcoef(torch.stack([z[:-1], z[1:]]))[0, 1].item()) < 5 / math.sqrt(n)


def test_counter_normal_keys_give_independent_streams():
    a, b = noise.counter_normal(100_000, 1), noise.counter_normal(100_000, 2)
    assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1].item()) < 5 / math.sqrt(100_000)
    assert torch.equal(noise.counter_normal(1001, 7)[:500], noise.counter_normal(1001, 7)[:500])
    with pytest.raises(ValueError, match="key must be in"):
        noise.counter_normal(10, -1)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 1023, 1024, 1025, 100_001])
def test_kernel_draws_the_counter_stream(kernel, n):
    torch.manual_seed(3)
    drawn = noise.standard_normal(torch.empty(n), "counter")
    torch.manual_seed(3)
    expected = noise.counter_normal(n, noise.draw_key())
    assert drawn.shape == (n,)
    assert torch.allclose(drawn, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_kernel_noisy_output_is_the_formula(kernel, threads):
    mean, s = torch.randn(37, 29), torch.rand(37, 29)
    with_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(5)
        h, eps_over_delta = noise.noisy_output_(mean.clone(), s.clone(), floor=1e-3, scale=0.3, noise="counter")
    finally:
        torch.set_num_threads(with_threads)
    torch.manual_seed(5)
    eps = noise.counter_normal(mean.numel(), noise.draw_key()).view(mean.shape)
    delta = (s + 1e-3).sqrt()
    assert torch.allclose(h, (mean + delta * eps) * 0.3, rtol=1e-5, atol=1e-5)
    assert torch.allclose(eps_over_delta, eps / delta, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n", [64, 1000])
def test_zero_variance_gives_inf_not_nan(n):
    """eps / sqrt(0) is +-inf on both paths (a reciprocal-square-root approximation would give NaN)."""
    for source in NOISE_SOURCES:
        torch.manual_seed(0)
        h, ratio = noise.noisy_output_(torch.ones(n), torch.zeros(n), noise=source)
        assert torch.equal(h, torch.ones(n))
        assert not ratio.isnan().any() and ratio.isinf().sum() >= n - 1, source


def test_kernel_writes_are_seen_by_autograd(kernel):
    a = torch.rand(10, requires_grad=True)
    mean = a * 2
    loss = (mean * mean).sum()
    with torch.no_grad():
        noise.noisy_output_(mean, torch.rand(10), noise="counter")
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_without_kernel_the_same_numbers(no_kernel):
    torch.manual_seed(4)
    drawn = noise.standard_normal(torch.empty(3, 5), "counter")
    torch.manual_seed(4)
    assert torch.allclose(drawn.flatten(), noise.counter_normal(15, noise.draw_key()))
    mean, s = torch.randn(4, 6, dtype=torch.float64), torch.rand(4, 6, dtype=torch.float64)
    torch.manual_seed(4)
    h, ratio = noise.noisy_output_(mean.clone(), s.clone(), floor=0.1, noise="counter")
    torch.manual_seed(4)
    eps = noise.counter_normal(24, noise.draw_key(), dtype=torch.float64).view(4, 6)
    assert torch.allclose(h, mean + (s + 0.1).sqrt() * eps) and torch.allclose(ratio, eps / (s + 0.1).sqrt())


def test_torch_source_is_torch_randn():
    torch.manual_seed(2)
    drawn = noise.standard_normal(torch.empty(6, 4))
    torch.manual_seed(2)
    assert torch.equal(drawn, torch.randn(6, 4))


def test_draws_follow_the_seed_and_the_given_generator():
    torch.manual_seed(9)
    a, b = noise.standard_normal(torch.empty(500), "counter"), noise.standard_normal(torch.empty(500), "counter")
    torch.manual_seed(9)
    assert torch.equal(a, noise.standard_normal(torch.empty(500), "counter"))
    assert not torch.allclose(a, b)
    g = torch.Generator().manual_seed(1)
    c = noise.standard_normal(torch.empty(500), "counter", generator=g)
    again = noise.standard_normal(torch.empty(500), "counter", generator=torch.Generator().manual_seed(1))
    assert torch.equal(c, again)


def test_a_corrupt_cached_kernel_is_rebuilt(tmp_path, monkeypatch):
    if not HAS_COMPILER:
        pytest.skip("no C compiler")
    monkeypatch.setenv("ENSEMBLE_NETS_CACHE", str(tmp_path))
    monkeypatch.setattr(noise, "_kernel_state", {})
    assert noise._kernel() is not None  # built into the fresh cache
    (built,) = (tmp_path / "kernels").glob("counter_noise-*.so")
    built.unlink()  # a new file, as a crash would leave it (rewriting the loaded one in place would crash us)
    built.write_bytes(b"not a library")
    # a fresh process (this one would get the library it already loaded from that path)
    check = ("import warnings; warnings.simplefilter('error'); from ensemble_nets.layers import noise; "
             "assert noise._kernel() is not None")
    subprocess.run([sys.executable, "-c", check], check=True, env={**os.environ, "ENSEMBLE_NETS_CACHE": str(tmp_path)})
    assert built.stat().st_size > 1000


def test_bad_source_and_shapes_are_named():
    with pytest.raises(ValueError, match="noise must be one of"):
        SpikeSlabLinear(3, 2, noise="fast")
    layer = SpikeSlabLinear(3, 2)
    with pytest.raises(ValueError, match="noise must be one of"):
        layer.noise = "numpy"
    with pytest.raises(ValueError, match="one shape"):
        noise.noisy_output_(torch.zeros(2, 3), torch.zeros(3, 2))
    assert NOISE_SOURCES == ("torch", "counter")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_linear_layer_with_counter_noise_has_the_moments(dtype):
    layer = make_layer(25, 4, floor=0.0, noise="counter", dtype=dtype).train()
    x = torch.rand(1, 25, dtype=dtype).expand(40000, 25)
    h = layer(x).double()
    mean, var = (t.double() for t in layer.moments(x[:1]))
    assert torch.allclose(h.mean(0), mean[0], atol=5 * (var[0] / 40000).sqrt().max().item())
    assert torch.allclose(h.var(0), var[0], rtol=0.05)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_manual_gbp_with_counter_noise_equals_autograd(dtype):
    """The manual pass draws its noise inside (the kernel, for float32); autograd draws it first: same key,
    same numbers, same gradients."""
    layer = make_layer(12, 5, noise="counter", dtype=dtype)
    x = torch.randn(6, 12, dtype=dtype, requires_grad=True)
    target = torch.randn(6, 5, dtype=dtype)
    results = []
    for gbp in ("manual", "autograd"):
        layer.gbp = gbp
        torch.manual_seed(11)
        h = layer(x)
        results.append((h, torch.autograd.grad(((h - target) ** 2).sum(), [x, layer.pi, layer.m, layer.xi])))
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)
    assert torch.allclose(results[0][0], results[1][0], **tol)
    for a, b in zip(results[0][1], results[1][1]):
        assert torch.allclose(a, b, **tol)


def test_conv_layer_with_counter_noise_equals_autograd_and_has_the_moments():
    layer = SpikeSlabConv2d(2, 3, 3, padding=1, noise="counter", m_std=1.0, xi_max=0.5)
    x = torch.rand(4, 2, 6, 6, requires_grad=True)
    results = []
    for gbp in ("manual", "autograd"):
        layer.gbp = gbp
        torch.manual_seed(12)
        h = layer(x)
        results.append((h, torch.autograd.grad(h.square().sum(), [x, layer.pi, layer.m, layer.xi])))
    assert torch.allclose(results[0][0], results[1][0], rtol=1e-4, atol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4)
    layer.gbp = "manual"
    with torch.no_grad():
        xs = x.detach()[:1].expand(20000, -1, -1, -1)
        h = layer(xs).double()
        mean, var = (t.double() for t in layer.moments(xs[:1]))
    assert torch.allclose(h.mean(0), mean[0], atol=5 * (var[0] / 20000).sqrt().max().item() + 1e-6)
    assert torch.allclose(h.var(0), var[0], rtol=0.06, atol=1e-6)


def test_train_many_with_counter_noise_equals_train():
    """float32, so the kernel draws in both (run k's key from run k's generator): the same runs to rounding."""
    data = en.load_dataset("mnist5k", None, download=False).subset(n_train=300, n_test=100)
    configs = [en.TrainConfig(seed=s, batch_size=100, lr=0.02, epochs=1, n_eval_networks=2, device="cpu")
               for s in range(2)]

    def model(seed):
        torch.manual_seed(seed)
        return en.EnsembleMLP((784, 16, 10), noise="counter")

    alone = [en.train(model(s), data, c, progress=False) for s, c in enumerate(configs)]
    together = en.train_many([model(s) for s in range(2)], data, configs, progress=False)
    for a, b in zip(alone, together):
        for p, q in zip(a.model.parameters(), b.model.parameters()):
            assert torch.allclose(p, q, rtol=1e-4, atol=1e-5)
        assert a.history[-1]["train_loss"] == pytest.approx(b.history[-1]["train_loss"], rel=1e-4)
    assert alone[0].model.linear_layers[0].noise == "counter"


def test_counter_noise_resumes_exactly_and_is_recorded(tmp_path):
    """The keys come from the checkpointed generator: a cut and resumed run is the uninterrupted one, bit for bit;
    the run folder records the source, and resuming with the other one is refused."""
    data = en.load_dataset("mnist5k", None, download=False).subset(n_train=300, n_test=100)

    def model(noise="counter"):
        torch.manual_seed(0)
        return en.EnsembleMLP((784, 16, 10), noise=noise)

    fast = dict(batch_size=100, lr=0.02, n_eval_networks=2, device="cpu")
    full = en.train(model(), data, en.TrainConfig(epochs=3, **fast), run_dir=tmp_path / "full", progress=False)
    en.train(model(), data, en.TrainConfig(epochs=1, **fast), run_dir=tmp_path / "cut", progress=False)
    resumed = en.train(model(), data, en.TrainConfig(epochs=3, **fast), run_dir=tmp_path / "cut", resume=True,
                       progress=False)
    for p, q in zip(full.model.parameters(), resumed.model.parameters()):
        assert torch.equal(p, q)
    model_loaded, _, _ = en.load_run(tmp_path / "cut")
    assert model_loaded.linear_layers[0].noise == "counter"
    with pytest.raises(ValueError, match="noise"):
        en.train(model("torch"), data, en.TrainConfig(epochs=4, **fast), run_dir=tmp_path / "cut", resume=True,
                 progress=False)


def test_experiment_config_takes_the_source():
    config = en.ExperimentConfig(model="ensemble", noise="counter", sizes=(784, 8, 10))
    assert config.build_model().linear_layers[0].noise == "counter"
    assert "noise" not in en.ExperimentConfig(model="ensemble").build_model().model_args  # old folders match
    with pytest.raises(ValueError, match="spike-and-slab models"):
        en.ExperimentConfig(model="mlp", noise="counter")
    with pytest.raises(ValueError, match="noise must be one of"):
        en.ExperimentConfig(model="ensemble", noise="fast")
