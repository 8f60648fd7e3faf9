"""The object API of runs: Experiment (configuration values, errors, variations), Run (its
attributes and flat trajectory), the fitted students (means, σ, weights, flow parameters,
sample, log_prob) and the reproductions of issue 20 that concern runs."""

import numpy as np
import pytest

import annealvi
from annealvi import _native, schedule

from conftest import SMALL_RUN

SMALL = dict(target__d=16, optim__steps=300, record__every=100)

FLOW = dict(target__d=4, student__family="realnvp", student__realnvp__layers=2,
            student__realnvp__depth=2, student__realnvp__width=8,
            student__realnvp__last_init=0.3, student__realnvp__eval_samples=500,
            optim__steps=100, record__every=50, objective__samples=64)


def _mixture_log_prob(x, means, sigma, weights):
    """ln Σ_k w_k N(x; μ_k, σ_k² I), computed directly in numpy (the reference)."""
    d = x.shape[1]
    terms = []
    for mu, s, w in zip(means, sigma, weights):
        r2 = np.sum((x - mu) ** 2, axis=1)
        terms.append(np.log(w) - 0.5 * d * np.log(2 * np.pi * s * s) - 0.5 * r2 / (s * s))
    t = np.stack(terms)
    top = t.max(axis=0)
    return top + np.log(np.sum(np.exp(t - top), axis=0))


# --- Experiment: configuration values and errors -------------------------------------------------

def test_schedule_object_as_a_setting_in_train_and_experiment():
    # issue 20: train(schedule=sched) failed with "Object of type Schedule is not JSON serializable"
    sched = schedule.exponential(0.05, 200)
    a = annealvi.train(schedule=sched, **SMALL)
    b = annealvi.train(schedule={"kind": "exponential", "beta_i": 0.05, "t0": 200}, **SMALL)
    np.testing.assert_array_equal(a["trajectory"]["beta"], b["trajectory"]["beta"])
    assert a["trajectory"]["beta"][0] == pytest.approx(0.05)
    np.testing.assert_array_equal(a["summary"]["m"], b["summary"]["m"])
    exp = annealvi.Experiment(schedule=sched, **SMALL)
    assert exp.config["schedule"]["kind"] == "exponential"
    assert exp.config["schedule"]["t0"] == 200.0
    np.testing.assert_array_equal(exp.train().summary["m"], a["summary"]["m"])
    # in a dict configuration too
    c = annealvi.Experiment({"schedule": sched, "target": {"d": 16}}, optim__steps=300)
    assert c.config["schedule"]["beta_i"] == 0.05


def test_a_schedule_object_replaces_the_whole_table():
    pts = {"kind": "points", "points": [[0, 0.1], [100, 1.0]]}
    exp = annealvi.Experiment(schedule=pts, **SMALL)
    assert exp.config["schedule"]["kind"] == "points"
    lin = exp.with_(schedule=schedule.linear(0.2, 50))
    assert lin.config["schedule"]["kind"] == "linear"
    assert lin.config["schedule"]["points"] == []  # the table was replaced, not merged
    beta = lin.train().trajectory["beta"]
    assert beta[0] == pytest.approx(0.2) and beta[-1] == 1.0


def test_target_object_is_a_user_target_and_a_dict_the_table():
    # issue 20: train(target=tgt) failed ("not JSON serializable")
    t = annealvi.bimodal(16)
    a = annealvi.train(target=t, optim__steps=300, record__every=100)
    b = annealvi.train(user_target=t, optim__steps=300, record__every=100)
    np.testing.assert_array_equal(a["summary"]["m"], b["summary"]["m"])
    exp = annealvi.Experiment(target=t, optim__steps=300)
    assert exp.target is t and exp.config["target"]["d"] == 16
    assert "user(dim=16" in repr(exp)
    assert annealvi.Experiment({"target": t}).target is t
    # a dict is the [target] table of the built-in targets
    tab = annealvi.Experiment(target={"d": 8, "r": 2.0})
    assert tab.target is None and tab.config["target"]["r"] == 2.0
    with pytest.raises(ValueError, match="two different user targets"):
        annealvi.Experiment(target=t, user_target=annealvi.bimodal(16))
    with pytest.raises(ValueError, match=r"`target\.d`: 8 \(the user target has dim = 16"):
        annealvi.Experiment(target=t, target__d=8)


