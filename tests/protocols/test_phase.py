# SPDX-License-Identifier: MIT
"""protocols/phase.py: the knobs (data noise per step), stacked training, readout, grids and bad input."""
import math

import pytest
import torch

from ensemble_nets.protocols import phase
from ensemble_nets.protocols.phase import (
    BUDGETS,
    PhaseGridConfig,
    check_level,
    data_noise_batch,
    group_cells,
    make_cells,
    pooled_mnist,
    run_phase_cell,
)


def test_data_noise_redraws_a_fraction_every_step():
    gen = torch.Generator().manual_seed(0)
    y = torch.arange(1000) % 10
    x = torch.zeros(1000, 4)
    changed, positions = [], []
    for _ in range(200):
        _, y_noisy = data_noise_batch(x, y, 0.3, 1.0, 10, gen)
        diff = y_noisy != y
        changed.append(diff.float().mean().item())
        positions.append(diff)
    # 300 labels redrawn per step, 9/10 of them to another class: 0.27 in expectation
    mean = sum(changed) / len(changed)
    assert abs(mean - 0.3 * 0.9) < 0.005
    assert max(changed) <= 0.3 + 1e-9  # never more than the redrawn fraction
    assert not torch.equal(positions[0], positions[1])  # redrawn every step, not fixed
    _, y_clean = data_noise_batch(x, y, 0.0, 1.0, 10, gen)
    assert torch.equal(y_clean, y)


def test_data_noise_input_scale():
    gen = torch.Generator().manual_seed(1)
    x = torch.zeros(20000, 5)
    x_noisy, _ = data_noise_batch(x, torch.zeros(20000, dtype=torch.long), 0.4, 2.5, 10, gen)
    assert abs(x_noisy.std().item() - 0.4 * 2.5) < 0.02  # N(0, 1) * std(X) * noise
    assert x.abs().max() == 0  # the inputs are not modified in place


def test_unknown_knob_or_level_is_named():
    with pytest.raises(ValueError, match="allowed: data_noise, label_corruption, lr, dropout, batch_size, xi_max"):
        check_level("label_noise", 0.1)
    with pytest.raises(ValueError, match="dropout=1.0 is not allowed: dropout takes a probability in"):
        check_level("dropout", 1.0)
    with pytest.raises(ValueError, match="batch_size"):
        check_level("batch_size", 1)
    with pytest.raises(ValueError, match="unknown phase knob 'label_noise'"):
        PhaseGridConfig(knob="label_noise")
    with pytest.raises(ValueError, match="lr=-0.1 is not allowed"):
        PhaseGridConfig(knob="lr", levels=(1e-3, -0.1))
    with pytest.raises(ValueError, match="spike_slab"):
        PhaseGridConfig(knob="xi_max")
    with pytest.raises(ValueError, match="unknown phase-cell keys"):
        run_phase_cell({"label_noise": 0.1})
    with pytest.raises(ValueError, match="preset 'quick' has no levels for knob 'lr'"):
        make_cells(PhaseGridConfig(knob="lr", preset="quick"))


def test_paper_grids_and_stacks():
    cells = make_cells(PhaseGridConfig())
    assert len(cells) == 6 * 5 * 3 and cells[0]["name"] == "a0-data_noise0-s0"
    assert {c["epochs"] for c in cells} == {100}
    assert {c["epochs"] for c in make_cells(PhaseGridConfig(knob="lr"))} == {100}  # the reference: 200 (cut)
    assert len(make_cells(PhaseGridConfig(knob="dropout"))) == 6 * 5 * 3
    assert {c["epochs"] for c in make_cells(PhaseGridConfig(knob="batch_size"))} == {50}  # the reference: 100 (cut)
    batch = make_cells(PhaseGridConfig(knob="batch_size"))
    groups = group_cells(batch)
    # one stack per batch size: 18 runs (6 alphas x 3 seeds) for small batches, 3 for the full batch
    sizes = {g[0]["batch_size"]: len(g) for g in groups}
    assert sizes[10] == 18 and sizes[2560] == 3 and sum(len(g) for g in groups) == len(batch)
    assert all(len({c["batch_size"] for c in g}) == 1 for g in groups)
    ens = group_cells(make_cells(PhaseGridConfig(model="spike_slab")))
    assert all(len(g) == 1 for g in ens)  # ensembles train one at a time
    assert [c.folder for c in BUDGETS["quick"]] == ["phase-quick/linear-data_noise"]
    assert len(BUDGETS["paper"]) == 5


