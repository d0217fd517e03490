"""SpikeSlabAdamW: AdamW and the projection of each spike-and-slab layer in one compiled kernel."""
import contextlib
import copy
import shutil

import pytest
import torch

import ensemble_nets as en
from ensemble_nets.layers import spike_slab_layers
from ensemble_nets.models import EnsembleCNN
from ensemble_nets.training.fused_adam import SpikeSlabAdamW, fusable_layers
from ensemble_nets.training.optim import make_optimizer, project_, step_and_project

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # torch.compile's own imports (torch.jit)
    pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")),
                       reason="torch.compile on CPU needs a C++ compiler"),
]


def _steps(model, optimizer, x, y, n_steps, *, reference: bool, deferred: bool = False, penalty=None,
           backwards: int = 1, between=None):
    """n_steps of cross-entropy (+ ``penalty(model)``), step and projection; the entries moved at each step.

    ``deferred``: inside ``optimizer.deferred_gradients()`` (as ``en.train`` runs it); ``backwards``: that
    many backward calls (gradients accumulate) before each step; ``between(model, step)`` runs after each step.
    """
    moved = []
    with optimizer.deferred_gradients() if deferred else contextlib.nullcontext():
        for step in range(n_steps):
            optimizer.zero_grad(set_to_none=True)
            for k in range(backwards):
                torch.manual_seed(step * backwards + k)  # the same training noise for both models
                loss = torch.nn.functional.cross_entropy(model(x), y)
                if penalty is not None:
                    loss = loss + penalty(model)
                loss.backward()
            if reference:
                optimizer.step()
                moved.append(int(project_(model)))
            else:
                moved.append(int(step_and_project(model, optimizer)))
            if between is not None:
                between(model, step)
    return moved


@pytest.mark.parametrize("decoupled", [True, False])
@pytest.mark.parametrize("deferred", [False, True])
def test_fused_step_equals_adamw_then_projection(decoupled, deferred):
    """Every parameter (biases through AdamW, pi/m/xi through the kernel) and every count as eager; with
    ``deferred`` the chain rule from dL/dmu, dL/dvar runs in the kernel too."""
    torch.manual_seed(0)
    model = en.EnsembleMLP((12, 16, 16, 4), bias=True, dtype=torch.float64)
    fused = copy.deepcopy(model)
    x, y = torch.randn(32, 12, dtype=torch.float64), torch.randint(0, 4, (32,))
    # a large rate drives pi and xi across the bounds, so the projection moves entries at every step
    eager_opt = make_optimizer(model, lr=0.2, weight_decay=0.1, decoupled=decoupled)
    fused_opt = make_optimizer(fused, lr=0.2, weight_decay=0.1, decoupled=decoupled, fused_step=True)
    assert isinstance(fused_opt, SpikeSlabAdamW) and len(fused_opt.projected_layers) == 3
    moved_eager = _steps(model, eager_opt, x, y, 6, reference=True)
    moved_fused = _steps(fused, fused_opt, x, y, 6, reference=False, deferred=deferred)
    assert moved_eager == moved_fused and min(moved_eager) > 0
    for (name, a), b in zip(model.named_parameters(), fused.parameters()):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11), name
    # the state is torch's: it loads into a plain AdamW and back
    plain = make_optimizer(copy.deepcopy(fused), lr=0.2, weight_decay=0.1, decoupled=decoupled)
    plain.load_state_dict(fused_opt.state_dict())
    for a, b in zip(plain.state_dict()["state"].values(), fused_opt.state_dict()["state"].values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and float(a["step"]) == float(b["step"]) == 6


def test_fused_step_on_a_cnn_and_a_layer_left_out():
    """Conv layers are fused too; a layer whose parameters the optimizer does not hold is left to it."""
    torch.manual_seed(1)
    model = EnsembleCNN(channels=(2, 3), hidden=8)
    layers = fusable_layers(model)
    assert len(layers) == 4
    frozen = model[9]  # the output layer: not in the optimizer
    params = [p for p in model.parameters() if all(p is not q for q in frozen.parameters())]
    optimizer = SpikeSlabAdamW(params, layers, lr=0.05)
    assert frozen not in optimizer.projected_layers and len(optimizer.projected_layers) == 3
    before = copy.deepcopy(frozen.state_dict())
    x, y = torch.rand(5, 1, 28, 28), torch.randint(0, 10, (5,))
    reference = copy.deepcopy(model)
    ref_opt = torch.optim.AdamW([p for p in reference.parameters()
                                 if all(p is not q for q in reference[9].parameters())], lr=0.05, weight_decay=0.0)
    optimizer.param_groups[0]["weight_decay"] = 0.0
    _steps(model, optimizer, x, y, 3, reference=False)
    _steps(reference, ref_opt, x, y, 3, reference=True)
    for a, b in zip(reference.parameters(), model.parameters()):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    assert all(torch.equal(v, before[k]) for k, v in frozen.state_dict().items())


def test_train_with_fused_step_matches_and_resumes(tmp_path):
    """en.train(fused_step=True): the same run as the eager step, and a resumed run equals an unbroken one."""
    data = en.load_dataset("mnist5k", download=False).subset(n_train=300, n_test=200)
    config = dict(epochs=3, batch_size=100, lr=0.05, lr_halve_every=2, n_eval_networks=2, device="cpu")

    def run(name, epochs=3, resume=False, **extra):
        torch.manual_seed(0)
        model = en.EnsembleMLP((784, 20, 10))
        cfg = en.TrainConfig(**{**config, "epochs": epochs, **extra})
        return en.train(model, data, cfg, run_dir=tmp_path / name, resume=resume, progress=False)

    eager, fused = run("eager"), run("fused", fused_step=True)
    assert [r["projected"] for r in eager.history] == [r["projected"] for r in fused.history]
    for a, b in zip(eager.model.parameters(), fused.model.parameters()):
        assert torch.allclose(a, b, rtol=1e-3, atol=1e-4)  # float32 rounding, grown over 9 steps
    run("resumed", epochs=2, fused_step=True)
    resumed = run("resumed", epochs=3, resume=True, fused_step=True)
    for a, b in zip(resumed.model.parameters(), fused.model.parameters()):
        assert torch.equal(a, b)


def test_fused_step_refuses_amsgrad():
    model = en.EnsembleMLP((6, 3))
    optimizer = SpikeSlabAdamW(model.parameters(), fusable_layers(model), lr=0.1, amsgrad=True)
    torch.nn.functional.cross_entropy(model(torch.randn(4, 6)), torch.tensor([0, 1, 2, 0])).backward()
    with pytest.raises(ValueError, match="amsgrad"):
        optimizer.step()


def test_fused_step_keeps_per_parameter_rates():
    """lr_scales (a group per scale) reach the kernel: pi and xi at 0.1 x the rate of m, as with AdamW."""
    torch.manual_seed(3)
    model = en.EnsembleMLP((10, 8, 3), dtype=torch.float64)
    fused = copy.deepcopy(model)
    scales = {"pi": 0.1, "xi": 0.0}
    eager_opt = make_optimizer(model, lr=0.2, lr_scales=scales)
    fused_opt = make_optimizer(fused, lr=0.2, lr_scales=scales, fused_step=True)
    xi_before = fused[0].xi.detach().clone()
    x, y = torch.randn(16, 10, dtype=torch.float64), torch.randint(0, 3, (16,))
    assert _steps(model, eager_opt, x, y, 4, reference=True) == \
        _steps(fused, fused_opt, x, y, 4, reference=False, deferred=True)
    for a, b in zip(model.parameters(), fused.parameters()):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11)
    assert torch.equal(fused[0].xi, xi_before)  # scale 0: frozen (the projection moves nothing there)