def test_infinity_is_accepted_and_nan_refused_naming_the_field():
    exp = annealvi.Experiment(optim__max_grad_norm=float("inf"), optim__steps=10, target__d=4)
    assert exp.config["optim"]["max_grad_norm"] == float("inf")
    assert "max_grad_norm = inf" in exp.to_toml()
    with pytest.raises(ValueError, match=r"`optim\.max_grad_norm`: NaN"):
        annealvi.Experiment(optim__max_grad_norm=float("nan"))


@pytest.mark.parametrize("kw,match", [
    (dict(optim__steps=-1),
     r"invalid value for `optim\.steps`: -1 \(.*expected an integer ≥ 0\)"),
    (dict(optim={"steps": "many"}), r"invalid value for `optim\.steps`: \"many\""),
    (dict(record__every=2.5), r"invalid value for `record\.every`: 2\.5"),
    (dict(optim={"bogus": 1}), r"unknown key `optim\.bogus`"),
    (dict(config="[optim]\nsteps = -3\n"), r"invalid value for `optim\.steps`: -3"),
    (dict(objective__samples=0), r"`objective\.samples`"),
])
def test_every_configuration_error_names_the_field(kw, match):
    # issue 20: optim__steps=-1 said "invalid value: integer `-1`, expected usize" without the field
    with pytest.raises(ValueError, match=match):
        annealvi.Experiment(**kw)
    with pytest.raises(ValueError, match=match):
        annealvi.train(**kw)


def test_experiment_repr_config_toml_and_variations(tmp_path):
    exp = annealvi.Experiment(SMALL_RUN)
    r = repr(exp)
    assert r.startswith("Experiment(target=bimodal(d=32, r=3, w_star=0.8), student=gmm(K=2)")
    assert "schedule=exponential(beta_i=0.05, t0=400)" in r and "steps=600" in r
    cfg = exp.config
    assert cfg["seed"] == 3 and cfg["optim"]["steps"] == 600
    cfg["seed"] = 99  # a copy
    assert exp.config["seed"] == 3
    # the TOML text loads back to the same configuration
    assert annealvi.Experiment(exp.to_toml()).config == exp.config
    # a variation changes one field and keeps the rest
    v = exp.with_(optim__lr=0.02)
    assert v.config["optim"]["lr"] == 0.02 and exp.config["optim"]["lr"] == 0.05
    assert v.config["schedule"] == exp.config["schedule"] and v.config["seed"] == 3
    # from a file: read once
    p = tmp_path / "run.toml"
    p.write_text(SMALL_RUN)
    fe = annealvi.Experiment(p)
    p.write_text("seed = 1\n")
    assert fe.with_(seed=5).config["target"]["d"] == 32
    with pytest.raises(ValueError, match=r"`optim\.lr`"):
        exp.with_(optim__lr=-1.0)
    # a variation with a user target sets the dimension from it
    ut = exp.with_(target=annealvi.bimodal(32))
    assert ut.target is not None and ut.config["target"]["d"] == 32 and exp.target is None


def test_experiment_runs_equal_the_native_runs_of_the_original_source():
    # Experiment trains from its resolved TOML: the same numbers as the source itself
    for kw in (dict(), dict(student__simulation="statistics"), FLOW):
        exp = annealvi.Experiment(SMALL_RUN, **kw) if not kw.get("student__family") else \
            annealvi.Experiment(**kw)
        ov = annealvi._config.overrides(kw)
        src = ("toml", SMALL_RUN) if not kw.get("student__family") else ("dict", {})
        direct = _native.train(src[0], src[1], ov, 1, None)
        run = exp.train(run=1)
        np.testing.assert_array_equal(direct["trajectory"]["loss"], run.trajectory["loss"])
        assert direct["summary"]["light_mode_mass"] == run.light_mode_mass
        # and again: the same numbers
        assert exp.train(run=1).light_mode_mass == run.light_mode_mass


# --- Run and its trajectory ------------------------------------------------------------------------