def _params(model):
    """Every parameter but the shifts a BatchNorm removes (the block biases, the input BatchNorm's bias, which feeds
    a linear layer then a BatchNorm): their gradient is 0 up to rounding, which Adam blows up to +-lr either way."""
    return torch.cat([p.detach().flatten() for name, p in model.named_parameters()
                      if not (name.startswith("blocks") and name.endswith("0.bias")) and name != "input_norm.bias"])


def test_stacked_training_equals_one_run_at_a_time(mnist_root):
    """Two cells trained as one stack end where each ends trained alone with torch's Adam."""
    data = pooled_mnist(str(mnist_root), 10, 256)
    cells = [phase._resolve({"alpha": a, "seed": s, "lr": lr, "data_noise": noise, "batch_size": 64, "epochs": 2,
                             "n_train": 256, "width": 16, "depth": 3})
             for a, s, lr, noise in ((0.0, 0, 1e-2, 0.3), (0.5, 1, 3e-3, 0.0))]
    stacked, losses = phase._train_stack(cells, data)
    for c, model, loss in zip(cells, stacked, losses):
        (alone,), (loss_alone,) = phase._train_one(c, data)
        torch.testing.assert_close(_params(model), _params(alone), atol=2e-4, rtol=1e-3)
        with torch.no_grad():  # batch statistics: the function, free of those shifts (eval mode's running means
            # follow them with a lag, so eval outputs differ at 1e-2)
            torch.testing.assert_close(model.train()(data.x_test[:500]), alone.train()(data.x_test[:500]),
                                       atol=1e-3, rtol=1e-3)
        assert math.isclose(loss, loss_alone, rel_tol=1e-3)
        assert not torch.equal(_params(model), _params(phase._build(c)))  # it trained


def test_cell_reads_nine_points_and_reports_c_v(mnist_root, tmp_path):
    cell = {"alpha": 0.0, "n_train": 256, "width": 32, "epochs": 20, "lr": 1e-2, "data_root": str(mnist_root)}
    result = run_phase_cell(cell, tmp_path)
    assert result["points"] == ["input"] + [f"block{i}" for i in range(1, 8)] + ["logits"]
    assert len(result["log_D"]) == len(result["log_D_hs"]) == 9
    d = [a - b for a, b in zip(result["log_D_hs"][:7], result["log_D_hs"][1:8])]  # logits dropped
    assert math.isclose(result["c"], d[0] - d[-1], abs_tol=1e-9)
    assert math.isclose(result["v"], float(torch.tensor(d).std(unbiased=False)), rel_tol=1e-6)
    assert result["n_layers"] == 7 and result["train_acc"] > 0.5 and not result["diverged"]
    assert (tmp_path / "separation.csv").is_file()


def test_spike_slab_and_deep_cells_run(mnist_root):
    base = {"n_train": 128, "width": 16, "epochs": 3, "data_root": str(mnist_root)}
    ens = run_phase_cell({**base, "model": "spike_slab", "xi_max": 0.005, "dropout": 0.1, "data_noise": 0.2})
    assert "test_acc_mean_field" in ens and len(ens["log_D"]) == 9
    deep = run_phase_cell({**base, "arch": "deep", "depth": 3})
    assert deep["points"][0] == "input" and len(deep["log_D"]) == 4  # input + 3 blocks, hooks
