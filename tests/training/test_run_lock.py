# SPDX-License-Identifier: MIT
"""One process trains in a run folder at a time; a crash or kill never leaves the folder locked."""
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import torch

import ensemble_nets as en
from ensemble_nets.data import Dataset
from ensemble_nets.training.runs import CHECKPOINT, CONFIG, LOCK, SUMMARY, RunFolderLocked, RunLock
from tests.conftest import REPO

SCRIPT = REPO / "experiments" / "run_mnist.py"
TINY = ["--dataset", "mnist5k", "--n-train", "300", "--n-test", "300", "--sizes", "784", "8", "10",
        "--batch-size", "100", "--n-eval-networks", "2", "--no-progress", "--device", "cpu"]
HOLDER = """
import sys
from ensemble_nets.training.runs import RunLock
lock = RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.read()  # hold until the test closes stdin or kills this process
"""


def _data(n=64, n_features=12):
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n, n_features, generator=g), torch.randint(0, 10, (n,), generator=g)
    return Dataset(x, y, x[:16], y[:16], name="toy", test_source="toy")


def _train(run_dir, epochs=1, resume=False):
    torch.manual_seed(0)
    config = en.TrainConfig(epochs=epochs, batch_size=32, n_eval_networks=2, device="cpu")
    return en.train(en.EnsembleMLP((12, 8, 10)), _data(), config, run_dir=run_dir, resume=resume, progress=False)


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _hold(run_dir):
    """A second process holding the lock of ``run_dir``; returns once it holds it."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=_env())
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_second_lock_is_refused_and_names_the_holder(tmp_path):
    with RunLock(tmp_path / "run") as lock:
        assert lock.held and f"pid={os.getpid()} " in (tmp_path / "run" / LOCK).read_text()
        with pytest.raises(RunFolderLocked, match=f"run folder {tmp_path / 'run'} is in use.*PID {os.getpid()}"):
            RunLock(tmp_path / "run").acquire()
    assert not lock.held and not (tmp_path / "run").exists()  # released; the folder it made was empty
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "kept.txt").write_text("a run's file")
    RunLock(tmp_path / "run").acquire().release()  # free again
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["kept.txt"]  # no .lock left, nothing lost


def test_train_refuses_a_locked_folder_and_writes_nothing(tmp_path):
    run = tmp_path / "run"
    with RunLock(run):
        with pytest.raises(RunFolderLocked, match="choose another output folder"):
            _train(run)
    assert not (run / CONFIG).exists() and not (run / CHECKPOINT).exists()
    with pytest.raises(ValueError, match="decay"):  # bad options: refused before anything is written
        torch.manual_seed(0)
        en.train(en.EnsembleMLP((12, 8, 10)), _data(), en.TrainConfig(epochs=1, decay=("weights",), device="cpu"),
                 run_dir=tmp_path / "new", progress=False)
    assert not (tmp_path / "new").exists()
    _train(run)  # the lock went with the `with`
    assert json.loads((run / SUMMARY).read_text())["epochs"] == 1


def test_train_releases_the_lock_on_success_and_on_error(tmp_path):
    run = tmp_path / "run"
    _train(run)
    with pytest.raises(FileExistsError, match="already holds a run"):  # an error inside train()
        _train(run)
    with RunLock(run):  # neither call left it locked
        pass
    assert _train(run, epochs=2, resume=True).summary["epochs"] == 2


def test_another_process_holding_the_folder_blocks_train(tmp_path):
    holder = _hold(tmp_path / "run")
    try:
        with pytest.raises(RunFolderLocked, match=f"PID {holder.pid} on host {socket.gethostname()}"):
            _train(tmp_path / "run")
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
        holder.stdout.close()
    _train(tmp_path / "run")  # the holder exited: free


def test_two_scripts_on_one_folder_and_a_killed_holder(tmp_path, mnist_root):
    run = tmp_path / "run"

    def script(*args):
        return subprocess.run([sys.executable, str(SCRIPT), *TINY, "--data-root", str(mnist_root), "--out", str(run),
                               *args], capture_output=True, text=True, cwd=REPO, timeout=300, env=_env())

    first = script("--epochs", "1")
    assert first.returncode == 0, first.stderr
    checkpoint = (run / CHECKPOINT).read_bytes()
    holder = _hold(run)
    try:
        tick = time.perf_counter()
        refused = script("--epochs", "2", "--resume")
        assert refused.returncode != 0 and time.perf_counter() - tick < 60
        assert f"run folder {run} is in use" in refused.stderr and f"PID {holder.pid}" in refused.stderr
        assert (run / CHECKPOINT).read_bytes() == checkpoint  # nothing the first run wrote is lost
    finally:
        holder.kill()  # SIGKILL: no clean-up code runs; the OS drops the lock
        holder.wait(timeout=30)
        holder.stdin.close()
        holder.stdout.close()
    assert f"pid={holder.pid} " in (run / LOCK).read_text()  # the dead holder's file, unlocked
    resumed = script("--epochs", "2", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((run / SUMMARY).read_text())["epochs"] == 2 and not (run / LOCK).exists()
