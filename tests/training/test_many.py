# SPDX-License-Identifier: MIT
"""train_many: K runs at once equal K runs of train(), one by one."""
import math
import shutil

import pytest
import torch
from torch import nn

import ensemble_nets as en
from ensemble_nets.training.runs import CHECKPOINT, load_checkpoint, read_json
from ensemble_nets.training.stacked import _StackedMeanField, stack_models, stacked_mean_field

FAST = dict(batch_size=100, lr=0.05, lr_halve_every=1, n_eval_networks=2, device="cpu", epochs=2)
KINDS = ("ensemble", "mdl", "mdl-unshared", "mlp")


@pytest.fixture(scope="module")
def small():
    # the embedded digits with a held-out test part: no files needed
    return en.load_dataset("mnist5k", None, download=False).subset(n_train=400, n_test=200)


def _model(kind, seed, sizes=(784, 24, 12, 10)):
    torch.manual_seed(seed)
    if kind == "ensemble":
        model = en.EnsembleMLP(sizes, m_std=1.0)
    elif kind == "mdl":
        model = en.ModeMLP(sizes, 4)
    elif kind == "mdl-unshared":
        model = en.ModeMLP(sizes, 4, shared=False)
    else:
        model = en.MLP(sizes, w_std=1.0)
    return model.double()  # float64: the only differences left are the rounding of batched products


def _assert_same_run(a, b, *, param_tol=1e-10):
    for (name, p), q in zip(a.model.named_parameters(), b.model.parameters()):
        assert torch.allclose(p, q, rtol=0, atol=param_tol), name
    assert len(a.history) == len(b.history)
    for row_a, row_b in zip(a.history, b.history):
        assert row_a.keys() == row_b.keys()
        for key in row_a:
            if key != "train_seconds":
                assert row_a[key] == pytest.approx(row_b[key], rel=1e-6, abs=1e-9), key


@pytest.mark.parametrize("kind", KINDS)
def test_each_run_equals_train_alone(small, kind):
    configs = [en.TrainConfig(seed=s, **{**FAST, "lr": 0.03 * (s + 1)}) for s in range(3)]
    alone = [en.train(_model(kind, s), small, c, progress=False) for s, c in enumerate(configs)]
    together = en.train_many([_model(kind, s) for s in range(3)], small, configs, progress=False)
    for a, b in zip(alone, together):
        _assert_same_run(a, b)
    assert together[0].summary["seed"] == 0 and together[2].summary["seed"] == 2
    # the runs really differ (a bug mixing runs up would make them alike)
    assert not torch.allclose(next(together[0].model.parameters()), next(together[1].model.parameters()))


def test_runs_differ_in_epochs_decay_and_schedule(small):
    configs = [en.TrainConfig(seed=0, **{**FAST, "epochs": 1}),
               en.TrainConfig(seed=1, **{**FAST, "epochs": 3, "weight_decay": 1e-2, "decay": ("m",)}),
               en.TrainConfig(seed=2, **{**FAST, "decoupled_decay": False, "lr_halve_every": 0})]
    alone = [en.train(_model("ensemble", s), small, c, progress=False) for s, c in enumerate(configs)]
    together = en.train_many([_model("ensemble", s) for s in range(3)], small, configs, progress=False)
    assert [len(r.history) for r in together] == [1, 3, 2]
    for a, b in zip(alone, together):
        _assert_same_run(a, b)


def test_resume_is_exact_and_folders_match_train(small, tmp_path):
    configs = [en.TrainConfig(seed=s, **{**FAST, "epochs": 3}) for s in range(2)]
    full = en.train_many([_model("ensemble", s) for s in range(2)], small, configs, progress=False,
                         run_dirs=[tmp_path / "full0", tmp_path / "full1"])
    cut = [tmp_path / "cut0", tmp_path / "cut1"]
    en.train_many([_model("ensemble", s) for s in range(2)], small,
                  [en.TrainConfig(seed=s, **{**FAST, "epochs": 1}) for s in range(2)], run_dirs=cut, progress=False)
    with pytest.raises(FileExistsError, match="resume"):
        en.train_many([_model("ensemble", s) for s in range(2)], small, configs, run_dirs=cut, progress=False)
    resumed = en.train_many([_model("ensemble", s) for s in range(2)], small, configs, run_dirs=cut,
                            resume=True, progress=False)
    for a, b in zip(full, resumed):
        assert [{k: v for k, v in r.items() if k != "train_seconds"} for r in a.history] == \
               [{k: v for k, v in r.items() if k != "train_seconds"} for r in b.history]
        for p, q in zip(a.model.parameters(), b.model.parameters()):
            assert torch.equal(p, q)
    summary = read_json(tmp_path / "full1" / "summary.json")
    assert summary["epochs"] == 3 and summary["seed"] == 1
    assert not list(tmp_path.glob("*/.*.tmp"))


