"""SpikeSlabAdamW: AdamW and the projection of each spike-and-slab layer in one compiled kernel."""
import copy
import shutil

import pytest
import torch

import ensemble_nets as en
from ensemble_nets.models import EnsembleCNN
from ensemble_nets.training.fused_adam import SpikeSlabAdamW, fusable_layers
from ensemble_nets.training.optim import make_optimizer, project_, step_and_project

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # torch.compile's own imports (torch.jit)
    pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")),
                       reason="torch.compile on CPU needs a C++ compiler"),
]


def _steps(model, optimizer, x, y, n_steps, *, reference: bool):
    """n_steps of cross-entropy, step and projection; the entries moved at each step."""
    moved = []
    for step in range(n_steps):
        torch.manual_seed(step)  # the same training noise for both models
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if reference:
            optimizer.step()
            moved.append(int(project_(model)))
        else:
            moved.append(int(step_and_project(model, optimizer)))
    return moved


@pytest.mark.parametrize("decoupled", [True, False])
def test_fused_step_equals_adamw_then_projection(decoupled):
    """Every parameter (biases through AdamW, pi/m/xi through the kernel) and every count as eager."""
    torch.manual_seed(0)
    model = en.EnsembleMLP((12, 16, 16, 4), bias=True, dtype=torch.float64)
    fused = copy.deepcopy(model)
    x, y = torch.randn(32, 12, dtype=torch.float64), torch.randint(0, 4, (32,))
    # a large rate drives pi and xi across the bounds, so the projection moves entries at every step
    eager_opt = make_optimizer(model, lr=0.2, weight_decay=0.1, decoupled=decoupled)
    fused_opt = make_optimizer(fused, lr=0.2, weight_decay=0.1, decoupled=decoupled, fused_step=True)
    assert isinstance(fused_opt, SpikeSlabAdamW) and len(fused_opt.projected_layers) == 3
    moved_eager = _steps(model, eager_opt, x, y, 6, reference=True)
    moved_fused = _steps(fused, fused_opt, x, y, 6, reference=False)
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
    assert _steps(model, eager_opt, x, y, 4, reference=True) == _steps(fused, fused_opt, x, y, 4, reference=False)
    for a, b in zip(model.parameters(), fused.parameters()):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-11)
    assert torch.equal(fused[0].xi, xi_before)  # scale 0: frozen (the projection moves nothing there)
