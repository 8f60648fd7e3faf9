"""The Python API: schedules, theory, design, training, sweeps, validation and the GIL."""

import json
import math
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import annealvi
from conftest import SMALL_RUN, SMALL_SWEEP


# --- schedules ---------------------------------------------------------------------------------

def test_exponential_schedule_values():
    s = annealvi.schedule.exponential(0.05, 4000)
    assert s(0) == pytest.approx(0.05, rel=1e-15)
    assert s(2000) == pytest.approx(0.05 ** 0.5, rel=1e-14)
    t = np.array([[0, 1000], [4000, 9000]])
    b = s(t)
    assert b.shape == (2, 2)
    assert b[1, 0] == 1.0 and b[1, 1] == 1.0
    assert s.rate == pytest.approx(0.05 ** (-1 / 4000))
    assert np.all(np.diff(s(np.arange(0, 4001, 100))) > 0)


def test_other_schedules():
    lin = annealvi.schedule.linear(0.2, 100)
    assert lin(50) == pytest.approx(0.6)
    lt = annealvi.schedule.linear_temperature(0.2, 100)
    assert lt(50) == pytest.approx(1 / (5 + (1 - 5) * 0.5))
    assert annealvi.schedule.constant(0.5)(np.arange(3)).tolist() == [0.5, 0.5, 0.5]
    assert annealvi.schedule.exponential(0.1, 0)(0) == 1.0


@pytest.mark.parametrize("args,field", [((0.0, 100), "beta_i"), ((1.5, 100), "beta_i"),
                                        ((0.1, -5), "t0"), ((float("nan"), 10), "beta_i")])
def test_schedule_bad_inputs(args, field):
    with pytest.raises(ValueError, match=field):
        annealvi.schedule.exponential(*args)


# --- theory ------------------------------------------------------------------------------------

def test_collapse_probability_grid_and_interval():
    b = np.array([0.01, 0.1])[:, None]
    t = np.array([0, 500, 8000])[None, :]
    r = annealvi.collapse_probability(b, t, ics=400)
    assert r["p"].shape == (2, 3)
    assert np.all((r["ci_low"] <= r["p"] + 1e-12) & (r["p"] <= r["ci_high"]))
    assert np.all(r["collapsed"] == np.round(r["p"] * 400))
    # slow annealing collapses less than none (the paper's main result)
    assert r["p"][1, 2] < r["p"][1, 0] - 0.2
    one = annealvi.collapse_probability(0.1, 8000, ics=400)
    assert float(one["p"]) == r["p"][1, 2]  # same initial conditions in every call
    f = annealvi.collapse_probability(0.1, [500, 8000], method="formula")
    assert np.all(np.isnan(f["ci_low"])) and f["p"][1] < f["p"][0]


@pytest.mark.parametrize("kw,field", [(dict(d=0), "`d`"), (dict(w_star=1.0), "`w_star`"),
                                      (dict(r=-1.0), "`r`"), (dict(lr=0.0), "`lr`"),
                                      (dict(method="sgd"), "`method`"), (dict(ics=0), "`ics`"),
                                      (dict(init_scale=-1.0), "`init_scale`")])
def test_collapse_probability_bad_inputs(kw, field):
    with pytest.raises(ValueError, match=field):
        annealvi.collapse_probability(0.1, 1000, **kw)


def test_design_matches_the_prediction():
    r = annealvi.design(0.1, ics=300, seed=4)
    assert r["found"]
    assert r["p_predicted"] <= 0.1
    p = annealvi.collapse_probability(r["beta_i"], r["t0"], ics=300, seed=4)
    assert float(p["p"]) == pytest.approx(r["p_predicted"], abs=1e-12)
    assert r["t0"] == np.nanmin(r["candidates"]["t0"])
    assert r["check"] is None
    with pytest.raises(ValueError, match="max_collapse"):
        annealvi.design(1.5)


def test_ode_trajectory_starts_at_the_training_state():
    tr = annealvi.ode_trajectory(0.05, 400, steps=600, every=50, d=32, seed=3, quasi_static=True)
    assert tr["step"][0] == 0 and tr["step"][-1] == 600
    assert tr["sigma_1"][0] == pytest.approx(1 / math.sqrt(0.05))
    run = annealvi.train(SMALL_RUN)
    assert run["trajectory"]["m"][0, 0] == pytest.approx(tr["m_1"][0], rel=1e-12)
    assert run["trajectory"]["q"][0, 1] == pytest.approx(tr["q_12"][0], rel=1e-12)


# --- configurations ----------------------------------------------------------------------------