def _penalty(model):
    """Terms on pi, m, xi themselves (as an ELBO's KL): their gradients reach .grad beside the deferred ones."""
    return sum((layer.pi ** 2).sum() + 0.1 * (layer.m ** 2).sum() + layer.xi.sum()
               for _, layer in spike_slab_layers(model))


@pytest.mark.parametrize("gbp", ["manual", "compiled", "autograd"])
def test_deferred_step_with_other_terms_and_accumulated_gradients(gbp):
    """Deferred dL/dmu, dL/dvar summed over two backward calls, plus a penalty's own gradients on pi, m, xi:
    the same update as AdamW on the full gradients (gbp="autograd" layers take ordinary gradients)."""
    torch.manual_seed(4)
    model = en.EnsembleMLP((10, 12, 3), gbp=gbp, dtype=torch.float64)
    fused = copy.deepcopy(model)
    eager_opt = make_optimizer(model, lr=0.1, weight_decay=0.01)
    fused_opt = make_optimizer(fused, lr=0.1, weight_decay=0.01, fused_step=True)
    x, y = torch.randn(16, 10, dtype=torch.float64), torch.randint(0, 3, (16,))
    kwargs = dict(penalty=_penalty, backwards=2)
    assert _steps(model, eager_opt, x, y, 4, reference=True, **kwargs) == \
        _steps(fused, fused_opt, x, y, 4, reference=False, deferred=True, **kwargs)
    for a, b in zip(model.parameters(), fused.parameters()):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11)


def test_deferred_gradients_leave_grad_to_other_terms_only_inside_the_context():
    torch.manual_seed(5)
    model = en.EnsembleMLP((6, 5, 3), dtype=torch.float64)
    optimizer = make_optimizer(model, lr=0.1, fused_step=True)
    x, y = torch.randn(8, 6, dtype=torch.float64), torch.randint(0, 3, (8,))
    layer = model[0]
    with optimizer.deferred_gradients():
        assert layer.deferred is not None and copy.deepcopy(model)[0].deferred is None  # a copy is not armed
        (torch.nn.functional.cross_entropy(model(x), y) + (layer.pi ** 2).sum()).backward()
        assert torch.allclose(layer.pi.grad, 2 * layer.pi) and layer.m.grad is None  # the penalty's part only
        optimizer.zero_grad()  # also drops the handed-over dL/dmu, dL/dvar
        assert optimizer._deferred[id(layer)].take() is None
    assert layer.deferred is None
    torch.nn.functional.cross_entropy(model(x), y).backward()
    assert all(p.grad is not None for p in (layer.pi, layer.m, layer.xi))  # outside: ordinary gradients


