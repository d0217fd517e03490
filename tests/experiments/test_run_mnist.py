# SPDX-License-Identifier: MIT
"""End to end: the CLI on a tiny budget, bad flags, resume after an interruption."""
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "experiments" / "run_mnist.py"
TINY = ["--dataset", "mnist5k", "--n-train", "600", "--n-test", "2000", "--sizes", "784", "24", "10",
        "--batch-size", "100", "--n-eval-networks", "2", "--no-progress", "--device", "cpu"]


def _run(args, **kwargs):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=REPO,
                          timeout=300, **kwargs)


def test_help_lists_the_knobs():
    out = _run(["--help"])
    assert out.returncode == 0
    for flag in ("--protocol", "--dataset", "--data-root", "--epochs", "--batch-size", "--lr", "--lr-halve-every",
                 "--weight-decay", "--seed", "--device", "--out", "--resume", "--model", "--lr-scales", "--fused-step"):
        assert flag in out.stdout


def test_tiny_run_writes_valid_summary(tmp_path, mnist_root):
    out = _run([*TINY, "--data-root", str(mnist_root), "--epochs", "2", "--out", str(tmp_path / "run")])
    assert out.returncode == 0, out.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    for key in ("dataset", "n_train", "n_test", "test_source", "epochs", "test_acc_mean_field", "test_acc_sampled",
                "categories", "wall_seconds", "device"):
        assert key in summary
    assert summary["n_train"] == 600 and summary["n_test"] == 2000 and summary["epochs"] == 2
    assert summary["test_source"] == "official-test-10k"
    assert set(summary["categories"]["layer1"]) == {"important", "unimportant", "variable"}
    assert 0.3 < summary["test_acc_sampled"]["mean"] <= 1
    for name in ("config.json", "metrics.csv", "checkpoint.pt"):
        assert (tmp_path / "run" / name).is_file()


def test_interrupted_run_resumes_to_the_same_result(tmp_path, mnist_root):
    common = [*TINY, "--data-root", str(mnist_root)]
    full = _run([*common, "--epochs", "3", "--out", str(tmp_path / "full")])
    assert full.returncode == 0, full.stderr
    first = _run([*common, "--epochs", "1", "--out", str(tmp_path / "cut")])
    assert first.returncode == 0, first.stderr
    refused = _run(["--epochs", "3", "--lr", "0.5", "--out", str(tmp_path / "cut"), "--resume"])
    assert refused.returncode != 0 and "--lr" in refused.stderr
    # --resume needs nothing but the folder: the stored configuration (data root included) is reused.
    second = _run(["--epochs", "3", "--out", str(tmp_path / "cut"), "--resume", "--no-progress"])
    assert second.returncode == 0, second.stderr
    a = json.loads((tmp_path / "full" / "summary.json").read_text())
    b = json.loads((tmp_path / "cut" / "summary.json").read_text())
    for key in ("test_acc_mean_field", "test_acc_sampled", "train_loss", "categories"):
        assert a[key] == b[key]


@pytest.mark.parametrize("bad", [["--epochs", "-1"], ["--batch-size", "0"], ["--lr", "0"], ["--dataset", "cifar"],
                                 ["--protocol", "nonsense"], ["--n-eval-networks", "1"], ["--pi-init", "2"],
                                 ["--activation", "swish"], ["--decay", "weights"], ["--lr-scales", "pi"],
                                 ["--lr-scales", "pu=0.1"], ["--lr-scales", "pi=-1"]])
def test_nonsense_values_fail_clearly(bad, tmp_path):
    out = _run([*bad, "--out", str(tmp_path / "x")])
    assert out.returncode != 0
    assert "error" in out.stderr.lower()
    assert not (tmp_path / "x").exists()


def test_missing_full_mnist_is_explained(tmp_path):
    out = _run(["--dataset", "mnist", "--data-root", str(tmp_path), "--no-download", "--out", str(tmp_path / "x")])
    assert out.returncode != 0
    assert "--dataset mnist5k" in out.stderr
