"""Targets written in PyTorch and JAX (Target.from_torch, Target.from_jax): their values and
autodiff gradients agree with an analytic numpy implementation, training through them
reproduces the runs of the numpy callable, and their errors name the problem. The tests of a
backend are skipped where it is not installed (the missing-backend errors are tested always)."""

import sys

import numpy as np
import pytest

import annealvi

# the target: 0.7 N(mu, I) + 0.3 N(-mu, I) in d = 8, |mu| = 3 along the diagonal
D = 8
W = 0.7
MU = 3.0 * np.ones(D) / np.sqrt(D)
CENTRES = np.stack([MU, -MU])
CONST = -0.5 * D * np.log(2 * np.pi)


def numpy_fn(x):
    """ln π and ∇ ln π by hand."""
    a = np.log(W) - 0.5 * ((x - MU) ** 2).sum(1)
    b = np.log(1 - W) - 0.5 * ((x + MU) ** 2).sum(1)
    top = np.maximum(a, b)
    lp = top + np.log(np.exp(a - top) + np.exp(b - top))
    p = np.exp(a - lp)  # responsibility of +mu
    return lp + CONST, -x + (2 * p - 1)[:, None] * MU


def torch_fn(x):
    import torch

    mu = torch.as_tensor(MU, dtype=x.dtype)
    a = np.log(W) - 0.5 * ((x - mu) ** 2).sum(1)
    b = np.log(1 - W) - 0.5 * ((x + mu) ** 2).sum(1)
    return torch.logaddexp(a, b) + CONST


def jax_fn(x):
    import jax.numpy as jnp

    # MU as a JAX constant of x's dtype: JAX (0.10) cannot compile a function that closes over
    # a float64 numpy array in float64 once it was compiled in float32, and these tests use
    # both precisions
    mu = jnp.asarray(MU, dtype=x.dtype)
    a = np.log(W) - 0.5 * ((x - mu) ** 2).sum(1)
    b = np.log(1 - W) - 0.5 * ((x + mu) ** 2).sum(1)
    return jnp.logaddexp(a, b) + CONST


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture
def jax():
    return pytest.importorskip("jax")


def x64(jax):
    """JAX's context manager that enables float64 (jax.enable_x64, or the older
    jax.experimental.enable_x64)."""
    ctx = getattr(jax, "enable_x64", None)
    if ctx is None:
        import jax.experimental

        ctx = jax.experimental.enable_x64
    return ctx(True)


def points(n=64, seed=0):
    return np.random.default_rng(seed).normal(size=(n, D)) * 2


def assert_density(t, rtol, fd=True):
    x = points()
    lp, g = t(x)
    lp0, g0 = numpy_fn(x)
    assert lp.dtype == g.dtype == np.float64
    assert lp.shape == (len(x),) and g.shape == x.shape
    assert np.allclose(lp, lp0, rtol=rtol, atol=rtol)
    assert np.allclose(g, g0, rtol=rtol, atol=rtol)
    if fd:  # central finite differences of the wrapped log-density
        eps = 1e-6
        for i in range(D):
            e = np.zeros(D)
            e[i] = eps
            diff = (t(x + e)[0] - t(x - e)[0]) / (2 * eps)
            assert np.allclose(g[:, i], diff, atol=1e-7)


# --- values and gradients --------------------------------------------------------------------

def test_torch_density_and_gradient(torch):
    t = annealvi.Target.from_torch(torch_fn, D, modes=CENTRES)
    assert isinstance(t, annealvi.Target) and t.dim == D and np.array_equal(t.modes, CENTRES)
    assert_density(t, 1e-12)
    with torch.no_grad():  # the caller's grad mode does not matter
        assert_density(t, 1e-12, fd=False)
    t32 = annealvi.Target.from_torch(torch_fn, D, dtype=torch.float32)
    assert_density(t32, 1e-5, fd=False)


def test_torch_leaves_parameters_and_graphs_alone(torch):
    scale = torch.nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

    def fn(x):
        return scale * torch_fn(x)

    t = annealvi.Target.from_torch(fn, D)
    assert_density(t, 1e-12, fd=False)
    assert scale.grad is None  # autograd.grad w.r.t. x only: nothing accumulates