@pytest.mark.parametrize("cfg,kw,field", [
    ({"target": {"w_star": 2.0}}, {}, "target.w_star"),
    (None, {"optim__lr": -1.0}, "optim.lr"),
    (None, {"target": {"d": 0}}, "target.d"),
    ("[target]\nd = 8\nbogus = 1\n", {}, "bogus"),
])
def test_config_errors_name_the_field(cfg, kw, field):
    with pytest.raises(ValueError, match=field):
        annealvi.train(cfg, **kw)


def test_config_sources_agree(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text(SMALL_RUN)
    a = annealvi.resolve_config(SMALL_RUN)
    assert a == annealvi.resolve_config(p) == annealvi.resolve_config(str(p))
    d = {"seed": 3, "target": {"d": 32}, "student": {"sigma0": "schedule"},
         "schedule": {"kind": "exponential", "beta_i": 0.05, "t0": 400},
         "optim": {"steps": 600}, "record": {"every": 50}}
    assert annealvi.resolve_config(d) == a
    assert annealvi.resolve_config(None, seed=3, target__d=32, student={"sigma0": "schedule"},
                                   schedule__kind="exponential", schedule__beta_i=0.05,
                                   schedule__t0=400, optim__steps=600, record__every=50) == a


# --- equality with the CLI ---------------------------------------------------------------------

def test_train_equals_cli(cli, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text(SMALL_RUN)
    subprocess.run([cli, "train", "--config", str(cfg), "--out", str(tmp_path / "cli")],
                   check=True, capture_output=True)
    summary = json.loads((tmp_path / "cli" / "summary.json").read_text())
    py = annealvi.train(cfg)["summary"]
    assert py["outcome"] == summary["outcome"]
    assert py["final_step"] == summary["final_step"]
    assert py["m"].tolist() == summary["m"]
    assert py["sigma"].tolist() == summary["sigma"]


def _runs(path):
    out = {}
    for line in (path / "runs.jsonl").read_text().splitlines():
        r = json.loads(line)
        out[(r["beta_i"], r["t0"], r["seed"])] = r
    return out


def test_sweep_equals_cli(cli, tmp_path):
    cfg = tmp_path / "sweep.toml"
    cfg.write_text(SMALL_SWEEP)
    subprocess.run([cli, "sweep", "--config", str(cfg), "--out", str(tmp_path / "cli")],
                   check=True, capture_output=True)
    res = annealvi.sweep(SMALL_SWEEP, tmp_path / "py")
    cli_runs, py_runs = _runs(tmp_path / "cli"), _runs(tmp_path / "py")
    assert cli_runs.keys() == py_runs.keys() and len(py_runs) == 12
    for k in cli_runs:
        assert cli_runs[k]["outcome"] == py_runs[k]["outcome"], k
        assert cli_runs[k]["m"] == py_runs[k]["m"], k
    cells = res["cells"]
    lines = (tmp_path / "cli" / "cells.csv").read_text().splitlines()
    head = lines[0].split(",")
    assert len(lines) - 1 == len(cells["beta_i"]) == 3
    for i, line in enumerate(lines[1:]):
        row = dict(zip(head, line.split(",")))
        assert float(row["beta_i"]) == cells["beta_i"][i] and float(row["t0"]) == cells["t0"][i]
        assert int(row["collapsed"]) == cells["collapsed"][i]
        assert float(row["ci_high"]) == pytest.approx(cells["ci_high"][i], rel=1e-12)


def test_sweep_resume_and_refusal(tmp_path):
    first = annealvi.sweep(SMALL_SWEEP, tmp_path / "s", grid__seeds=2)
    assert first["report"]["ran"] == 6
    again = annealvi.sweep(SMALL_SWEEP, tmp_path / "s", grid__seeds=2)
    assert again["report"]["ran"] == 0 and again["report"]["skipped"] == 6
    assert again["cells"]["collapsed"].tolist() == first["cells"]["collapsed"].tolist()
    with pytest.raises(ValueError, match="resume"):
        annealvi.sweep(SMALL_SWEEP, tmp_path / "s", resume=False, grid__seeds=2)
    with pytest.raises(ValueError, match="different configuration"):
        annealvi.sweep(SMALL_SWEEP, tmp_path / "s", grid__seeds=3)
    with pytest.raises(ValueError, match="grid.seeds"):
        annealvi.sweep(SMALL_SWEEP, tmp_path / "t", grid__seeds=0)


# --- threads and signals -----------------------------------------------------------------------

def test_sweep_releases_the_gil(tmp_path):
    done = []
    t = threading.Thread(target=lambda: done.append(
        annealvi.sweep(SMALL_SWEEP, tmp_path / "g", grid__seeds=8, threads=1)))
    t.start()
    ticks = 0
    while t.is_alive():
        ticks += 1
        time.sleep(0.001)
    t.join()
    assert done and done[0]["report"]["ran"] == 24
    # with the GIL held for the whole sweep the loop would see the thread alive only once
    assert ticks > 20, ticks


_SWEEP_SCRIPT = """
import signal, sys, annealvi
# Python leaves SIGINT ignored when started with it ignored (as under `cmd &` in a script)
signal.signal(signal.SIGINT, signal.default_int_handler)
from conftest import SMALL_SWEEP
try:
    annealvi.sweep(SMALL_SWEEP, sys.argv[1], grid__seeds=4000, threads=1)
    print("finished")
except KeyboardInterrupt:
    print("KeyboardInterrupt")
"""


def _lines(path):
    return path.read_text().count("\n") if path.exists() else 0


def _interrupted_sweep(out):
    """Runs a long sweep in a fresh interpreter, sends it SIGINT (Ctrl-C) once it has added
    runs to disk, and returns (seconds from the signal to the exit, what it printed)."""
    proc = subprocess.Popen([sys.executable, "-c", _SWEEP_SCRIPT, str(out)],
                            cwd=os.path.dirname(__file__), stdout=subprocess.PIPE, text=True)
    runs = out / "runs.jsonl"
    before = _lines(runs)
    deadline = time.time() + 60
    while time.time() < deadline and _lines(runs) <= before:
        time.sleep(0.05)
    time.sleep(0.2)
    start = time.time()
    proc.send_signal(signal.SIGINT)
    printed, _ = proc.communicate(timeout=60)
    return time.time() - start, printed.strip()


def test_ctrl_c_interrupts_a_sweep_and_keeps_finished_runs(tmp_path):
    out = tmp_path / "k"
    elapsed, printed = _interrupted_sweep(out)
    assert printed == "KeyboardInterrupt"
    assert elapsed < 1.5, elapsed
    done = (out / "runs.jsonl").read_text().splitlines()
    assert 0 < len(done) < 12000
    # resuming skips the finished runs and appends new ones
    elapsed, printed = _interrupted_sweep(out)
    assert printed == "KeyboardInterrupt"
    lines = (out / "runs.jsonl").read_text().splitlines()
    keys = [tuple(json.loads(x)[k] for k in ("beta_i", "t0", "seed")) for x in lines]
    assert len(lines) > len(done) and len(set(keys)) == len(keys)


_LONG_CALL_SCRIPT = """
import signal, sys, annealvi
# Python leaves SIGINT ignored when started with it ignored (as under `cmd &` in a script)
signal.signal(signal.SIGINT, signal.default_int_handler)
calls = {
    "train": lambda: annealvi.train(optim__steps=10**8, record__every=0),
    "train_flow": lambda: annealvi.train(optim__steps=10**8, record__every=0, target__d=8,
                                         student__family="realnvp"),
    "design": lambda: annealvi.design(0.05, ics=100000, check_seeds=1000),
    # the prediction takes about 0.5 s, then 10^6 SGD runs of 20 steps
    "design_check": lambda: annealvi.design(0.9, d=16, ics=50, extra_steps=10,
                                            t_range=(10.0, 11.0), check_seeds=10**6),
    # minutes of integration (τ = 5000)
    "ode": lambda: annealvi.ode_trajectory(0.05, 1000, steps=100000, every=100),
}
print("started", flush=True)
try:
    calls[sys.argv[1]]()
    print("finished")
except KeyboardInterrupt:
    print("KeyboardInterrupt")
"""


@pytest.mark.parametrize("call,after", [("train", 0.3), ("train_flow", 0.3), ("design", 0.3),
                                        ("design_check", 1.5), ("ode", 0.3)])
def test_ctrl_c_interrupts_a_long_single_call(call, after):
    """SIGINT into a call that would run for minutes or hours: KeyboardInterrupt, promptly."""
    proc = subprocess.Popen([sys.executable, "-c", _LONG_CALL_SCRIPT, call],
                            cwd=os.path.dirname(__file__), stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "started"
        time.sleep(after)
        start = time.time()
        proc.send_signal(signal.SIGINT)
        printed, _ = proc.communicate(timeout=60)
        elapsed = time.time() - start
    finally:
        proc.kill()
        proc.wait()
    assert printed.strip() == "KeyboardInterrupt"
    assert elapsed < 1.5, elapsed


def test_help_explains_arguments_and_units():
    doc = annealvi.collapse_probability.__doc__
    for word in ["beta_i", "t0", "SGD steps", "η", "w_star", "init_scale", "ics", "Wilson"]:
        assert word in doc, word
    assert "{model" not in doc
    for f in [annealvi.design, annealvi.ode_trajectory, annealvi.train, annealvi.sweep,
              annealvi.schedule.exponential, annealvi.Target.from_callable]:
        assert f.__doc__ and len(f.__doc__) > 80, f
    assert "lr" in annealvi.ode_trajectory.__doc__ and "extra_steps" not in annealvi.ode_trajectory.__doc__
