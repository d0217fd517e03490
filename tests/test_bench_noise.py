"""benchmarks/bench_noise.py: the side-by-side timing and the training control run, tiny."""
import pytest

from tests.common import load_script


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the control's fused step: torch.compile's imports
def test_tiny_timing_and_control(tmp_path):
    bench = load_script("bench_noise", "benchmarks")
    out = tmp_path / "noise.json"
    result = bench.main(["--shapes", "linear 500x400", "--threads", "1", "--calls", "2", "--repeats", "1",
                         "--json", str(out)])
    (row,) = result["rows"]
    assert row["threads"] == 1 and all(row[f"{kind}_{source}_ms"] > 0 for kind in ("draw", "pass")
                                       for source in ("torch", "counter"))
    assert out.stat().st_size > 0
    control = bench.main(["--control", "--seeds", "0", "--epochs", "1", "--data-root", str(tmp_path)])
    assert [r["noise"] for r in control["rows"]] == ["torch", "counter"]
    assert all(0.5 < r["sampled_mean"] <= 1 for r in control["rows"])
