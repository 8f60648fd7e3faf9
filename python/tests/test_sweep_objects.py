"""Sweeps as objects: in memory or on disk, cells and runs as tables, progress and threads."""

import math
import tempfile

import numpy as np
import pytest

import annealvi
from annealvi import _progress
from conftest import SMALL_SWEEP

RUN = {"seed": 7, "target": {"d": 32}, "student": {"sigma0": "schedule"},
       "objective": {"samples": 16}}
GRID = {"beta_i": [0.05, 0.3], "t0": [300], "no_annealing": True, "seeds": 4,
        "extra_steps": 200}


def test_sweep_in_memory_leaves_nothing_and_equals_the_sweep_on_disk(tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    mem = annealvi.sweep(SMALL_SWEEP)
    assert mem.out is None and list(scratch.iterdir()) == []
    disk = annealvi.sweep(SMALL_SWEEP, tmp_path / "d")
    assert (tmp_path / "d" / "runs.jsonl").exists() and disk.out == str(tmp_path / "d")
    for k in mem.cells:
        assert np.array_equal(mem.cells[k], disk.cells[k], equal_nan=True), k
    for k in mem.runs:
        if k != "wall_seconds":
            assert np.array_equal(mem.runs[k], disk.runs[k]), k
    # the agreed interface: the run configuration and the grid apart
    split = annealvi.run_sweep(RUN, GRID)
    assert split.cells["collapsed"].tolist() == mem.cells["collapsed"].tolist()
    assert split.runs["m_1"].tolist() == mem.runs["m_1"].tolist()


def test_cells_and_runs_are_tables():
    res = annealvi.sweep(SMALL_SWEEP)
    c = res.cells
    # `partial` was missing; the flow-only columns were NaN columns for mixture runs
    assert "partial" in c
    assert not {"mean_mode_weight_error", "mean_ess_fraction", "mean_kl"} & set(c)
    assert np.all(c["n"] == c["collapsed"] + c["covered"] + c["diverged"] + c["partial"])
    # ci_low <= p <= ci_high exactly (matplotlib's errorbar refuses a negative yerr)
    p = c["p_collapse"]
    assert np.all(p - c["ci_low"] >= 0) and np.all(c["ci_high"] - p >= 0)
    assert c.rows == 3 and res.runs.rows == 12
    r = res.runs
    assert set(r["outcome"]) <= {"covered", "collapsed", "partial", "diverged"}
    assert {"m_1", "m_2", "q_11", "q_12", "q_22", "sigma_1", "w_2"} <= set(r)
    assert np.all((r["mode"] >= 0) == (r["outcome"] == "collapsed"))
    # per-cell counts from the runs agree with the cells
    for i in range(c.rows):
        sel = (r["beta_i"] == c["beta_i"][i]) & (r["t0"] == c["t0"][i])
        assert sel.sum() == c["n"][i]
        assert (r["outcome"][sel] == "collapsed").sum() == c["collapsed"][i]
    # compatibility with the dicts of earlier versions
    assert res["cells"] is res.cells and res["report"]["ran"] == 12
    assert "3 cells" in repr(res) and "in memory" in repr(res)
    assert "partial" in repr(c)
    pd = pytest.importorskip("pandas")
    df = res.runs.to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == 12 and "q_12" in df.columns
    assert res.to_dataframe()["p_collapse"].tolist() == p.tolist()


def test_ci_contains_p_when_nothing_collapses():
    # slow annealing: no run collapses, and the interval must start exactly at p = 0 (it
    # started 2.8e-17 above it before the library clamped it)
    res = annealvi.sweep(SMALL_SWEEP, grid__seeds=2, grid__beta_i=[0.05], grid__t0=[2000],
                         grid__no_annealing=False, run__seed=1)
    c = res.cells
    assert np.all(c["ci_low"] <= c["p_collapse"]) and np.all(c["p_collapse"] <= c["ci_high"])
    zero = c["p_collapse"] == 0
    assert zero.any()
    assert np.all(c["ci_low"][zero] == 0.0)


def test_progress_counts_runs_and_threads_do_not_change_results():
    calls = []
    one = annealvi.sweep(SMALL_SWEEP, threads=1, progress=lambda d, n: calls.append((d, n)))
    assert calls and calls[-1] == (12, 12)
    assert all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))
    two = annealvi.sweep(SMALL_SWEEP, threads=2, progress=False)
    assert one.runs["m_1"].tolist() == two.runs["m_1"].tolist()


def test_progress_callback_exception_stops_the_sweep(tmp_path):
    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop()

    with pytest.raises(Stop):
        annealvi.sweep(SMALL_SWEEP, tmp_path / "s", grid__seeds=400, threads=1, progress=stop)
    done = (tmp_path / "s" / "runs.jsonl").read_text().splitlines()
    assert len(done) < 1200


def test_progress_argument():
    assert _progress.reporter(False).callback is None
    assert _progress.reporter(print).callback is print
    with _progress.reporter(True, 3, "x") as r:
        r.callback(1, 3)
        r.callback(3, 3)
    with pytest.raises(TypeError, match="progress"):
        _progress.reporter("yes")
    with pytest.raises(TypeError, match="progress"):
        annealvi.sweep(SMALL_SWEEP, progress=3)


def test_bad_sweep_arguments_name_the_field():
    with pytest.raises(ValueError, match="grid.seeds"):
        annealvi.run_sweep(RUN, dict(GRID, seeds=0))
    with pytest.raises(ValueError, match="threads"):
        annealvi.sweep(SMALL_SWEEP, threads=-1)
    with pytest.raises(TypeError, match="grid"):
        annealvi.run_sweep(RUN, [1, 2])
    with pytest.raises(ValueError, match="grid"):
        annealvi.run_sweep(SMALL_SWEEP, GRID)
    assert math.isfinite(annealvi.run_sweep(RUN, dict(GRID, seeds=1)).report["seconds"])


def test_run_columns_of_three_components_are_in_order():
    res = annealvi.run_sweep(dict(RUN, student={"sigma0": "schedule", "components": 3}),
                             dict(GRID, seeds=1, beta_i=[0.3], no_annealing=False))
    r = res.runs
    names = ["q_11", "q_12", "q_13", "q_22", "q_23", "q_33"]
    assert [k for k in r if k.startswith("q_")] == names
    assert [k for k in r if k.startswith("m_")] == ["m_1", "m_2", "m_3"]
    for k in (1, 2, 3):
        # q_kk = |μ_k|² ≥ (μ_k·μ̂)² = m_k²
        assert np.all(r["q_%d%d" % (k, k)] >= r["m_%d" % k] ** 2 - 1e-9)
    for a, b in ((1, 2), (1, 3), (2, 3)):
        qab = r["q_%d%d" % (a, b)]
        assert np.all(qab ** 2 <= r["q_%d%d" % (a, a)] * r["q_%d%d" % (b, b)] + 1e-9)
