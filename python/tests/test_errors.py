"""Invalid arguments and failures are errors that name what failed, raised before any heavy
work: failed ODE integrations, a user target's dimension against the configuration's, sizes
and counts out of range, and configuration values that JSON cannot carry."""

import subprocess
import sys
import time

import numpy as np
import pytest

import annealvi


# --- failed integrations -----------------------------------------------------------------------

@pytest.mark.parametrize("method", ["ode", "formula"])
def test_collapse_probability_raises_when_the_ode_cannot_be_integrated(method):
    # τ = lr × (t0 + extra_steps) = 1.5e6 is beyond the integrator's step budget: no silent NaN
    with pytest.raises(ValueError, match=r"\(beta_i = 0\.05, t0 = 1000\).*lr = 1000"):
        annealvi.collapse_probability(0.05, 1000, lr=1e3, method=method)


def test_collapse_probability_names_the_failed_cell_of_a_grid():
    with pytest.raises(ValueError, match=r"t0 = 10000000\) \(1 of 2 cells\).*budget"):
        annealvi.collapse_probability(0.1, [1000, 1e7], ics=50)


# --- a user target's dimension -----------------------------------------------------------------

def test_user_target_refuses_a_configured_dimension():
    t = annealvi.bimodal(2)
    for kw in (dict(target__d=64), dict(config={"target": {"d": 64}}),
               dict(config="[target]\nd = 64"), dict(target={"d": 64})):
        with pytest.raises(ValueError, match=r"`target\.d`: 64 .*dim = 2"):
            annealvi.train(user_target=t, optim__steps=10, **kw)
    with pytest.raises(ValueError, match=r"`target\.d`: 1180591620717411303424 .*dim = 2"):
        annealvi.train(user_target=t, target__d=2 ** 70)
    # the same dimension, or none, is accepted
    for kw in (dict(target__d=2), {}):
        r = annealvi.train(user_target=t, optim__steps=10, record__every=5, **kw)
        assert r["summary"]["m"].shape == (2,)


def test_user_target_refuses_a_configured_dimension_in_a_sweep(tmp_path):
    with pytest.raises(ValueError, match=r"`run\.target\.d`: 64 .*dim = 2"):
        annealvi.sweep({"grid": {"beta_i": [0.1], "t0": [10]}}, tmp_path / "s",
                       user_target=annealvi.bimodal(2), run__target__d=64)
    assert not (tmp_path / "s").exists()


# --- sizes and counts, checked before any work -------------------------------------------------

def test_huge_ode_trajectory_is_refused_in_a_child_process():
    # it used to abort the interpreter (a 160 GB allocation); run it where an abort is harmless
    code = "import annealvi; annealvi.ode_trajectory(0.05, 1000, steps=10**12)"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert "ValueError: invalid value for `steps`: 1000000000000" in p.stderr
    assert "[0, 400000]" in p.stderr


SLOW_CALLS = [
    # (call, keyword arguments, what the message must name)
    ("ode_trajectory", dict(steps=10 ** 8, every=10 ** 7), r"`steps`: 100000000 \(expected an integer in \[0, 400000\]"),
    ("ode_trajectory", dict(steps=2 * 10 ** 7, lr=1e-3, every=1), r"`every`: 1 \(expected an integer ≥ 1000"),
    ("ode_trajectory", dict(steps=2 ** 70), r"`steps`: 1180591620717411303424 \(expected an integer in \[0, 18446744073709551615\]"),
    ("ode_trajectory", dict(every=0), r"`every`: 0 \(expected an integer in \[1, "),
    ("ode_trajectory", dict(d=2 ** 70), r"`d`: 1180591620717411303424 \(expected an integer in \[1, 16777216\]"),
    ("ode_trajectory", dict(seed=2 ** 64), r"`seed`: 18446744073709551616 \(expected an integer in \[0, 18446744073709551615\]"),
    ("ode_trajectory", dict(run=-1), r"`run`: -1 \(expected an integer in \[0, "),
    ("collapse_probability", dict(d=2 ** 70), r"`d`: 1180591620717411303424 \(expected an integer in \[1, 16777216\]"),
    ("collapse_probability", dict(ics=10 ** 12), r"`ics`: 1000000000000 \(expected an integer in \[1, 10000000\]"),
    ("collapse_probability", dict(extra_steps=10 ** 12), r"`extra_steps`: 1000000000000 \(expected an integer in \[0, 100000000\]"),
    ("design", dict(d=2 ** 70), r"`d`: .* \[1, 16777216\]"),
    ("design", dict(ics=10 ** 9), r"`ics`: 1000000000 \(expected an integer in \[1, 10000000\]"),
    ("design", dict(check_seeds=10 ** 9), r"`check_seeds`: 1000000000 \(expected an integer in \[0, 1048576\]"),
    ("design", dict(samples=10 ** 9), r"`samples`: 1000000000 \(expected an integer in \[1, 1048576\]"),
    ("design", dict(extra_steps=10 ** 9), r"`extra_steps`: 1000000000 \(expected an integer in \[0, 100000000\]"),
    ("design", dict(t_range=(10.0, 1e12)), r"`t_range`: \(10, 1000000000000\) \(expected 1 ≤ t_min < t_max ≤ 1e8\)"),
]


