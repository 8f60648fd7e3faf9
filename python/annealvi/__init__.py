"""annealvi: annealed variational inference and mode collapse, from Python.

Reverse-KL variational inference on a multimodal target tends to collapse onto one mode;
annealing (fitting π^β while β rises from β_i to 1) is the remedy. This package exposes the
Rust toolkit annealvi (Fogliani, Loureiro, Gabrié 2026) with numpy in and out:

* :mod:`annealvi.schedule` — β(t) schedules for one's own training loop;
* :func:`collapse_probability` — P(collapse) of an exponential schedule without simulation
  (the summary-statistics ODE or the analytical formula), on scalars or grids;
* :func:`design` — the fastest exponential schedule below a collapse tolerance;
* :func:`ode_trajectory` — the summary statistics' ODE trajectory (Figure 3);
* :func:`train`, :func:`sweep` — SGD runs and phase-diagram sweeps from a configuration
  (the CLI's TOML format, as a dict, a path or a string);
* :class:`Target` — user-defined targets given by a numpy callable.

Units: steps are optimiser steps t = 0, 1, …; the ODE time is τ = η t with η the learning rate
(``lr``, the paper's η). Long calls release the GIL and stop on Ctrl-C with KeyboardInterrupt
(within about a second).
"""

import os
from typing import Any, Dict, Optional, Union

import numpy as np

from . import _config, _native, schedule
from ._target import Target, bimodal
from ._experiment import Experiment, GaussianMixture, RealNVP, Run, Trajectory
from ._sweep import SweepResult, Table, run_sweep, sweep

__version__ = "0.1.0"

_MODEL_DOC = """
        d: dimension of the target (integer ≥ 1; the paper's 512).
        r: distance R = ‖μ*‖ of each mode from the origin (≥ 0).
        w_star: weight w* of the mode at +μ*, in (0, 1) (the other mode has 1 − w*).
        lr: the SGD learning rate η (the paper's η; ODE time τ = η t), > 0.
        init_scale: standard deviation s of each coordinate of the student's random initial
            means, μ_k ~ N(0, s² I_d) (> 0).
        extra_steps: steps at β = 1 after the annealing (the run lasts t0 + extra_steps
            steps, as in a sweep's cells)."""


def collapse_probability(beta_i: Any, t0: Any, *, d: int = 512, r: float = 3.0,
                         w_star: float = 0.8, lr: float = 0.05, init_scale: float = 1.0,
                         extra_steps: int = 500, method: str = "ode", ics: int = 10000,
                         seed: int = 0) -> Dict[str, Any]:
    """Probability that SGD with the exponential schedule (beta_i, t0) collapses.

    The model is the paper's: bimodal target w* N(R e_1, I_d) + (1 − w*) N(−R e_1, I_d), a
    2-component Gaussian-mixture student with fixed weights ½ and random initial means,
    σ² slaved to 1/β (quasi-static), SGD with learning rate η = ``lr``. The schedule is
    β(t) = β_i^(1 − t/t0) for t < t0 steps, then 1 for ``extra_steps`` more steps.

    Args:
        beta_i: initial inverse temperature β_i in (0, 1]; a scalar or an array.
        t0: annealing time in SGD steps (≥ 0; 0 = no annealing); a scalar or an array.
            beta_i and t0 are broadcast against each other, so
            ``collapse_probability(B[:, None], T[None, :])`` computes a whole grid in one call.
{model}
        method: "ode" — Monte Carlo over ``ics`` initial conditions of the summary statistics'
            ODE (classified through a table built from ~300 integrations); "formula" — the
            analytical linearised formula (docs/theory.md §9), deterministic.
        ics: number of initial conditions of the "ode" method (the interval's resolution),
            in [1, 10⁷].
        seed: seed of the initial conditions (common to every cell of a call).

    Returns:
        dict with numpy arrays of the broadcast shape: ``p`` (P(collapse)), ``ci_low``,
        ``ci_high`` (Wilson 95% interval of the Monte Carlo; NaN for the formula) and
        ``collapsed`` (count among ``ics``; −1 for the formula). Scalars in → 0-d arrays; use
        ``float(res["p"])``.

    Raises:
        ValueError: naming the argument and its valid range; or, when the ODE (or the
            formula's ODEs) cannot be integrated for some cell — the integrator's step budget
            spent before τ = lr × (t0 + extra_steps), as with an absurd ``lr`` or ``r``, or a
            non-finite state — naming the first such cell, the reason and how many cells
            failed. No NaN is returned in place of a failed integration (``annealvi theory``
            likewise refuses such a grid); compute the other cells in a separate call.
    """
    b, t = np.broadcast_arrays(np.asarray(beta_i, dtype=np.float64),
                               np.asarray(t0, dtype=np.float64))
    shape = b.shape
    res = _native.collapse_probability(
        b.reshape(-1).tolist(), t.reshape(-1).tolist(), _int("d", d), float(r), float(w_star),
        float(lr), float(init_scale), _int("extra_steps", extra_steps), str(method),
        _int("ics", ics), _int("seed", seed))
    return {k: np.asarray(v).reshape(shape) for k, v in res.items()}


