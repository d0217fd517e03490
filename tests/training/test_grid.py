# SPDX-License-Identifier: MIT
"""run_grid: one run folder per cell, resume without redoing, failures reported by name."""
import json

import pytest

from ensemble_nets.training import GridError, run_grid


def _square(cell, cell_dir):
    (cell_dir / "log.txt").write_text("ran\n")
    if cell.get("fail"):
        raise FloatingPointError(f"planted failure in {cell['name']}")
    return {"y": cell["x"] ** 2}


def _cells(n, fail=()):
    return [{"name": f"c{i}", "x": i, **({"fail": True} if i in fail else {})} for i in range(n)]


def test_serial_writes_summaries_and_table(tmp_path):
    frame = run_grid(_cells(3), _square, tmp_path, backend="serial", progress=False)
    assert list(frame["name"]) == ["c0", "c1", "c2"]
    assert list(frame["y"]) == [0, 1, 4]
    assert set(frame["status"]) == {"done"}
    summary = json.loads((tmp_path / "c2" / "summary.json").read_text())
    assert summary["cell"] == {"name": "c2", "x": 2} and summary["result"] == {"y": 4}


def test_resume_skips_finished_cells(tmp_path):
    calls = []

    def fn(cell, cell_dir):
        calls.append(cell["name"])
        return {"y": cell["x"] + 1}

    run_grid(_cells(2), fn, tmp_path, backend="serial", progress=False)
    frame = run_grid(_cells(4), fn, tmp_path, backend="serial", progress=False)
    assert calls == ["c0", "c1", "c2", "c3"]  # c0, c1 not redone
    assert list(frame["status"]) == ["skipped", "skipped", "done", "done"]
    assert list(frame["y"]) == [1, 2, 3, 4]


def test_failure_reported_by_name_and_others_kept(tmp_path):
    with pytest.raises(GridError, match=r"c1: FloatingPointError: planted failure in c1") as info:
        run_grid(_cells(3, fail={1}), _square, tmp_path, backend="serial", progress=False)
    frame = info.value.frame
    assert list(frame["status"]) == ["done", "failed", "done"]
    assert "Traceback" in frame.loc[1, "error"]
    assert (tmp_path / "c1" / "error.txt").is_file() and not (tmp_path / "c1" / "summary.json").exists()
    assert (tmp_path / "c2" / "summary.json").is_file()
    # the retry runs only the failed cell; it now passes and the error file goes
    frame = run_grid(_cells(3), _square, tmp_path, backend="serial", progress=False)
    assert list(frame["status"]) == ["skipped", "done", "skipped"]
    assert not (tmp_path / "c1" / "error.txt").exists()


def test_no_raise_returns_status(tmp_path):
    frame = run_grid(_cells(2, fail={0}), _square, tmp_path, backend="serial", progress=False,
                     raise_on_error=False)
    assert list(frame["status"]) == ["failed", "done"]


@pytest.mark.parametrize("cells, match", [
    ([{"x": 1}], "non-empty string 'name'"),
    ([{"name": "a"}, {"name": "a"}], "repeated"),
    ([{"name": "a/b"}], "plain folder name"),
])
def test_bad_cells(tmp_path, cells, match):
    with pytest.raises(ValueError, match=match):
        run_grid(cells, _square, tmp_path, backend="serial", progress=False)


def test_bad_backend(tmp_path):
    with pytest.raises(ValueError, match="backend='dask'"):
        run_grid(_cells(1), _square, tmp_path, backend="dask")


@pytest.mark.slow
def test_ray_local_workers(tmp_path):
    pytest.importorskip("ray")
    with pytest.raises(GridError, match="c2: FloatingPointError") as info:
        run_grid(_cells(4, fail={2}), _square, tmp_path, n_workers=2, progress=False)
    frame = info.value.frame
    assert list(frame["status"]) == ["done", "done", "failed", "done"]
    assert list(frame["y"].iloc[[0, 1, 3]]) == [0, 1, 9]


def test_finished_cell_asked_with_other_settings_is_reused_with_a_warning(tmp_path):
    import warnings

    run_grid([{"name": "c0", "x": 3, "epochs": 100}], _square, tmp_path, backend="serial", progress=False)
    with pytest.warns(UserWarning, match=r"c0: epochs: 100 -> 200.*delete their folders or pass a new out_dir"):
        frame = run_grid([{"name": "c0", "x": 3, "epochs": 200}], _square, tmp_path, backend="serial",
                         progress=False)
    assert list(frame["status"]) == ["skipped"] and list(frame["y"]) == [9]  # the stored result, not rerun
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same settings (a tuple stored as a list) warn nothing
        run_grid([{"name": "c1", "x": 2, "widths": (1, 2)}], _square, tmp_path, backend="serial", progress=False)
        run_grid([{"name": "c1", "x": 2, "widths": (1, 2)}], _square, tmp_path, backend="serial", progress=False)