def test_deferred_moments_are_recomputed_after_any_change_to_the_parameters():
    """The moments the step leaves are used only for the parameters they came from: an in-place edit or
    load_state_dict between steps gives the same run as eager."""
    torch.manual_seed(6)
    model = en.EnsembleMLP((10, 12, 3), dtype=torch.float64)
    fused = copy.deepcopy(model)
    eager_opt = make_optimizer(model, lr=0.1)
    fused_opt = make_optimizer(fused, lr=0.1, fused_step=True)
    replacement = copy.deepcopy(model.state_dict())
    kept = []

    def between(net, step):
        if net is fused:
            kept.append(fused_opt._deferred[id(fused[0])].moments_of(fused[0].pi, fused[0].m, fused[0].xi))
        with torch.no_grad():
            if step == 1:
                net[0].m.mul_(0.5)
            if step == 3:
                net.load_state_dict(replacement)
        if net is fused:
            kept.append(fused_opt._deferred[id(fused[0])].moments_of(fused[0].pi, fused[0].m, fused[0].xi))

    x, y = torch.randn(16, 10, dtype=torch.float64), torch.randint(0, 3, (16,))
    _steps(model, eager_opt, x, y, 5, reference=True, between=between)
    _steps(fused, fused_opt, x, y, 5, reference=False, deferred=True, between=between)
    assert kept[0] is not None and kept[1] is not None  # step 0: kept, and nothing changed
    assert kept[2] is not None and kept[3] is None  # step 1: the edit drops them
    assert kept[6] is not None and kept[7] is None  # step 3: load_state_dict drops them
    for a, b in zip(model.parameters(), fused.parameters()):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("deferred", [False, True])
def test_fused_step_follows_a_tensor_lr_changed_in_place(deferred):
    """torch allows a tensor lr, which schedulers change in place: the step must read the new value."""
    torch.manual_seed(7)
    model = en.EnsembleMLP((10, 12, 3), dtype=torch.float64)
    fused = copy.deepcopy(model)
    eager_opt = make_optimizer(model, lr=0.1)
    fused_opt = make_optimizer(fused, lr=0.1, fused_step=True)
    for opt in (eager_opt, fused_opt):
        for group in opt.param_groups:
            group["lr"] = torch.tensor(0.1, dtype=torch.float64)

    def decay(net, step):
        for group in (eager_opt if net is model else fused_opt).param_groups:
            group["lr"].mul_(0.1)  # as a scheduler with a tensor lr does

    x, y = torch.randn(16, 10, dtype=torch.float64), torch.randint(0, 3, (16,))
    _steps(model, eager_opt, x, y, 4, reference=True, between=decay)
    _steps(fused, fused_opt, x, y, 4, reference=False, deferred=deferred, between=decay)
    for a, b in zip(model.parameters(), fused.parameters()):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11)


def test_deferred_step_with_a_parameter_frozen_midway_and_nested_contexts():
    """pi frozen between steps: the other parameters still step (AdamW) and are projected, pi stays; an
    inner deferred_gradients() does not disarm the outer one."""
    torch.manual_seed(8)
    model = en.EnsembleMLP((10, 12, 3), dtype=torch.float64)
    fused = copy.deepcopy(model)
    eager_opt = make_optimizer(model, lr=0.2, weight_decay=0.1)
    fused_opt = make_optimizer(fused, lr=0.2, weight_decay=0.1, fused_step=True)

    def freeze(net, step):
        if step == 1:
            net[0].pi.requires_grad_(False)

    x, y = torch.randn(16, 10, dtype=torch.float64), torch.randint(0, 3, (16,))
    moved_eager = _steps(model, eager_opt, x, y, 4, reference=True, between=freeze)
    with fused_opt.deferred_gradients():
        with fused_opt.deferred_gradients():
            pass
        assert fused[0].deferred is not None  # still armed after the inner exit
        moved_fused = _steps(fused, fused_opt, x, y, 4, reference=False, deferred=True, between=freeze)
    assert fused[0].deferred is None and moved_eager == moved_fused
    for a, b in zip(model.parameters(), fused.parameters()):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11)


def test_forget_moments_after_an_edit_through_data():
    """An edit through .data bypasses the version counter; forget_moments() makes the next forward recompute."""
    torch.manual_seed(9)
    model = en.EnsembleMLP((10, 12, 3), dtype=torch.float64)
    fused = copy.deepcopy(model)
    eager_opt = make_optimizer(model, lr=0.1)
    fused_opt = make_optimizer(fused, lr=0.1, fused_step=True)

    def edit(net, step):
        if step == 1:
            net[0].m.data.mul_(0.5)
            if net is fused:
                fused_opt.forget_moments()

    x, y = torch.randn(16, 10, dtype=torch.float64), torch.randint(0, 3, (16,))
    _steps(model, eager_opt, x, y, 4, reference=True, between=edit)
    _steps(fused, fused_opt, x, y, 4, reference=False, deferred=True, between=edit)
    for a, b in zip(model.parameters(), fused.parameters()):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11)