def test_train_resumes_a_train_many_folder(small, tmp_path):
    config = en.TrainConfig(seed=4, **{**FAST, "epochs": 3})
    alone = en.train(_model("ensemble", 4), small, config, progress=False)
    en.train_many([_model("ensemble", 4), _model("ensemble", 5)], small,
                  [en.TrainConfig(seed=s, **{**FAST, "epochs": 1}) for s in (4, 5)],
                  run_dirs=[tmp_path / "a", tmp_path / "b"], progress=False)
    resumed = en.train(_model("ensemble", 4), small, config, run_dir=tmp_path / "a", resume=True, progress=False)
    _assert_same_run(alone, resumed)  # train() resumes into the float64 model itself: exact
    assert load_checkpoint(tmp_path / "a" / CHECKPOINT)["epoch"] == 3


def test_train_many_resumes_a_train_folder(small, tmp_path):
    config = en.TrainConfig(seed=6, **{**FAST, "epochs": 3})
    alone = en.train(_model("mdl", 6), small, config, progress=False)
    en.train(_model("mdl", 6), small, en.TrainConfig(seed=6, **{**FAST, "epochs": 1}), run_dir=tmp_path / "a",
             progress=False)
    resumed = en.train_many([_model("mdl", 6), _model("mdl", 7)], small, [config, en.TrainConfig(seed=7, **FAST)],
                            run_dirs=[tmp_path / "a", tmp_path / "b"], resume=True, progress=False)
    _assert_same_run(alone, resumed[0])
    assert len(resumed[1].history) == 2  # a fresh run beside the resumed one


def test_early_stopping_restores_best_epoch(small, tmp_path):
    # "lr" falls every epoch (halved each epoch), so it stops improving after epoch 1: patience 1 stops at 2
    configs = [en.TrainConfig(seed=s, **{**FAST, "epochs": 5}) for s in range(2)]
    results = en.train_many([_model("mdl", s) for s in range(2)], small, configs, patience=1, monitor="lr",
                            run_dirs=[tmp_path / "a", tmp_path / "b"], progress=False)
    one_epoch = en.train(_model("mdl", 0), small, en.TrainConfig(seed=0, **{**FAST, "epochs": 1}), progress=False)
    assert [len(r.history) for r in results] == [2, 2]
    assert results[0].summary["early_stopping"]["epoch"] == 1 and results[0].summary["early_stopping"]["stopped"]
    for p, q in zip(results[0].model.parameters(), one_epoch.model.parameters()):
        assert torch.allclose(p, q, rtol=0, atol=1e-10)
    # a stopped run stays stopped when the call is repeated
    again = en.train_many([_model("mdl", s) for s in range(2)], small, configs, patience=1, monitor="lr",
                          run_dirs=[tmp_path / "a", tmp_path / "b"], resume=True, progress=False)
    assert [len(r.history) for r in again] == [2, 2]
    for p, q in zip(again[0].model.parameters(), one_epoch.model.parameters()):
        assert torch.allclose(p, q, rtol=0, atol=1e-10)


@pytest.mark.parametrize("other, message", [
    (lambda: en.EnsembleMLP((784, 24, 13, 10), m_std=1.0).double(), r"2\.out_features: 12 against 13"),
    (lambda: en.ModeMLP((784, 24, 12, 10), 4).double(), "EnsembleMLP"),
    (lambda: en.EnsembleMLP((784, 24, 12, 10), activation="tanh").double(), "module 1: ReLU against Tanh"),
    (lambda: en.EnsembleMLP((784, 24, 12, 10), floor=1e-4).double(), "floor"),
])
def test_different_structures_name_the_difference(small, other, message):
    with pytest.raises(ValueError, match=message):
        en.train_many([_model("ensemble", 0), other()], small, [en.TrainConfig(**FAST)] * 2, progress=False)


