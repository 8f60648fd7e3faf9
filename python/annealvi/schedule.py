"""Annealing schedules β(t) for use in one's own training loop (PyTorch, JAX, numpy).

Each constructor returns a :class:`Schedule`: call it on an int, a float or a numpy array of
steps t (SGD/Adam steps, counted from 0) to get β(t) ∈ (0, 1], the inverse temperature of the
tempered target π_β ∝ π^β. The values are computed by the Rust library (the very functions the
CLI's runs use), and the parameters are validated as the CLI validates them. A schedule is
also a value of a configuration (``Schedule.to_config()`` is its ``[schedule]`` table) and an
argument of :func:`annealvi.collapse_probability`; :func:`annealvi.design` returns one.

:func:`adaptive` is the exception: its β moves by a rule computed from the student's own
samples during training (docs/adaptive.md), so it has no β(t) to call; its
:meth:`Schedule.to_config` is the ``schedule`` table of a training configuration.
"""

from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native

Steps = Union[int, float, np.ndarray]


class Schedule:
    """β as a function of the step; see :func:`exponential`, :func:`linear`,
    :func:`linear_temperature`, :func:`constant` and :func:`points`.

    Attributes:
        kind: "exponential", "linear", "linear_temperature", "constant" or "points".
        beta_i: β at step 0 (for "points", the first point's β).
        t0: the annealing time in steps (for "points", the last point's step).
        beta: the constant schedule's β.
        points: the (step, β) points of a "points" schedule (None otherwise).
    """

    def __init__(self, kind: str, beta_i: float = 1.0, t0: float = 0.0, beta: float = 1.0,
                 points: Optional[Sequence[Tuple[float, float]]] = None) -> None:
        self.kind = str(kind)
        self.points: Optional[List[Tuple[float, float]]] = None
        if self.kind == "points":
            if points is None:
                raise ValueError("a \"points\" schedule needs its points (schedule.points([(step, "
                                 "beta), ...]))")
            self.points = [(float(t), float(b)) for t, b in points]
            if self.points:
                beta_i, t0 = self.points[0][1], self.points[-1][0]
        elif points is not None:
            raise ValueError("points are for kind \"points\", not %r" % self.kind)
        self.beta_i = float(beta_i)
        self.t0 = float(t0)
        self.beta = float(beta)
        _native.schedule_validate(self.to_config())

    def __call__(self, t: Any) -> Any:
        """β(t) for a scalar step (returns a float) or an array of steps (same shape)."""
        arr = np.asarray(t, dtype=np.float64)
        out, _ = _native.schedule_values(self.to_config(), arr.reshape(-1))
        if arr.ndim == 0:
            return float(out[0])
        return out.reshape(arr.shape)

    @property
    def end(self) -> float:
        """The first step from which β keeps its final value (t0; the last point's step; 0 for
        a constant schedule)."""
        return float(_native.schedule_values(self.to_config(), np.zeros(0))[1])

    @property
    def rate(self) -> float:
        """Exponential schedules: the growth factor r = β_i^(−1/t0) of β per step (1 if t0 = 0)."""
        if self.kind != "exponential":
            raise AttributeError("rate is defined for exponential schedules only")
        return 1.0 if self.t0 == 0 else self.beta_i ** (-1.0 / self.t0)

    def to_config(self) -> dict:
        """The ``schedule`` table of a run configuration for this schedule."""
        if self.kind == "constant":
            return {"kind": "constant", "beta": self.beta}
        if self.kind == "points":
            return {"kind": "points", "points": [[t, b] for t, b in self.points or []]}
        return {"kind": self.kind, "beta_i": self.beta_i, "t0": self.t0}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schedule) and self.to_config() == other.to_config()

    def __hash__(self) -> int:
        return hash(repr(self.to_config()))

    def __repr__(self) -> str:
        if self.kind == "constant":
            return "constant(beta=%g)" % self.beta
        if self.kind == "points":
            pts = ["(%g, %.4g)" % p for p in self.points or []]
            if len(pts) > 5:
                pts = pts[:3] + ["…"] + pts[-1:]
            return "points([%s])" % ", ".join(pts)
        return "%s(beta_i=%g, t0=%g)" % (self.kind, self.beta_i, self.t0)


def exponential(beta_i: float, t0: float) -> Schedule:
    """The paper's schedule β(t) = β_i^(1 − t/t0) for t < t0, then 1.

    Args:
        beta_i: initial inverse temperature, in (0, 1].
        t0: annealing time in steps, ≥ 0 (0 = no annealing: β = 1 throughout).
    """
    return Schedule("exponential", beta_i, t0)


def linear(beta_i: float, t0: float) -> Schedule:
    """β rising linearly: β(t) = β_i + (1 − β_i) t/t0 for t < t0, then 1 (β_i in (0, 1], t0 ≥ 0 steps)."""
    return Schedule("linear", beta_i, t0)


