# SPDX-License-Identifier: MIT
"""protocols/modes.py: what the figure family misses and the jobs that make it."""
from ensemble_nets.protocols import modes
from ensemble_nets.protocols.mnist import run_cell


def test_jobs_train_three_runs_then_analyse_and_sweep(tmp_path):
    assert set(modes.missing_runs(tmp_path)) == {modes.ANALYSIS, modes.SWEEP}
    train, final = modes.jobs(tmp_path, modes.BUDGETS["quick"])
    assert train.fn is run_cell and [c["name"] for c in train.cells] == list(modes.MODEL_RUNS)
    mdl = train.cells[0]
    assert mdl["protocol"] == "mdl-reference" and mdl["overrides"]["n_modes"] == 70
    assert mdl["overrides"]["train"]["epochs"] == modes.BUDGETS["quick"].mdl_epochs
    assert all(c["overrides"]["dataset"] == "mnist5k" and c["overrides"]["download"] is False for c in train.cells)
    assert [c["name"] for c in final.cells] == [modes.ANALYSIS, modes.SWEEP]
    (tmp_path / modes.SWEEP).mkdir()
    (tmp_path / modes.SWEEP / "fit.json").write_text("{}")
    assert set(modes.missing_runs(tmp_path)) == {modes.ANALYSIS}
    assert [c["name"] for c in modes.jobs(tmp_path, modes.BUDGETS["quick"])[-1].cells] == [modes.ANALYSIS]


def test_analyze_modes_writes_every_table(tmp_path):
    from types import SimpleNamespace

    import pandas as pd
    import torch

    import ensemble_nets as en

    g = torch.Generator().manual_seed(0)
    data = SimpleNamespace(x_test=torch.randn(120, 12, generator=g), y_test=torch.randint(0, 3, (120,), generator=g),
                           n_test=120)
    models = {"mdl-p8": en.ModeMLP((12, 10, 9, 3), 8), "plain": en.MLP((12, 10, 9, 3)),
              "ensemble": en.EnsembleMLP((12, 10, 9, 3))}
    summary, tables = modes.analyze_modes(models, data, tmp_path, n_random=2, n_boot=5)
    for name in ("spectra", "fits", "removal", "latent", "compare_mass", "compare_auc", "compare_pixels"):
        assert (tmp_path / f"{name}.csv").is_file(), name
    assert set(pd.read_csv(tmp_path / "removal.csv").model) == set(models) and summary["n_test"] == 120
    lines = modes.fit_lines(tables["spectra"], tables["fits"])
    assert set(lines.model) == set(tables["fits"].model) and (lines.value > 0).all()