def test_bad_configs_are_refused(small):
    models = [_model("mlp", 0), _model("mlp", 1)]
    with pytest.raises(ValueError, match="batch_size=50 differs"):
        en.train_many(models, small, [en.TrainConfig(**FAST), en.TrainConfig(**{**FAST, "batch_size": 50})])
    with pytest.raises(NotImplementedError, match="ELBO"):
        en.train_many(models, small, [en.TrainConfig(**FAST), en.TrainConfig(**FAST, objective="elbo")])
    with pytest.raises(ValueError, match="2 models but 1 configs"):
        en.train_many(models, small, [en.TrainConfig(**FAST)])
    with pytest.raises(ValueError, match="monitor='test_loss_mean_field'"):
        en.train_many(models, small, [en.TrainConfig(**FAST)] * 2, patience=2, monitor="test_loss_mean_field")
    with pytest.raises(ValueError, match="same model object"):
        en.train_many([models[0], models[0]], small, [en.TrainConfig(**FAST)] * 2)
    with pytest.raises(NotImplementedError, match="Dropout"):
        en.train_many([nn.Sequential(nn.Linear(784, 10), nn.Dropout(0.1)) for _ in range(2)], small,
                      [en.TrainConfig(**FAST)] * 2, progress=False)


def test_stacked_gbp_matches_autograd_and_gradcheck():
    torch.manual_seed(1)
    k, b, n_in, n_out = 3, 5, 7, 4
    x = torch.randn(k, b, n_in, dtype=torch.float64, requires_grad=True)
    pi = (torch.rand(k, n_out, n_in, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    m = torch.randn(k, n_out, n_in, dtype=torch.float64, requires_grad=True)
    xi = (torch.rand(k, n_out, n_in, dtype=torch.float64) * 0.5).requires_grad_()
    eps = torch.randn(k, b, n_out, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda *a: _StackedMeanField.apply(*a, eps, 1e-8), (x, pi, m, xi))
    g = torch.randn(k, b, n_out, dtype=torch.float64)
    manual = torch.autograd.grad(_StackedMeanField.apply(x, pi, m, xi, eps, 1e-8), (x, pi, m, xi), g)
    auto = torch.autograd.grad(stacked_mean_field(x, pi, m, xi, eps, 1e-8), (x, pi, m, xi), g)
    for a, c in zip(manual, auto):
        assert torch.allclose(a, c, atol=1e-12)


def test_stacked_forward_is_each_layer_forward():
    torch.manual_seed(0)
    models = [en.EnsembleMLP((6, 5, 3)).double() for _ in range(2)]
    stack = stack_models(models)
    x = torch.randn(2, 4, 6, dtype=torch.float64)
    generators = [torch.Generator().manual_seed(s) for s in (10, 11)]
    out = stack(x, generators)
    for k, model in enumerate(models):
        torch.manual_seed(10 + k)
        assert torch.allclose(out[k], model(x[k]), atol=1e-12)
    assert math.isfinite(out.sum().item())


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.compile's own imports (torch.jit)
def test_compiled_kernels_give_the_same_runs(small):
    pytest.importorskip("torch._inductor")
    if not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")):
        pytest.skip("torch.compile on CPU needs a C++ compiler")
    configs = [en.TrainConfig(seed=s, **{**FAST, "epochs": 1}) for s in range(2)]
    eager = en.train_many([_model("ensemble", s) for s in range(2)], small, configs, progress=False)
    compiled = en.train_many([_model("ensemble", s) for s in range(2)], small, configs, progress=False, compile=True)
    for a, b in zip(eager, compiled):
        _assert_same_run(a, b)


def test_image_data_and_eval_batch_size_and_locked_folders(small, tmp_path):
    with pytest.raises(ValueError, match="flat inputs"):
        en.train_many([_model("mlp", 0)], small.reshape(1, 28, 28), [en.TrainConfig(**FAST)], progress=False)
    # eval_batch_size reaches the evaluation, as in train(): equal results
    config = en.TrainConfig(seed=1, eval_batch_size=32, **{**FAST, "epochs": 1})
    alone = en.train(_model("ensemble", 1), small, config, progress=False)
    (many,) = en.train_many([_model("ensemble", 1)], small, [config], progress=False)
    assert many.history[0]["test_loss_mean_field"] == pytest.approx(alone.history[0]["test_loss_mean_field"],
                                                                       rel=1e-9)
    # a folder held by a lock (another process, here another RunLock) is refused at once
    from ensemble_nets.training.runs import RunFolderLocked, RunLock

    with RunLock(tmp_path / "held"), pytest.raises(RunFolderLocked, match="in use"):
        en.train_many([_model("mlp", 0), _model("mlp", 1)], small, [en.TrainConfig(**FAST)] * 2,
                      run_dirs=[tmp_path / "free", tmp_path / "held"], progress=False)
    assert not (tmp_path / "free").exists()  # nothing written, not even the free folder


def _conv_model(kind, seed):
    """Convolutional stacks: the LeNet skeleton, and one with groups, stride, padding, a Conv1d view and pooling."""
    from ensemble_nets.models import CNN, EnsembleCNN

    torch.manual_seed(seed)
    if kind == "cnn":
        model = EnsembleCNN(channels=(4, 6), hidden=12)
    elif kind == "cnn-plain":
        model = CNN(channels=(4, 6), hidden=12, bias=True)
    else:  # groups, stride, padding (zeros and reflect), average pooling, a plain conv between
        model = nn.Sequential(
            en.SpikeSlabConv2d(1, 4, 3, stride=2, padding=1, m_std=1.0), nn.ReLU(),
            en.SpikeSlabConv2d(4, 6, 3, padding=1, groups=2, bias=True, padding_mode="reflect", m_std=1.0),
            nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 4, 3, padding="same"), nn.MaxPool2d(2, ceil_mode=True),
            nn.Flatten(), en.SpikeSlabLinear(4 * 4 * 4, 10, m_std=1.0))
    return model.double()


@pytest.mark.parametrize("grouped", [False, True])  # one convolution per run (CPU), or grouped (CUDA's path)
@pytest.mark.parametrize("kind", ["cnn", "cnn-plain", "conv-options"])
def test_convolutional_runs_equal_train(kind, grouped, monkeypatch):
    """Stacked convolutions (per run, or groups = K x groups over the runs' channels side by side) are run k's alone."""
    from ensemble_nets.training import stacked

    monkeypatch.setattr(stacked, "GROUPED_CONV_DEVICES", {"cpu"} if grouped else set())
    images = en.load_dataset("mnist5k", None, download=False, shape="image").subset(n_train=200, n_test=100)
    configs = [en.TrainConfig(seed=s, **{**FAST, "batch_size": 50, "lr": 0.02 * (s + 1)}) for s in range(2)]
    alone = [en.train(_conv_model(kind, s), images, configs[s], progress=False) for s in range(2)]
    together = en.train_many([_conv_model(kind, s) for s in range(2)], images, configs, progress=False)
    for a, b in zip(alone, together):
        _assert_same_run(a, b, param_tol=1e-9)


def test_data_of_the_wrong_shape_is_named(small):
    images = en.load_dataset("mnist5k", None, download=False, shape="image").subset(n_train=200, n_test=100)
    with pytest.raises(ValueError, match='shape="flat"'):
        en.train_many([_model("ensemble", s) for s in range(2)], images, [en.TrainConfig(**FAST)] * 2)
    with pytest.raises(ValueError, match='shape="image"'):
        en.train_many([_conv_model("cnn", s) for s in range(2)], small, [en.TrainConfig(**FAST)] * 2)


@pytest.mark.parametrize("grouped", [False, True])
def test_conv1d_runs_equal_train(grouped, monkeypatch):
    """1-d convolutions (sequences (N, C, L)) stack too: spike-and-slab with dilation, plain with a bias."""
    from ensemble_nets.data import Dataset
    from ensemble_nets.training import stacked

    monkeypatch.setattr(stacked, "GROUPED_CONV_DEVICES", {"cpu"} if grouped else set())
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(160, 2, 24, generator=gen), torch.randint(0, 3, (160,), generator=gen)
    data = Dataset(x[:120], y[:120], x[120:], y[120:], name="synthetic", test_source="synthetic", n_classes=3)

    def model(seed):
        torch.manual_seed(seed)
        return nn.Sequential(en.SpikeSlabConv1d(2, 4, 3, dilation=2, m_std=1.0), nn.ReLU(), nn.MaxPool1d(2),
                             nn.Conv1d(4, 3, 3, bias=True), nn.Flatten(), en.SpikeSlabLinear(3 * 8, 3, m_std=1.0)
                             ).double()

    configs = [en.TrainConfig(seed=s, **{**FAST, "batch_size": 40}) for s in range(2)]
    alone = [en.train(model(s), data, configs[s], progress=False) for s in range(2)]
    together = en.train_many([model(s) for s in range(2)], data, configs, progress=False)
    for a, b in zip(alone, together):
        _assert_same_run(a, b, param_tol=1e-9)
