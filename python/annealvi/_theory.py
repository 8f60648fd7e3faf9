"""The theory without simulation: P(collapse) of schedules, schedule design and the summary
statistics' ODE, with results as objects that carry their coordinates.

* :func:`collapse_probability` → :class:`CollapseProbability` (``.p``, ``.ci_low``,
  ``.ci_high``, ``.collapsed`` with the coordinates ``.beta_i``, ``.t0`` or ``.schedule``);
* :func:`design` → :class:`Design` (``.schedule`` a :class:`annealvi.schedule.Schedule`,
  ``.p_predicted`` …, ``.candidates`` a :class:`annealvi.Table`);
* :func:`ode_trajectory` → a :class:`annealvi.Table` of flat columns.

The objects keep the dict-style access of earlier versions (``res["p"]``,
``design["found"]``), and a single cell converts to a float (``float(res)``).
"""

from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from ._progress import ProgressArg, reporter
from ._sweep import Table, _int
from .schedule import Schedule, exponential, points

_MODEL_DOC = """
        d: dimension of the target (integer ≥ 1; the paper's 512).
        r: distance R = ‖μ*‖ of each mode from the origin (≥ 0).
        w_star: weight w* of the mode at +μ*, in (0, 1) (the other mode has 1 − w*).
        lr: the SGD learning rate η (the paper's η; ODE time τ = η t), > 0.
        init_scale: standard deviation s of each coordinate of the student's random initial
            means, μ_k ~ N(0, s² I_d) (> 0).
        extra_steps: steps at β = 1 after the annealing (the run lasts t0 + extra_steps
            steps, as in a sweep's cells)."""

_FIELDS = ("p", "ci_low", "ci_high", "collapsed")


class CollapseProbability:
    """P(collapse) predicted for a grid of schedules, with its coordinates.

    Attributes:
        p: P(collapse), a numpy array of the grid's shape (0-d for one schedule).
        ci_low, ci_high: the Wilson 95% interval of the ODE Monte Carlo (ci_low ≤ p ≤ ci_high
            exactly); NaN for the formula, which has no sampling error.
        collapsed: collapsed initial conditions among ``ics`` (−1 for the formula).
        beta_i, t0: the coordinates, arrays of the grid's shape: the exponential schedules'
            (β_i, t0); for schedules given as objects, β at step 0 and the step at which the
            annealing ends (``Schedule.end``).
        schedule: the schedules given as objects (one :class:`Schedule`, or a list), else
            None.
        method: "ode" or "formula"; ics, seed: of the Monte Carlo; model: the model's
            parameters (d, r, w_star, lr, init_scale, extra_steps).

    ``res["p"]`` (and the other fields) work as with the dict of earlier versions;
    ``float(res)`` and ``np.asarray(res)`` give p; ``to_dataframe()`` gives one row per cell.
    """

    def __init__(self, raw: Dict[str, Any], shape: Tuple[int, ...], beta_i: np.ndarray,
                 t0: np.ndarray, schedule: Union[None, Schedule, List[Schedule]], method: str,
                 ics: int, seed: int, model: Dict[str, Any]) -> None:
        self.p = np.asarray(raw["p"]).reshape(shape)
        self.ci_low = np.asarray(raw["ci_low"]).reshape(shape)
        self.ci_high = np.asarray(raw["ci_high"]).reshape(shape)
        self.collapsed = np.asarray(raw["collapsed"]).reshape(shape)
        self.beta_i = np.asarray(beta_i, dtype=np.float64).reshape(shape)
        self.t0 = np.asarray(t0, dtype=np.float64).reshape(shape)
        self.schedule = schedule
        self.method = method
        self.ics = ics if method == "ode" else None
        self.seed = seed
        self.model = model

    @property
    def shape(self) -> Tuple[int, ...]:
        """The grid's shape (() for one schedule)."""
        return self.p.shape

    def keys(self) -> List[str]:
        """The fields of the dict of earlier versions: p, ci_low, ci_high, collapsed."""
        return list(_FIELDS)

    def items(self) -> List[Tuple[str, np.ndarray]]:
        """(field, array) pairs, as the dict of earlier versions."""
        return [(k, getattr(self, k)) for k in _FIELDS]

    def values(self) -> List[np.ndarray]:
        """The arrays of :meth:`keys`."""
        return [getattr(self, k) for k in _FIELDS]

    def __iter__(self) -> Iterator[str]:
        return iter(_FIELDS)

    def __contains__(self, key: object) -> bool:
        return key in _FIELDS or key in ("beta_i", "t0")

    def __getitem__(self, key: str) -> np.ndarray:
        if isinstance(key, str) and key in self:
            return getattr(self, key)
        raise KeyError("%r (fields: p, ci_low, ci_high, collapsed, beta_i, t0; index the arrays, "
                       "e.g. res.p[0])" % (key,))

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.p, dtype=dtype)

    def __float__(self) -> float:
        if self.p.size != 1:
            raise TypeError("float() of a CollapseProbability of shape %s (one cell only; use "
                            ".p)" % (self.shape,))
        return float(self.p.reshape(-1)[0])

    def __format__(self, spec: str) -> str:
        if self.p.size == 1 and spec:
            return format(float(self), spec)
        return format(str(self), spec)

    def to_dataframe(self) -> Any:
        """One row per cell (C order): ``beta_i``, ``t0``, (``schedule`` when given as
        objects), ``p``, ``ci_low``, ``ci_high``, ``collapsed``."""
        cols: Dict[str, Any] = {"beta_i": self.beta_i.reshape(-1), "t0": self.t0.reshape(-1)}
        if self.schedule is not None:
            scheds = self.schedule if isinstance(self.schedule, list) else [self.schedule]
            cols["schedule"] = np.array([repr(s) for s in scheds], dtype=object)
        for k in _FIELDS:
            cols[k] = getattr(self, k).reshape(-1)
        return Table(cols, "cells").to_dataframe()

    def __repr__(self) -> str:
        how = "method=%r" % self.method + (", ics=%d" % self.ics if self.ics else "")
        if self.p.size == 1:
            at = (repr(self.schedule) if isinstance(self.schedule, Schedule) else
                  "beta_i=%g, t0=%g" % (float(self.beta_i.reshape(-1)[0]),
                                        float(self.t0.reshape(-1)[0])))
            ci = ("" if np.isnan(self.ci_low).all() else
                  " [%.4f, %.4f]" % (float(self.ci_low.reshape(-1)[0]),
                                     float(self.ci_high.reshape(-1)[0])))
            return "CollapseProbability(p=%.4f%s at %s; %s)" % (float(self), ci, at, how)
        rng = ("p in [%.4f, %.4f]" % (np.min(self.p), np.max(self.p))) if self.p.size else "empty"
        return "CollapseProbability(shape=%s, %s; %s)" % (self.shape, rng, how)


