# SPDX-License-Identifier: MIT
"""Figure family "modes": every figure is written from tables made by the analysis on tiny models."""
import json

import pandas as pd
import torch

import ensemble_nets as en
from ensemble_nets.analysis.compare import compare_categories_modes
from ensemble_nets.analysis.latent import latent_table
from ensemble_nets.analysis.modes import fit_piecewise_power_law, mode_removal_curve, model_spectra
from ensemble_nets.plotting import modes
from ensemble_nets.protocols import modes as protocol


def test_make_figures_from_tiny_tables(tmp_path):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(200, 12, generator=g), torch.randint(0, 3, (200,), generator=g)
    models = {"mdl-p8": en.ModeMLP((12, 10, 9, 3), 8), "plain": en.MLP((12, 10, 9, 3)),
              "ensemble": en.EnsembleMLP((12, 10, 9, 3))}
    spectra, fits, removal, latent = [], [], [], []
    for name, model in models.items():
        spectrum = model_spectra(model).assign(model=name)
        spectra.append(spectrum)
        score = "tau" if name.startswith("mdl") else "sigma"
        group = spectrum[spectrum.layer == "layer1"].sort_values(f"rank_{score}")
        fit = fit_piecewise_power_law(range(1, len(group) + 1), group[score].to_numpy(), n_boot=5)
        fits.append({"model": name, "layer": "layer1", "score": score, "n_modes": len(group), **fit.to_dict()})
        for order in ("least_first", "most_first", "random"):
            curve = mode_removal_curve(model, (x, y), 1, order=order, fractions=[0, 0.5, 1], n_random=2)
            removal.append(curve.assign(model=name))
        latent.append(latent_table(model, (x, y), n_components=2).assign(model=name))
    comparison = compare_categories_modes(models["ensemble"], (x, y), ks=[1, 3, 9])
    folder = tmp_path / "runs" / protocol.ANALYSIS
    folder.mkdir(parents=True)
    for name, frame in (("spectra", pd.concat(spectra)), ("fits", pd.DataFrame(fits)), ("removal", pd.concat(removal)),
                        ("latent", pd.concat(latent)), ("compare_mass", comparison.mass),
                        ("compare_auc", comparison.auc), ("compare_accuracy", comparison.accuracy)):
        frame.to_csv(folder / f"{name}.csv", index=False)
    sweep = tmp_path / "runs" / protocol.SWEEP
    sweep.mkdir()
    pd.DataFrame({"width": [25, 50, 100, 200], "p_min": [2, 4, 8, None], "plain_parameters": [10, 20, 40, 80],
                  "mdl_parameters_at_p_min": [5, 8, 20, None], "parameter_fraction": [0.5, 0.4, 0.5, None]}
                 ).to_csv(sweep / "pmin.csv", index=False)
    (sweep / "fit.json").write_text(json.dumps({"n_widths": 3, "log": {"a": 0.0, "b": 1.0}, "modes": [2, 4, 8],
                                                "tolerance": 0.01, "epochs": 1}))
    tables = protocol.figure_tables(tmp_path / "runs")
    assert set(tables["fit_lines"].model) == set(tables["fits"].model)
    written = modes.draw_figures(tables, tmp_path / "figures")
    names = {p.name for p in written}
    for stem in ("modes_spectrum", "modes_removal", "modes_categories", "modes_latent", "modes_width"):
        assert f"{stem}.png" in names and f"{stem}.pdf" in names
        assert (tmp_path / "figures" / f"{stem}.png").stat().st_size > 1000