def linear_temperature(beta_i: float, t0: float) -> Schedule:
    """The temperature T = 1/β falling linearly from 1/β_i to 1 over t0 steps, then β = 1.

    It lingers at large β, where the split of a Gaussian-mixture student is decided.
    """
    return Schedule("linear_temperature", beta_i, t0)


class AdaptiveSchedule(Schedule):
    """The adaptive schedule (``schedule.kind = "adaptive"``): β starts at ``beta_i``; every
    ``every`` steps ``samples`` points x_i ~ q are drawn and β grows by the Δβ at which the
    effective sample size of the weights π(x_i)^Δβ is ``rho`` × ``samples``; β = 1 from step
    ``t0`` (the budget) on; with ``hold`` > 0, an update where the mean of ln π over the
    samples moved by more than ``hold`` standard errors since the previous update leaves β
    unchanged. Only training knows β(t): calling the schedule raises."""

    def __init__(self, beta_i: float, t0: float, rho: float, every: int, samples: int,
                 hold: float = 0.0) -> None:
        self.kind = "adaptive"
        self.beta_i = float(beta_i)
        self.t0 = float(t0)
        self.beta = 1.0
        self.rho = float(rho)
        self.every = int(every)
        self.samples = int(samples)
        self.hold = float(hold)
        # validated as a training configuration's [schedule] (errors name schedule.<field>)
        _native.resolve_config("dict", {"schedule": self.to_config()}, {})

    def __call__(self, t: Any) -> Any:
        """Raises TypeError: β(t) of an adaptive schedule exists only during training."""
        raise TypeError(
            "an adaptive schedule has no β(t) before training: β moves with the student's "
            "samples (pass schedule.to_config() to annealvi.train and read β from the "
            "trajectory)"
        )

    @property
    def end(self) -> float:
        """The budget t0: β = 1 from this step on at the latest."""
        return self.t0

    def to_config(self) -> dict:
        """The ``schedule`` table of a run configuration for this schedule."""
        return {
            "kind": "adaptive",
            "beta_i": self.beta_i,
            "t0": self.t0,
            "rho": self.rho,
            "every": self.every,
            "samples": self.samples,
            "hold": self.hold,
        }

    def __repr__(self) -> str:
        return "adaptive(beta_i=%g, t0=%g, rho=%g, every=%d, samples=%d, hold=%g)" % (
            self.beta_i, self.t0, self.rho, self.every, self.samples, self.hold)


def adaptive(beta_i: float = 0.05, t0: float = 1000.0, rho: float = 0.99, every: int = 10,
             samples: int = 256, hold: float = 0.0) -> AdaptiveSchedule:
    """β from ``beta_i`` to 1 by the effective sample size of the student's own samples.

    Args:
        beta_i: initial inverse temperature, in (0, 1].
        t0: the budget in steps, ≥ 0: β = 1 from step t0 on whatever the rule.
        rho: target fraction of the effective sample size, in (0, 1).
        every: steps between updates of β, ≥ 1.
        samples: samples of the student per update, ≥ 2 (samples/every extra evaluations of
            ln π per step).
        hold: in [0, 100]; > 0 holds β at an update where the mean of ln π over the samples
            moved by more than ``hold`` standard errors since the previous update (the fit
            has not caught up); 0 (default) never holds.
    """
    return AdaptiveSchedule(beta_i, t0, rho, every, samples, hold)


def constant(beta: float = 1.0) -> Schedule:
    """β(t) = beta for every step (beta in (0, 1]; 1 = no annealing)."""
    return Schedule("constant", beta=beta)


def points(steps: Any, betas: Any = None) -> Schedule:
    """β through given points (t_j, β_j), interpolated geometrically (linearly in ln β):
    β(t) = β_j (β_{j+1}/β_j)^((t − t_j)/(t_{j+1} − t_j)); β_1 before the first point and the
    last β after the last (usually 1). The optimal schedules of :func:`annealvi.design` are
    of this kind (configuration ``schedule.kind = "points"``).

    Args:
        steps: the steps t_j (≥ 0, strictly increasing) with ``betas`` the β_j in (0, 1]; or,
            without ``betas``, the points themselves: a sequence of (step, β) pairs or an
            (n, 2) array.
        betas: the β_j, as many as steps.
    """
    if betas is None:
        pts = np.asarray(steps, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError("invalid value for `points`: expected (step, beta) pairs (an (n, 2) "
                             "array), got shape %s" % (pts.shape,))
    else:
        t = np.asarray(steps, dtype=np.float64).reshape(-1)
        b = np.asarray(betas, dtype=np.float64).reshape(-1)
        if t.shape != b.shape:
            raise ValueError("invalid value for `betas`: %d values for %d steps (expected as "
                             "many)" % (b.size, t.size))
        pts = np.stack([t, b], axis=1)
    return Schedule("points", points=[(float(x), float(y)) for x, y in pts])


__all__ = [
    "Schedule", "AdaptiveSchedule", "exponential", "linear", "linear_temperature", "constant",
    "points", "adaptive",
]