@pytest.mark.parametrize("call,kw,match", SLOW_CALLS)
def test_sizes_are_checked_before_any_work(call, kw, match):
    start = time.monotonic()
    with pytest.raises(ValueError, match=match):
        if call == "design":
            annealvi.design(0.1, **kw)
        else:
            getattr(annealvi, call)(0.05, 1000, **kw)
    assert time.monotonic() - start < 2.0


def test_native_functions_check_their_sizes():
    # the wrappers check first; the native functions check again for direct callers
    from annealvi import _native
    start = time.monotonic()
    with pytest.raises(ValueError, match=r"`steps`: 100000000 \(expected an integer in \[0, 400000\]"):
        _native.ode_trajectory(0.05, 1000.0, 10 ** 8, 10 ** 7, 8, 3.0, 0.8, 0.05, 1.0, None, 0,
                               0, False)
    assert time.monotonic() - start < 2.0
    with pytest.raises(ValueError, match=r"`samples`: 1000000000 \(expected an integer in \[1, 1048576\]"):
        _native.gmm_gradient_check(annealvi.bimodal(2), 3.0, 0.8, 1.0, "full", 10 ** 9, 0)


def test_sweep_threads_and_run_are_checked(tmp_path):
    cfg = {"grid": {"beta_i": [0.1], "t0": [10]}}
    with pytest.raises(ValueError, match=r"`threads`: 1000000 \(expected an integer in \[0, 1024\]"):
        annealvi.sweep(cfg, tmp_path / "s", threads=10 ** 6)
    with pytest.raises(ValueError, match=r"`run`: 1180591620717411303424 \(expected an integer in"):
        annealvi.train(run=2 ** 70)
    assert not (tmp_path / "s").exists()


# --- configuration values ----------------------------------------------------------------------

@pytest.mark.parametrize("kw,match", [
    (dict(optim__lr=float("nan")), r"`optim\.lr`: NaN \(expected a number > 0\)"),
    (dict(optim__lr=float("inf")), r"`optim\.lr`: inf \(expected a number > 0\)"),
    (dict(config={"optim": {"lr": float("nan")}}), r"`optim\.lr`: NaN"),
    (dict(target__d=2 ** 70), r"`target\.d`: 1180591620717411303424 \(expected an integer ≤ 16777216\)"),
    (dict(config={"target": {"d": 2 ** 70}}), r"`target\.d`: 1180591620717411303424 \(expected an integer ≤ 16777216\)"),
    (dict(target__d=-2 ** 70), r"`target\.d`: -1180591620717411303424 \(expected"),
    (dict(seed=2 ** 70), r"`seed`: 1180591620717411303424 \(expected an integer in \[-9223372036854775808, 9223372036854775807\]\)"),
    (dict(target__d=None), r"`target\.d`: None \(None cannot be written"),
    (dict(target__d=object()), r"`target\.d`: <object .*> \(a value of type object is not a configuration value"),
])
def test_config_values_name_the_field(kw, match):
    with pytest.raises(ValueError, match=match) as e:
        annealvi.resolve_config(**kw)
    assert "line 1 column" not in str(e.value)


def test_config_infinity_and_numpy_values_are_accepted():
    text = annealvi.resolve_config(optim__max_grad_norm=float("inf"), target__d=np.int64(8),
                                   target={"r": np.float64(2.5)}, schedule__beta_i=0.5)
    assert "max_grad_norm = inf" in text
    assert "d = 8" in text and "r = 2.5" in text
    text = annealvi.resolve_config({"optim": {"max_grad_norm": np.inf, "lr": 0.01}})
    assert "max_grad_norm = inf" in text and "lr = 0.01" in text
    with pytest.raises(ValueError, match=r"`optim\.max_grad_norm`: NaN"):
        annealvi.resolve_config(optim__max_grad_norm=float("nan"))