def test_jax_density_and_gradient(jax):
    before = jax.config.read("jax_enable_x64")
    t = annealvi.Target.from_jax(jax_fn, D, modes=CENTRES)
    assert isinstance(t, annealvi.Target) and np.array_equal(t.modes, CENTRES)
    assert_density(t, 1e-5, fd=False)  # float32 unless x64 is enabled
    with x64(jax):
        t64 = annealvi.Target.from_jax(jax_fn, D)
    # float64 also outside the context; JAX's own configuration unchanged
    assert jax.config.read("jax_enable_x64") == before
    assert_density(t64, 1e-12)
    if not before:
        assert_density(t, 1e-5, fd=False)  # still float32, also inside a context
        with x64(jax):
            x = points()
            assert np.abs(t(x)[0] - numpy_fn(x)[0]).max() > 1e-9


# --- training through them -------------------------------------------------------------------

GMM_RUN = {
    "seed": 11,
    "target": {"d": D},
    "student": {"sigma0": "schedule"},
    "schedule": {"kind": "exponential", "beta_i": 0.1, "t0": 200},
    "optim": {"steps": 300},
    "objective": {"samples": 16},
    "record": {"every": 50},
}

FLOW_RUN = {
    "seed": 5,
    "target": {"d": D},
    "student": {"family": "realnvp",
                "realnvp": {"layers": 4, "depth": 2, "width": 16, "eval_samples": 1000,
                            "precision": "f64"}},
    "schedule": {"kind": "exponential", "beta_i": 0.1, "t0": 150},
    "optim": {"steps": 200},
    "objective": {"samples": 64},
    "record": {"every": 50, "kl_samples": 200},
}


def assert_same_run(a, b, rtol):
    sa, sb = a["summary"], b["summary"]
    assert sa["outcome"] == sb["outcome"] and sa.get("mode") == sb.get("mode")
    assert sa["final_step"] == sb["final_step"]
    for key in ("m", "q", "sigma", "w", "ess_fraction"):
        if key in sa:
            assert np.allclose(sb[key], sa[key], rtol=rtol, atol=rtol), key
    ta, tb = a["trajectory"], b["trajectory"]
    assert ta["step"].tolist() == tb["step"].tolist()
    assert np.allclose(tb["loss"], ta["loss"], rtol=rtol, atol=rtol)
    assert np.allclose(tb["neg_elbo"], ta["neg_elbo"], rtol=rtol, atol=rtol)


def reference(cfg, run):
    return annealvi.train(cfg, run=run,
                          user_target=annealvi.Target.from_callable(numpy_fn, D, modes=CENTRES))


@pytest.mark.parametrize("cfg", [GMM_RUN, FLOW_RUN], ids=["mixture", "flow"])
def test_torch_train_reproduces_numpy_callable(torch, cfg):
    t = annealvi.Target.from_torch(torch_fn, D, modes=CENTRES)
    for run in range(3):
        a = reference(cfg, run)
        assert_same_run(a, annealvi.train(cfg, run=run, user_target=t), 1e-8)
    assert np.ptp(a["trajectory"]["loss"]) > 0  # the run moved


@pytest.mark.parametrize("cfg", [GMM_RUN, FLOW_RUN], ids=["mixture", "flow"])
def test_jax_train_reproduces_numpy_callable(jax, cfg):
    with x64(jax):
        t64 = annealvi.Target.from_jax(jax_fn, D, modes=CENTRES)
    t32 = annealvi.Target.from_jax(jax_fn, D, modes=CENTRES)
    for run in range(3):
        a = reference(cfg, run)
        assert_same_run(a, annealvi.train(cfg, run=run, user_target=t64), 1e-8)
        if not jax.config.read("jax_enable_x64"):
            # float32 gradients: the same run to single precision
            b = annealvi.train(cfg, run=run, user_target=t32)
            assert a["summary"]["outcome"] == b["summary"]["outcome"]
            assert np.allclose(b["trajectory"]["loss"], a["trajectory"]["loss"], rtol=1e-3,
                               atol=1e-3)


SWEEP = {
    "grid": {"beta_i": [0.1], "t0": [100], "no_annealing": True, "seeds": 3, "extra_steps": 100},
    "run": {"seed": 2, "target": {"d": D}, "student": {"sigma0": "schedule"},
            "objective": {"samples": 16}},
}