def design(max_collapse: float, *, d: int = 512, r: float = 3.0, w_star: float = 0.8,
           lr: float = 0.05, init_scale: float = 1.0, extra_steps: int = 500,
           ics: int = 2000, seed: int = 0, check_seeds: int = 0, samples: int = 32,
           t_range: tuple = (10.0, 2e5)) -> Dict[str, Any]:
    """The fastest exponential schedule whose predicted P(collapse) ≤ ``max_collapse``.

    What ``annealvi design`` does: for 16 values of β_i from 1e-3 to 0.5 (log-spaced), the
    smallest t0 in ``t_range`` (bisection in ln t0 to 2%) with predicted P ≤ max_collapse by the
    ODE Monte Carlo (see :func:`collapse_probability`), then the β_i with the fewest steps.

    Args:
        max_collapse: tolerance on the predicted P(collapse), in (0, 1).
{model}
        ics: initial conditions of the prediction.
        seed: seed of the initial conditions and of the SGD check's runs.
        check_seeds: if > 0, also run that many SGD runs of the chosen schedule (B = ``samples``
            samples per component, σ(0)² = 1/β_i) and report the measured P(collapse).
        samples: samples per component B of the SGD check.
        t_range: (t_min, t_max) searched, in steps.

    Returns:
        dict: ``beta_i``, ``t0`` (steps), ``rate`` (r = β_i^(−1/t0) per step),
        ``p_predicted`` with ``ci_low``/``ci_high`` (Wilson 95%), ``found`` (False and NaNs when
        no t0 ≤ t_max reaches the tolerance), ``candidates`` (dict of arrays ``beta_i``, ``t0``,
        ``p_predicted`` for every β_i tried; NaN where unreachable) and ``check`` (None, or a
        dict ``n``, ``collapsed``, ``p_collapse``, ``ci_low``, ``ci_high``).

    Ctrl-C stops the search or the SGD check within about a second (KeyboardInterrupt).
    """
    t_min, t_max = (float(v) for v in t_range)
    return _native.design(float(max_collapse), _int("d", d), float(r), float(w_star), float(lr),
                          float(init_scale), _int("extra_steps", extra_steps), _int("ics", ics),
                          _int("seed", seed), _int("check_seeds", check_seeds),
                          _int("samples", samples), t_min, t_max)


def ode_trajectory(beta_i: float, t0: float, *, steps: Optional[int] = None, every: int = 50,
                   d: int = 512, r: float = 3.0, w_star: float = 0.8, lr: float = 0.05,
                   init_scale: float = 1.0, sigma0: Optional[float] = None, seed: int = 0,
                   run: int = 0, quasi_static: bool = False) -> Dict[str, np.ndarray]:
    """The summary statistics' ODE trajectory under the exponential schedule (beta_i, t0).

    The statistics m_k = μ_k·μ̂, q_kl = μ_k·μ_l and σ_k of a 2-component student obey a closed
    ODE under perfect gradients (docs/theory.md §8); this integrates it from the initial student
    that ``train`` would draw for (seed, run), reporting every ``every`` steps (ODE time
    τ = η t). As in Figure 3.

    Args:
        beta_i: initial inverse temperature, in (0, 1].
        t0: annealing time in steps (≥ 0).
        steps: last step reported (default t0 + 500); at most 20000 / ``lr`` (the
            integrator's reach: 20000 steps of at most Δτ = 1 in τ = lr × steps).
        every: report interval in steps, ≥ 1 and ≥ steps / 20000 (each report costs at least
            one of the integrator's 20000 steps).
{model_no_extra}
        sigma0: initial σ_k (default 1/√β_i, the sweeps' "schedule" setting).
        seed, run: the configuration seed and run index whose initial means are used.
        quasi_static: slave σ² to 1/β(t) (the reduced model of :func:`collapse_probability`)
            instead of integrating σ_k.

    Returns:
        dict of numpy arrays: ``step``, ``beta``, ``m_1``, ``m_2``, ``q_11``, ``q_12``,
        ``q_22``, ``sigma_1``, ``sigma_2``.

    Ctrl-C stops the integration within about a second (KeyboardInterrupt).

    Raises:
        ValueError: naming the argument and its valid range (checked before any work), or when
            the integration fails.
    """
    if steps is None:
        # a non-finite or negative t0 is reported by the validation, naming `t0`
        steps = int(float(t0)) + 500 if 0 <= float(t0) < 2 ** 63 else 0
    return _native.ode_trajectory(float(beta_i), float(t0), _int("steps", steps),
                                  _int("every", every), _int("d", d), float(r), float(w_star),
                                  float(lr), float(init_scale),
                                  None if sigma0 is None else float(sigma0), _int("seed", seed),
                                  _int("run", run), bool(quasi_static))