def test_run_attributes_and_flat_trajectory():
    run = annealvi.Experiment(SMALL_RUN).train()
    assert run.outcome in ("covered", "collapsed")
    assert run.final_step == 600 and run.seed == 3 and run.run == 0
    assert run.diverged_step is None
    assert (run.mode is None) == (run.outcome != "collapsed")
    np.testing.assert_array_equal(run.sigma, run.summary["sigma"])
    r = repr(run)
    assert r.startswith("Run(run=0, outcome=%r" % run.outcome) and "GaussianMixture(K=2, d=32" in r
    with pytest.raises(AttributeError, match="summary keys"):
        run.nonexistent
    traj = run.trajectory
    assert traj.columns == ["step", "beta", "loss", "kl", "neg_elbo", "m_1", "m_2", "q_11",
                            "q_12", "q_22", "sigma_1", "sigma_2", "w_1", "w_2"]
    assert all(v.ndim == 1 and len(v) == 13 for v in traj.values())
    # issue 20: pd.DataFrame(run["trajectory"]) failed (q packed as (q11, q12, q22))
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(traj)
    assert list(df.columns) == traj.columns and len(df) == 13
    df2 = traj.to_dataframe()
    assert df2["q_12"].iloc[-1] == run.summary["q"][1]
    assert df2["step"].iloc[-1] == 600
    # the old packed form agrees, and train() returns the dict it always returned
    res = annealvi.train(SMALL_RUN)
    assert sorted(res) == ["summary", "trajectory"]
    old = res["trajectory"]
    np.testing.assert_array_equal(old["q"][:, 2], traj["q_22"])
    np.testing.assert_array_equal(old["sigma"][:, 0], traj["sigma_1"])


def test_trajectory_names_are_those_of_ode_trajectory_and_start_at_the_training_state():
    run = annealvi.Experiment(SMALL_RUN).train()
    ode = annealvi.ode_trajectory(0.05, 400, steps=100, every=50, d=32, seed=3)
    for name in ode:
        assert name in run.trajectory.columns
    for name in ("m_1", "m_2", "q_11", "q_12", "q_22"):
        assert ode[name][0] == pytest.approx(run.trajectory[name][0], rel=1e-9)


@pytest.mark.parametrize("kw", [
    dict(SMALL, schedule=schedule.exponential(0.1, 150)),
    dict(SMALL, student__simulation="statistics", optim__steps=310),
    dict(SMALL, objective__estimator="exact"),
    FLOW,
    dict(FLOW, target=annealvi.bimodal(4)),
    dict(SMALL, target=annealvi.bimodal(16)),
])
def test_the_last_trajectory_row_has_a_loss(kw):
    # issue 20: the last trajectory row had loss = NaN
    run = annealvi.Experiment(**kw).train()
    traj = run.trajectory
    assert traj["step"][-1] == run.final_step
    assert np.all(np.isfinite(traj["loss"])), traj["loss"]


def test_train_progress_reports_steps():
    calls = []
    annealvi.Experiment(SMALL_RUN).train(progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (600, 600)
    assert all(b[0] >= a[0] for a, b in zip(calls, calls[1:]))
    calls.clear()
    annealvi.Experiment(target=annealvi.bimodal(16), **{k: v for k, v in SMALL.items()
                                                        if k != "target__d"}).train(
        progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (300, 300)
    with pytest.raises(ZeroDivisionError):
        annealvi.Experiment(SMALL_RUN).train(progress=lambda done, total: 1 / 0)
    with pytest.raises(ValueError, match=r"`run`: -1"):
        annealvi.Experiment(SMALL_RUN).train(run=-1)


# --- the fitted Gaussian mixture -------------------------------------------------------------------

def test_mixture_log_prob_against_numpy_and_sample_moments():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(3, 5)) * 2
    sigma = np.array([0.5, 1.0, 2.0])
    weights = np.array([0.2, 0.5, 0.3])
    q = annealvi.GaussianMixture(means, sigma, weights)
    np.testing.assert_array_equal(q.means, means)
    np.testing.assert_allclose(q.sigma, sigma, rtol=1e-15)
    np.testing.assert_allclose(q.weights, weights, rtol=1e-14)
    x = rng.normal(size=(200, 5)) * 3
    np.testing.assert_allclose(q.log_prob(x), _mixture_log_prob(x, means, sigma, weights),
                               rtol=1e-12, atol=1e-12)
    assert q.log_prob(x[0]) == pytest.approx(float(_mixture_log_prob(x[:1], means, sigma,
                                                                      weights)[0]), rel=1e-12)
    n = 20000
    s = q.sample(n, seed=1)
    assert s.shape == (n, 5)
    # first moments: mean Σ w_k μ_k, per-coordinate standard error from the samples (CLT, 5 SE)
    mean = weights @ means
    se = s.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(s.mean(axis=0) - mean) < 5 * se)
    # second moment E‖x‖² = Σ w_k (‖μ_k‖² + d σ_k²): checks σ and the weights
    r2 = np.sum(s * s, axis=1)
    m2 = weights @ (np.sum(means ** 2, axis=1) + 5 * sigma ** 2)
    assert abs(r2.mean() - m2) < 5 * r2.std() / np.sqrt(n)
    # nearest-mean frequencies vs the weights would need separation; the law of the component
    # index shows in ln q of the samples: E[ln q(x)] = −H(q), compared with numpy's
    lp = q.log_prob(s)
    np.testing.assert_allclose(lp, _mixture_log_prob(s, means, sigma, weights), rtol=1e-12)
    # reproducible by seed
    np.testing.assert_array_equal(q.sample(100, seed=1), s[:100])
    assert not np.array_equal(q.sample(100, seed=2), s[:100])
    assert q.sample(0, seed=0).shape == (0, 5)