def collapse_probability(beta_i: Any = None, t0: Any = None, *,
                         schedule: Union[None, Schedule, Sequence[Schedule]] = None,
                         d: int = 512, r: float = 3.0, w_star: float = 0.8, lr: float = 0.05,
                         init_scale: float = 1.0, extra_steps: int = 500, method: str = "ode",
                         ics: int = 10000, seed: int = 0, threads: int = 0,
                         progress: ProgressArg = None) -> CollapseProbability:
    """Probability that SGD with an annealing schedule collapses onto one mode.

    The model is the paper's: bimodal target w* N(R e_1, I_d) + (1 − w*) N(−R e_1, I_d), a
    2-component Gaussian-mixture student with fixed weights ½ and random initial means,
    σ² slaved to 1/β (quasi-static), SGD with learning rate η = ``lr``. The schedule is the
    exponential β(t) = β_i^(1 − t/t0) for t < t0 steps, or any :class:`Schedule` given instead
    of (β_i, t0); then β = 1 for ``extra_steps`` more steps.

    Args:
        beta_i: initial inverse temperature β_i in (0, 1]; a scalar or an array. A
            :class:`Schedule` here is taken as ``schedule``.
        t0: annealing time in SGD steps (≥ 0; 0 = no annealing); a scalar or an array.
            beta_i and t0 are broadcast against each other, so
            ``collapse_probability(B[:, None], T[None, :])`` computes a whole grid in one call.
        schedule: instead of (beta_i, t0): a :class:`Schedule` of any kind (exponential,
            linear, linear_temperature, constant, points — e.g. ``design(...).schedule``), or a
            list of them (a 1-D grid). The annealing ends at ``schedule.end``.
{model}
        method: "ode" — Monte Carlo over ``ics`` initial conditions of the summary statistics'
            ODE (classified through a table built from ~300 integrations); "formula" — the
            sharp formula (docs/theory.md §9: one 1-D quadrature over thresholds found by
            integrating the pair flow), deterministic, milliseconds per cell.
        ics: number of initial conditions of the "ode" method (the interval's resolution),
            in [1, 10⁷].
        seed: seed of the initial conditions (common to every cell of a call).
        threads: worker threads (0 = all cores); the results do not depend on it.
        progress: None (a bar in interactive sessions with tqdm), True, False or a callable
            ``progress(done, total)`` counting cells.

    Returns:
        a :class:`CollapseProbability`: arrays ``p`` (P(collapse)), ``ci_low``, ``ci_high``
        (Wilson 95% interval of the Monte Carlo, ci_low ≤ p ≤ ci_high exactly; NaN for the
        formula) and ``collapsed`` (count among ``ics``; −1 for the formula), of the broadcast
        shape, with the coordinates ``beta_i``, ``t0`` (and ``schedule``).
        ``res["p"]`` and ``float(res)`` (one cell) work as before.

    Ctrl-C stops the computation between cells (KeyboardInterrupt).

    Raises:
        ValueError: naming the argument and its valid range; or, when the ODE (or the
            formula's ODEs) cannot be integrated for some cell — the integrator's step budget
            spent before τ = lr × (t0 + extra_steps), as with an absurd ``lr`` or ``r``, or a
            non-finite state — naming the first such cell, the reason and how many cells
            failed. No NaN is returned in place of a failed integration (``annealvi theory``
            likewise refuses such a grid); compute the other cells in a separate call.
    """
    if isinstance(beta_i, Schedule) or (
            isinstance(beta_i, (list, tuple)) and beta_i and
            all(isinstance(s, Schedule) for s in beta_i)):
        if schedule is not None:
            raise TypeError("give the schedule once (as the first argument or as schedule=)")
        schedule, beta_i = beta_i, None
    model = dict(d=_int("d", d), r=float(r), w_star=float(w_star), lr=float(lr),
                 init_scale=float(init_scale), extra_steps=_int("extra_steps", extra_steps))
    if schedule is not None:
        if beta_i is not None or t0 is not None:
            raise TypeError("give either (beta_i, t0) or schedule, not both")
        one = isinstance(schedule, Schedule)
        scheds = [schedule] if one else list(schedule)
        for s in scheds:
            if not isinstance(s, Schedule):
                raise TypeError("schedule must be an annealvi.schedule.Schedule or a list of "
                                "them, not %s" % type(s).__name__)
        shape: Tuple[int, ...] = () if one else (len(scheds),)
        b = np.array([s(0) for s in scheds], dtype=np.float64)
        t = np.array([s.end for s in scheds], dtype=np.float64)
        tables = [s.to_config() for s in scheds]
        bl: List[float] = []
        tl: List[float] = []
        kept: Union[Schedule, List[Schedule]] = scheds[0] if one else scheds
    else:
        if beta_i is None or t0 is None:
            raise TypeError("collapse_probability needs (beta_i, t0) or schedule=")
        b, t = np.broadcast_arrays(np.asarray(beta_i, dtype=np.float64),
                                   np.asarray(t0, dtype=np.float64))
        shape = b.shape
        tables = None
        bl, tl = b.reshape(-1).tolist(), t.reshape(-1).tolist()
        kept = None
    n = int(np.prod(shape)) if shape else 1
    with reporter(progress, n, "P(collapse)") as rep:
        raw = _native.collapse_probability(
            bl, tl, tables, model["d"], model["r"], model["w_star"], model["lr"],
            model["init_scale"], model["extra_steps"], str(method), _int("ics", ics),
            _int("seed", seed), _int("threads", threads), rep.callback)
    return CollapseProbability(raw, shape, b, t, kept, str(method), int(ics), int(seed), model)


