"""benchmarks/device_check.py: the prepared GPU session runs its checks (here on the CPU) and fails loudly."""
import json
import shutil

import pytest

from tests.common import load_script

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")),
                                 reason="the fused step compiles with torch.compile (a C++ compiler on CPU)")]


def test_quick_checks_pass_on_cpu(tmp_path):
    assert load_script("device_check", "benchmarks").main(["--device", "cpu", "--quick", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert all(report[name]["ok"] for name in ("layers", "fused_step", "train_many_cnn"))
    assert "bench" not in report


def test_a_failing_check_fails_the_run(tmp_path, monkeypatch):
    script = load_script("device_check", "benchmarks")
    monkeypatch.setattr(script, "check_layers", lambda device: {"ok": False, "why": "forced"})
    assert script.main(["--device", "cpu", "--quick", "--out", str(tmp_path)]) == 1
    assert json.loads((tmp_path / "device_check.json").read_text())["layers"]["why"] == "forced"