def test_mixture_bad_inputs_name_the_argument():
    with pytest.raises(ValueError, match="`weights`"):
        annealvi.GaussianMixture(np.zeros((2, 3)), [1.0, 1.0], [0.5, 0.6])
    with pytest.raises(ValueError, match="`sigma`"):
        annealvi.GaussianMixture(np.zeros((2, 3)), [1.0, -1.0], [0.5, 0.5])
    with pytest.raises(ValueError, match="`means`"):
        annealvi.GaussianMixture(np.zeros(3), [1.0], [1.0])
    q = annealvi.GaussianMixture(np.zeros((1, 3)), [1.0], [1.0])
    with pytest.raises(ValueError, match=r"`x`: shape \(4, 2\)"):
        q.log_prob(np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"`x`: NaN at row 1, column 1"):
        q.log_prob(np.array([[0.0, 0, 0], [0, np.nan, 0]]))
    with pytest.raises(ValueError, match="`n`"):
        q.sample(-1)
    with pytest.raises(ValueError, match="`n`"):
        q.sample(2 ** 40)


def test_fitted_mixture_has_the_runs_statistics():
    run = annealvi.Experiment(SMALL_RUN).train()
    q = run.student
    assert isinstance(q, annealvi.GaussianMixture)
    assert q.means.shape == (2, 32) and q.sigma.shape == (2,) and q.weights.shape == (2,)
    np.testing.assert_allclose(q.means[:, 0], run.summary["m"], rtol=1e-12)
    qq = q.means @ q.means.T
    np.testing.assert_allclose([qq[0, 0], qq[0, 1], qq[1, 1]], run.summary["q"], rtol=1e-9)
    np.testing.assert_array_equal(q.sigma, run.summary["sigma"])
    np.testing.assert_allclose(q.weights, run.summary["w"], rtol=1e-15)


def test_statistics_engine_student_is_embedded_in_rd():
    d = 6
    target = {"kind": "mixture", "d": d,
              "means": [[0, 3, 0, 0, 0, 0], [0, 0, -2, 0, 1.5, 0]],
              "weights": [0.6, 0.4], "variances": [1.0, 1.0]}
    exp = annealvi.Experiment(target=target, student__simulation="statistics", optim__steps=400,
                              record={"every": 400, "kl_samples": 20000}, seed=4)
    run = exp.train()
    q = run.student
    assert q.means.shape == (2, d)
    axis = np.array([0, 1.0, 0, 0, 0, 0])  # the mixture's axis: its first mean's direction
    np.testing.assert_allclose(q.means @ axis, run.summary["m"], rtol=1e-9, atol=1e-12)
    qq = q.means @ q.means.T
    np.testing.assert_allclose([qq[0, 0], qq[0, 1], qq[1, 1]], run.summary["q"], rtol=1e-9,
                               atol=1e-12)
    # the means relative to the target's means: KL(q‖π) of the embedded student (numpy,
    # 20000 samples) agrees with the run's own estimate (20000 samples) within 5 standard errors
    nu = np.array(target["means"], dtype=float)
    x = q.sample(20000, seed=9)
    ratio = q.log_prob(x) - _mixture_log_prob(x, nu, [1.0, 1.0], [0.6, 0.4])
    se = ratio.std() / np.sqrt(len(x)) * np.sqrt(2)
    assert abs(ratio.mean() - run.trajectory["kl"][-1]) < 5 * se + 1e-3