class Design:
    """A designed schedule (see :func:`design`).

    Attributes:
        shape: "exponential" or "optimal".
        found: whether a schedule reaches the tolerance (False: the other fields are NaN
            and ``schedule`` is None).
        schedule: the designed :class:`Schedule` — ``exponential(beta_i, t0)`` or, for the
            optimal shape, ``points(...)`` (β = 1 at ``t0``); pass it to
            :func:`collapse_probability` or to a run configuration (``schedule.to_config()``).
        beta_i: β at step 0; t0: the step at which β reaches 1 (the budget for "optimal");
            rate: the exponential's growth factor per step (NaN for "optimal").
        p_predicted, ci_low, ci_high, collapsed: its predicted P(collapse) by the table ODE
            Monte Carlo over ``ics`` initial conditions, with the Wilson 95% interval.
        p_formula: the sharp formula's P (the optimiser's objective; "optimal" only).
        candidates: :class:`Table` — "exponential": every β_i tried with its t0 and
            p_predicted (NaN where no t0 in range reaches the tolerance); "optimal": the
            optimal schedule, the best exponential and the best linear-in-temperature schedule
            at the same budget (``shape``, ``beta_i``, ``p_formula``, ``p_predicted``,
            ``ci_low``, ``ci_high``).
        tried: "optimal" with ``max_collapse``: the budgets tried by the search
            (``budget``, ``p_predicted``, ``beta_i``); else an empty table.
        check: None, or the SGD check: dict ``n``, ``collapsed``, ``p_collapse``, ``ci_low``,
            ``ci_high``.
        ics, segments, evaluations, model: the settings.

    ``d["beta_i"]``, ``d["candidates"]["t0"]`` … work as with the dict of earlier versions;
    ``to_dataframe()`` is ``candidates.to_dataframe()``.
    """

    _KEYS = ("beta_i", "t0", "rate", "p_predicted", "ci_low", "ci_high", "found", "ics",
             "candidates", "check", "schedule", "shape", "collapsed", "p_formula", "budget",
             "tried", "segments", "evaluations")

    def __init__(self, raw: Dict[str, Any], model: Dict[str, Any]) -> None:
        self.shape: str = raw["shape"]
        self.found = bool(raw["found"])
        self.ics = int(raw["ics"])
        self.beta_i = float(raw["beta_i"])
        self.t0 = float(raw["t0"])
        self.p_predicted = float(raw["p_predicted"])
        self.ci_low = float(raw["ci_low"])
        self.ci_high = float(raw["ci_high"])
        self.collapsed = int(raw["collapsed"])
        self.check: Optional[Dict[str, Any]] = raw["check"]
        self.candidates = Table(raw["candidates"], "candidates")
        self.model = model
        if self.shape == "exponential":
            self.rate = float(raw["rate"])
            self.p_formula = float("nan")
            self.budget = self.t0
            self.segments = None
            self.evaluations = 0
            self.tried = Table({}, "budgets")
            self.schedule: Optional[Schedule] = (
                exponential(self.beta_i, self.t0) if self.found else None)
        else:
            self.rate = float("nan")
            self.p_formula = float(raw["p_formula"])
            self.budget = float(raw["budget"])
            self.segments = int(raw["segments"])
            self.evaluations = int(raw["evaluations"])
            self.tried = Table(raw["tried"], "budgets")
            self.schedule = points(raw["points"]) if self.found else None

    def __getitem__(self, key: str) -> Any:
        if key in self._KEYS:
            return getattr(self, key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return key in self._KEYS

    def keys(self) -> List[str]:
        """The fields (dict-style access)."""
        return list(self._KEYS)

    def to_dataframe(self) -> Any:
        """The candidates as a pandas DataFrame."""
        return self.candidates.to_dataframe()

    def __repr__(self) -> str:
        if not self.found:
            return "Design(shape=%r, found=False, ics=%d)" % (self.shape, self.ics)
        chk = ""
        if self.check is not None:
            chk = ", SGD check %d/%d" % (self.check["collapsed"], self.check["n"])
        return "Design(%r, p_predicted=%.4f [%.4f, %.4f], ics=%d%s)" % (
            self.schedule, self.p_predicted, self.ci_low, self.ci_high, self.ics, chk)


def design(max_collapse: Optional[float] = None, *, shape: str = "exponential",
           budget: Optional[float] = None, segments: int = 10, d: int = 512, r: float = 3.0,
           w_star: float = 0.8, lr: float = 0.05, init_scale: float = 1.0,
           extra_steps: int = 500, ics: int = 2000, seed: int = 0, check_seeds: int = 0,
           samples: int = 32, t_range: tuple = (10.0, 2e5), threads: int = 0,
           progress: ProgressArg = None) -> Design:
    """A schedule designed from the theory, as ``annealvi design``.

    ``shape="exponential"`` (the default): the fastest exponential schedule whose predicted
    P(collapse) ≤ ``max_collapse`` — for 16 values of β_i from 1e-3 to 0.5 (log-spaced), the
    smallest t0 in ``t_range`` (bisection in ln t0 to 2%) with predicted P ≤ max_collapse by the
    ODE Monte Carlo (see :func:`collapse_probability`), then the β_i with the fewest steps.

    ``shape="optimal"``: the monotone schedule from β(0) to β(``budget``) = 1, piecewise linear
    in ln β over ``segments`` equal slices (β(0) and the inner knots free), that minimises the
    sharp formula's P(collapse) (Nelder–Mead), verified by the ODE Monte Carlo and compared with
    the best exponential and linear-in-temperature schedules at the same budget
    (``design --shape optimal --budget T``); with ``max_collapse`` instead of ``budget``, at the
    shortest budget whose optimal schedule reaches it. The result's ``schedule`` is a
    ``points`` schedule.

    Args:
        max_collapse: tolerance on the predicted P(collapse), in (0, 1).
        shape: "exponential" or "optimal".
        budget: "optimal": the annealing budget T in steps, in [segments, 1e7].
        segments: "optimal": equal time slices of the schedule, in [2, 64].
{model}
        ics: initial conditions of the prediction.
        seed: seed of the initial conditions and of the SGD check's runs.
        check_seeds: if > 0, also run that many SGD runs of the chosen schedule (B = ``samples``
            samples per component, σ(0)² = 1/β_i) and report the measured P(collapse).
        samples: samples per component B of the SGD check.
        t_range: "exponential": (t_min, t_max) searched, in steps.
        threads: worker threads (0 = all cores); the results do not depend on it.
        progress: None (a bar in interactive sessions with tqdm), True, False or a callable
            ``progress(done, total)``: candidate β_i ("exponential") or stages ("optimal"),
            then the SGD runs of the check.

    Returns:
        a :class:`Design`: ``schedule`` (a :class:`Schedule`), ``beta_i``, ``t0`` (steps),
        ``rate``, ``p_predicted`` with ``ci_low``/``ci_high`` (Wilson 95%), ``found`` (False
        and NaNs when no schedule reaches the tolerance), ``candidates``, ``check``.

    Ctrl-C stops the exponential search or its SGD check within about a second
    (KeyboardInterrupt); the optimal design stops between its stages (the optimiser and the
    optimal schedule's SGD check run to their end).
    """
    if shape not in ("exponential", "optimal"):
        raise ValueError("invalid value for `shape`: %r (expected \"exponential\" or "
                         "\"optimal\")" % (shape,))
    model = dict(d=_int("d", d), r=float(r), w_star=float(w_star), lr=float(lr),
                 init_scale=float(init_scale), extra_steps=_int("extra_steps", extra_steps))
    t_min, t_max = (float(v) for v in t_range)
    with reporter(progress, None, "design") as rep:
        raw = _native.design(
            shape, None if max_collapse is None else float(max_collapse),
            None if budget is None else float(budget), _int("segments", segments),
            model["d"], model["r"], model["w_star"], model["lr"], model["init_scale"],
            model["extra_steps"], _int("ics", ics), _int("seed", seed),
            _int("check_seeds", check_seeds), _int("samples", samples), t_min, t_max,
            _int("threads", threads), rep.callback)
    return Design(raw, model)


def ode_trajectory(beta_i: float, t0: float, *, steps: Optional[int] = None, every: int = 50,
                   d: int = 512, r: float = 3.0, w_star: float = 0.8, lr: float = 0.05,
                   init_scale: float = 1.0, sigma0: Optional[float] = None, seed: int = 0,
                   run: int = 0, quasi_static: bool = False,
                   progress: ProgressArg = None) -> Table:
    """The summary statistics' ODE trajectory under the exponential schedule (beta_i, t0).

    The statistics m_k = μ_k·μ̂, q_kl = μ_k·μ_l and σ_k of a 2-component student obey a closed
    ODE under perfect gradients (docs/theory.md §8); this integrates it from the initial student
    that ``train`` would draw for (seed, run), reporting every ``every`` steps (ODE time
    τ = η t). As in Figure 3. One integration: it runs on one thread.

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
        progress: None (a bar in interactive sessions with tqdm), True, False or a callable
            ``progress(done, total)`` counting the steps integrated.

    Returns:
        a :class:`Table` (a dict of numpy arrays with ``to_dataframe()``): ``step``, ``beta``,
        ``m_1``, ``m_2``, ``q_11``, ``q_12``, ``q_22``, ``sigma_1``, ``sigma_2``.

    Ctrl-C stops the integration within about a second (KeyboardInterrupt).

    Raises:
        ValueError: naming the argument and its valid range (checked before any work), or when
            the integration fails.
    """
    if steps is None:
        # a non-finite or negative t0 is reported by the validation, naming `t0`
        steps = int(float(t0)) + 500 if 0 <= float(t0) < 2 ** 63 else 0
    with reporter(progress, None, "ODE") as rep:
        raw = _native.ode_trajectory(float(beta_i), float(t0), _int("steps", steps),
                                     _int("every", every), _int("d", d), float(r),
                                     float(w_star), float(lr), float(init_scale),
                                     None if sigma0 is None else float(sigma0),
                                     _int("seed", seed), _int("run", run), bool(quasi_static),
                                     rep.callback)
    return Table(raw, "reports")


for _f in (collapse_probability, design, ode_trajectory):
    _f.__doc__ = (_f.__doc__ or "").replace("{model}", _MODEL_DOC.strip("\n")).replace(
        "{model_no_extra}", _MODEL_DOC.split("        extra_steps")[0].strip("\n"))

__all__ = ["CollapseProbability", "Design", "collapse_probability", "design", "ode_trajectory"]