def train(config: _config.ConfigSource = None, *, run: int = 0,
          user_target: Optional[Target] = None, progress: Any = None,
          **overrides: Any) -> Dict[str, Any]:
    """One training run, as ``annealvi train`` (the CLI uses run 0).

    Args:
        config: the run configuration — a dict nested like the TOML file, a path to a TOML
            file or a TOML string (configs/example.toml lists every field); None = defaults
            (the paper's setting: d = 512, R = 3, w* = 0.8, η = 0.05, no annealing).
        run: run index; the initial student and the noise come from the streams (seed, run).
        user_target: a user-defined :class:`Target` instead of the configured target
            (``target.d`` is set to its ``dim``; a configuration or override that sets another
            ``target.d`` is refused), trained with the configured student: the
            Gaussian mixture or the RealNVP flow (``student__family="realnvp"``), full or STL
            estimator. ``target=`` a Target does the same (``target=`` a dict sets the
            ``[target]`` table).
        progress: as in :meth:`Experiment.train` (steps; None = a bar in an interactive
            session with tqdm installed).
        **overrides: fields to change, as ``section__field=value`` (``optim__steps=2000``) or
            ``section={"field": value}``; ``schedule=`` an :mod:`annealvi.schedule` object
            replaces the ``[schedule]`` table.

    The object API does more: :class:`Experiment` validates a configuration once and its
    ``train()`` returns a :class:`Run` with the fitted student (means, σ, weights or the flow's
    parameters, ``sample`` and ``log_prob``) and the trajectory as flat columns; this function
    returns the same numbers as a dict.

    Returns:
        {"summary": {...}, "trajectory": {...}}: the summary holds ``outcome`` ("covered",
        "collapsed", "partial", "diverged"; "unknown" for a target without modes), ``mode``
        (collapsed runs), ``final_step``, ``light_mode_mass`` and the final statistics; the
        trajectory (every ``record.every`` steps) holds numpy arrays ``step``, ``beta``,
        ``loss``, ``kl``, ``neg_elbo`` and ``m``, ``q``, ``sigma``, ``w`` (one row per record)
        for the Gaussian mixture, or the flow's ``light_mode_mass``, ``ess_fraction``,
        ``mode_masses``. With a user target the flow's ``kl`` and ``mode_weight_error`` are NaN
        (its normaliser and mode weights are unknown), its ``light_mode_mass`` is the smallest
        mode mass and ``neg_elbo`` is against the unnormalised density.

    Ctrl-C stops the run within about a second (KeyboardInterrupt).

    Raises:
        ValueError: an invalid configuration (naming the field and its valid range), or a
            user target that returned a wrong shape or a non-finite value.
        Any exception raised by the target callable.
    """
    config, overrides, user_target = _config.split_target(config, overrides, user_target)
    exp = Experiment(config, user_target=user_target, **overrides)
    res = exp._train(run, progress)
    res.pop("student", None)  # the fitted model: Experiment(...).train().student
    return res


def resolve_config(config: _config.ConfigSource = None, **overrides: Any) -> str:
    """The validated run configuration with every field resolved, as TOML text (settings as
    in :func:`train`; with ``target=`` a :class:`Target`, ``target.d`` is its ``dim``)."""
    config, overrides, target = _config.split_target(config, overrides)
    kind, text = _config.source(config)
    if target is not None:
        return _native.experiment_config(kind, text, _config.overrides(overrides), target)[0]
    return _native.resolve_config(kind, text, _config.overrides(overrides))


for _f in (collapse_probability, design, ode_trajectory):
    _f.__doc__ = (_f.__doc__ or "").replace("{model}", _MODEL_DOC.strip("\n")).replace(
        "{model_no_extra}", _MODEL_DOC.split("        extra_steps")[0].strip("\n"))


def _int(name: str, v: Any) -> int:
    """``v`` as an int within the argument's valid range (the native module's INT_RANGES),
    else a ValueError naming the argument and the range (before any conversion can overflow)."""
    lo, hi = _native.INT_RANGES.get(name, (0, 2 ** 64 - 1))
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
        raise ValueError("invalid value for `%s`: %r (expected an integer in [%d, %d])"
                         % (name, v, lo, hi))
    return int(v)


__all__ = ["schedule", "collapse_probability", "design", "ode_trajectory", "train", "sweep",
           "resolve_config", "Target", "bimodal", "SweepResult", "Table", "run_sweep"]
__all__ += ["Experiment", "Run", "Trajectory", "GaussianMixture", "RealNVP"]
