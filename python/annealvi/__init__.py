"""annealvi: annealed variational inference and mode collapse, from Python.

Reverse-KL variational inference on a multimodal target tends to collapse onto one mode;
annealing (fitting π^β while β rises from β_i to 1) is the remedy. This package exposes the
Rust toolkit annealvi (Fogliani, Loureiro, Gabrié 2026) with numpy in and out:

* :mod:`annealvi.schedule` — β(t) schedules for one's own training loop;
* :func:`collapse_probability` — P(collapse) of a schedule without simulation (the
  summary-statistics ODE or the sharp formula), on scalars, grids or schedule objects;
* :func:`design` — the fastest exponential schedule below a collapse tolerance, or the
  optimal schedule at a budget;
* :func:`ode_trajectory` — the summary statistics' ODE trajectory (Figure 3);
* :func:`train`, :func:`sweep` — SGD runs and phase-diagram sweeps from a configuration
  (the CLI's TOML format, as a dict, a path or a string), sweeps on disk or in memory;
* :class:`Target` — user-defined targets given by a numpy callable, or by a log-density in
  PyTorch or JAX (differentiated for you).

Units: steps are optimiser steps t = 0, 1, …; the ODE time is τ = η t with η the learning rate
(``lr``, the paper's η). Long calls release the GIL, stop on Ctrl-C with KeyboardInterrupt
(within about a second), take ``threads=`` (0 = all cores; results do not depend on it) and
report progress (``progress=``: a tqdm bar, a callback ``progress(done, total)``, or nothing;
see :mod:`annealvi._progress`).
"""

import os
from typing import Any, Dict, Optional, Union

import numpy as np

from . import _config, _native, schedule
from ._target import Target, bimodal
from ._experiment import Experiment, GaussianMixture, RealNVP, Run, Trajectory
from ._sweep import SweepResult, Table, run_sweep, sweep
from ._theory import CollapseProbability, Design, collapse_probability, design, ode_trajectory

__version__ = "0.1.0"


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


def _int(name: str, v: Any) -> int:
    """``v`` as an int within the argument's valid range (the native module's INT_RANGES),
    else a ValueError naming the argument and the range (before any conversion can overflow)."""
    lo, hi = _native.INT_RANGES.get(name, (0, 2 ** 64 - 1))
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
        raise ValueError("invalid value for `%s`: %r (expected an integer in [%d, %d])"
                         % (name, v, lo, hi))
    return int(v)


__all__ = ["schedule", "collapse_probability", "design", "ode_trajectory", "train", "sweep",
           "resolve_config", "Target", "bimodal", "SweepResult", "Table", "run_sweep",
           "CollapseProbability", "Design"]
__all__ += ["Experiment", "Run", "Trajectory", "GaussianMixture", "RealNVP"]