def sorted_runs(res):
    r = res.runs
    order = np.lexsort((r["seed"], r["t0"], r["beta_i"]))
    return {k: np.asarray(r[k])[order] for k in ("outcome", "m_1", "m_2", "sigma_1", "q_12")}


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_sweep_in_threads_reproduces_numpy_callable(backend):
    module = pytest.importorskip(backend)
    if backend == "torch":
        t = annealvi.Target.from_torch(torch_fn, D, modes=CENTRES)
    else:  # float64 taken at construction: the worker threads compute in float64 too
        with x64(module):
            t = annealvi.Target.from_jax(jax_fn, D, modes=CENTRES)
    ref = annealvi.Target.from_callable(numpy_fn, D, modes=CENTRES)
    a = sorted_runs(annealvi.sweep(SWEEP, user_target=ref, threads=2))
    b = sorted_runs(annealvi.sweep(SWEEP, user_target=t, threads=2))
    assert a["outcome"].tolist() == b["outcome"].tolist()
    assert len(set(a["outcome"])) == 2  # covered and collapsed runs
    for k in ("m_1", "m_2", "sigma_1", "q_12"):
        assert np.allclose(b[k], a[k], rtol=1e-8, atol=1e-8), k


def test_jax_compiles_once_per_batch_size(jax):
    traced = []

    def fn(x):
        traced.append(x.shape)  # runs when JAX traces, not when it calls the compiled code
        return jax_fn(x)

    t = annealvi.Target.from_jax(fn, D, modes=CENTRES)
    annealvi.train(GMM_RUN, user_target=t)
    annealvi.train(GMM_RUN, run=1, user_target=t)
    assert traced == [(32, D)]  # K·B = 2·16, in every step of both runs
    traced.clear()
    t = annealvi.Target.from_jax(fn, D, modes=CENTRES)
    annealvi.train(FLOW_RUN, user_target=t)
    # the steps' B = 64; the records' 200 and the evaluation's 1000 samples in chunks of 64
    assert traced == [(64, D), (200 % 64, D), (1000 % 64, D)]


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_experiment_takes_them(backend):
    pytest.importorskip(backend)
    if backend == "torch":
        t = annealvi.Target.from_torch(torch_fn, D, modes=CENTRES)
    else:
        t = annealvi.Target.from_jax(jax_fn, D, modes=CENTRES)
    run = annealvi.Experiment(GMM_RUN, target=t).train()
    assert run.outcome in ("covered", "collapsed", "partial")
    assert run.student.means.shape == (2, D)


# --- errors ----------------------------------------------------------------------------------

def test_torch_errors(torch):
    def wrong_shape(x):
        return torch_fn(x)[:, None]

    with pytest.raises(ValueError, match=r"from_torch: `fn` returned an array of shape "
                                         r"\(32, 1\) \(expected \(n,\) = \(32,\)"):
        annealvi.train(GMM_RUN, user_target=annealvi.Target.from_torch(wrong_shape, D))
    with pytest.raises(ValueError, match="non-finite log_prob"):
        annealvi.train(GMM_RUN, user_target=annealvi.Target.from_torch(
            lambda x: torch_fn(x) * float("nan"), D))
    with pytest.raises(ValueError, match="expected a tensor"):
        annealvi.Target.from_torch(lambda x: numpy_fn(x.detach().numpy())[0], D)(points(3))
    with pytest.raises(ValueError, match="does not depend on x"):
        annealvi.Target.from_torch(lambda x: torch_fn(x).detach(), D)(points(3))
    with pytest.raises(ValueError, match="dtype"):
        annealvi.Target.from_torch(torch_fn, D, dtype=torch.int64)

    class Boom(Exception):
        pass

    def boom(x):
        raise Boom("user code failed")

    with pytest.raises(Boom, match="user code failed"):
        annealvi.train(GMM_RUN, user_target=annealvi.Target.from_torch(boom, D))


def test_jax_errors(jax):
    import jax.numpy as jnp

    with pytest.raises(ValueError, match=r"from_jax: `fn` returned an array of shape "
                                         r"\(32, 1\) \(expected \(n,\) = \(32,\)"):
        annealvi.train(GMM_RUN, user_target=annealvi.Target.from_jax(
            lambda x: jax_fn(x)[:, None], D))
    with pytest.raises(ValueError, match=r"shape \(\) "):
        annealvi.Target.from_jax(lambda x: jax_fn(x).sum(), D)(points(3))
    with pytest.raises(ValueError, match="non-finite log_prob"):
        annealvi.train(GMM_RUN, user_target=annealvi.Target.from_jax(
            lambda x: jax_fn(x) * jnp.nan, D))


@pytest.mark.parametrize("module,api,message", [
    ("torch", "from_torch", "Target.from_torch needs PyTorch: pip install torch"),
    ("jax", "from_jax", "Target.from_jax needs JAX: pip install jax"),
])
def test_missing_backend(monkeypatch, module, api, message):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    with pytest.raises(ImportError, match=message):
        getattr(annealvi.Target, api)(lambda x: x.sum(1), D)
