"""benchmarks/bench_many.py --plot: the stored K-curves as a figure; a wrong file is named."""
from pathlib import Path

import pytest

from tests.common import load_script

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def test_plot_of_stored_k_curves(tmp_path):
    bench = load_script("bench_many", "benchmarks")
    files = [RESULTS / "many_cpu_1thread_quiet.json", RESULTS / "many_cpu_1thread_cnn.json"]
    frame = bench.curve_frame(files)
    assert {"ensemble 784-50-50-10", "ensemble cnn"} <= set(frame["model"]) and (frame["ratio"] > 0).all()
    out = tmp_path / "k.png"
    assert bench.main(["--plot", *map(str, files), "--out", str(out)])["out"] == str(out) and out.stat().st_size > 0
    with pytest.raises(SystemExit, match="not a bench_many result"):
        bench.curve_frame([RESULTS / "conv_tune4_cpu_s0.json"])