def test_mixture_student_against_a_user_target():
    t = annealvi.bimodal(16)
    run = annealvi.Experiment(target=t, optim__steps=300).train()
    q = run.student
    assert q.means.shape == (2, 16)
    np.testing.assert_allclose(q.means[:, 0], run.summary["m"], rtol=1e-12)


# --- the fitted flow ----------------------------------------------------------------------------------

def test_flow_parameters_layout_and_log_prob():
    run = annealvi.Experiment(student__realnvp__precision="f64", **FLOW).train()
    f = run.student
    assert isinstance(f, annealvi.RealNVP) and f.dim == 4
    a = f.arch
    assert (a["layers"], a["depth"], a["width"], a["precision"]) == (2, 2, 8, "f64")
    # the layout tiles θ exactly, in order
    lay = f.layout
    assert len(lay) == 2 * 2 * 2
    pos = 0
    for e in lay:
        assert e["offset"] == pos
        n_out, n_in = e["shape"]
        pos += n_out * n_in + n_out
    assert pos == len(f.params)
    p = f.parameters()
    assert p["coupling0.s.0.weight"].shape == (8, 2) and p["coupling1.t.1.bias"].shape == (2,)
    assert sum(v.size for v in p.values()) == len(f.params)
    np.testing.assert_array_equal(p["coupling0.s.0.weight"].ravel(), f.params[:16])
    # log_prob through the inverse agrees with the log q of the forward samples
    x, lq = f.sample_with_log_prob(500, seed=3)
    assert x.shape == (500, 4) and lq.shape == (500,)
    np.testing.assert_allclose(f.log_prob(x), lq, rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(f.sample(500, seed=3), x)
    assert not np.array_equal(f.sample(500, seed=4), x)
    assert "RealNVP(d=4, layers=2" in repr(f)
    with pytest.raises(TypeError):
        annealvi.RealNVP()


def test_flow_f32_log_prob_and_normalisation():
    # d = 2: ∫ q = 1 on a grid checks the inverse's log-determinant (its sign and scale)
    kw = dict(FLOW, target__d=2, target__r=2.0, optim__steps=60)
    f = annealvi.Experiment(**kw).train().student
    x, lq = f.sample_with_log_prob(300, seed=0)
    np.testing.assert_allclose(f.log_prob(x), lq, rtol=1e-4, atol=1e-4)
    g = np.linspace(-9, 9, 241)
    xx, yy = np.meshgrid(g, g)
    pts = np.column_stack([xx.ravel(), yy.ravel()])
    mass = np.exp(f.log_prob(pts)).sum() * (g[1] - g[0]) ** 2
    assert mass == pytest.approx(1.0, abs=0.01)


def test_flow_student_against_a_user_target():
    t = annealvi.bimodal(4)
    run = annealvi.Experiment(target=t, **{k: v for k, v in FLOW.items()
                                           if k != "target__d"}).train()
    f = run.student
    assert isinstance(f, annealvi.RealNVP) and f.dim == 4
    x, lq = f.sample_with_log_prob(200, seed=1)
    np.testing.assert_allclose(f.log_prob(x), lq, rtol=1e-4, atol=1e-4)


# --- sweeps from an experiment -----------------------------------------------------------------------

def test_experiment_sweep_in_memory():
    # an experiment with its own schedule and length: a sweep's cells set both
    exp = annealvi.Experiment(target__d=16, student__sigma0="schedule", objective__samples=16,
                              seed=7, schedule=schedule.exponential(0.1, 50), optim__steps=99)
    res = exp.sweep(beta_i=[0.05, 0.3], t0=[200], seeds=3, extra_steps=100, no_annealing=False,
                    threads=1)
    cells = res.cells
    assert cells.rows == 2 and cells["n"].tolist() == [3, 3]
    assert np.all(cells["ci_low"] <= cells["p_collapse"])
    assert np.all(cells["p_collapse"] <= cells["ci_high"])
    runs = res.runs
    assert runs.rows == 6
    pd = pytest.importorskip("pandas")
    assert len(res.runs.to_dataframe()) == 6
    assert isinstance(cells.to_dataframe(), pd.DataFrame)
