"""benchmarks/bench_epoch.py: a tiny width table runs, and --plot draws a stored one."""
from pathlib import Path

import pytest

from tests.common import load_script


def test_tiny_width_table_and_its_plot(tmp_path):
    bench = load_script("bench_epoch", "benchmarks")
    out = tmp_path / "widths.json"
    result = bench.main(["--device", "cpu", "--widths", "8", "--repeats", "1", "--data-root", str(tmp_path),
                         "--json", str(out)])
    (row,) = result["widths"]
    assert row["width"] == 8 and row["manual"]["ratio_min"] > 0 and row["products_ratio"] > 0
    frame = bench.width_frame(out)
    assert list(frame["variant"]) == ["manual"] and frame["ratio"].iloc[0] == row["manual"]["ratio_min"]
    png = tmp_path / "w.png"
    assert bench.main(["--plot", str(out), "--out", str(png)])["out"] == str(png) and png.stat().st_size > 0


def test_plot_of_the_stored_table_and_a_wrong_file(tmp_path):
    bench = load_script("bench_epoch", "benchmarks")
    stored = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "width_ratio_fused_cpu.json"
    assert set(bench.width_frame(stored)["width"]) == {100, 400, 1600}
    with pytest.raises(SystemExit, match="not a --widths result"):
        bench.width_frame(Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "conv_tune4_cpu_s0.json")
