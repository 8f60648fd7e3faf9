"""User-defined targets: :class:`Target`."""

from typing import Any, Callable, Optional, Sequence, Tuple

import numpy as np


class Target:
    """A target density π on R^d given by a Python callable.

    Build it with :meth:`Target.from_callable`; pass it as ``user_target=`` to
    :func:`annealvi.train` or :func:`annealvi.sweep` (Gaussian-mixture or RealNVP student).
    """

    def __init__(self, fn: Callable[[np.ndarray], Tuple[Any, Any]], dim: int,
                 modes: Optional[Any] = None) -> None:
        if not callable(fn):
            raise TypeError("fn must be callable: fn(x) -> (log_prob (n,), grad (n, d))")
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError("invalid value for `dim`: %r (expected an integer >= 1)" % (dim,))
        self.fn = fn
        self.dim = int(dim)
        if modes is None:
            self.modes: Optional[np.ndarray] = None
        else:
            m = np.asarray(modes, dtype=np.float64)
            if m.ndim != 2 or m.shape[1] != self.dim or m.shape[0] < 1:
                raise ValueError(
                    "invalid value for `modes`: shape %s (expected (n_modes, dim) = (k, %d), k >= 1)"
                    % (m.shape, self.dim)
                )
            if not np.all(np.isfinite(m)):
                raise ValueError("invalid value for `modes`: non-finite entries (expected finite centres)")
            self.modes = m
        self._modes_list = None if self.modes is None else self.modes.tolist()

    @classmethod
    def from_callable(cls, fn: Callable[[np.ndarray], Tuple[Any, Any]], dim: int,
                      modes: Optional[Any] = None) -> "Target":
        """A target from ``fn(x) -> (log_prob, grad)``.

        Args:
            fn: called with an ``(n, d)`` float64 array of points; returns the
                (possibly unnormalised) log-density at each point, shape ``(n,)``, and its
                gradient with respect to x, shape ``(n, d)``. It is called once per training
                step on all the student's samples (n = K·B for a K-component mixture, B for a
                flow); a flow's Monte-Carlo records and final evaluation call it on chunks of
                B samples. An exception it raises ends the run and is raised by
                ``train``/``sweep``; a wrong shape or a non-finite value ends it with a
                ``ValueError`` naming the problem.
            dim: the dimension d.
            modes: optional ``(n_modes, d)`` centres of the target's modes. With them a run's
                outcome is classified (each student component belongs to its nearest centre:
                covered / collapsed / partial) and the student's mass on each mode's cell is
                estimated; the recorded statistics m_k are projections on the first centre's
                direction. A flow's samples belong to their nearest centre; a mode with less
                mass than ``student.realnvp.collapse_threshold`` is not covered. Without modes
                the outcome is "unknown" (``train`` only).
        """
        return cls(fn, dim, modes)

    def __call__(self, x: Any) -> Tuple[np.ndarray, np.ndarray]:
        """Evaluates and checks ``fn`` on an (n, d) array: (log_prob, grad) as float64."""
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError("x: shape %s (expected (n, %d))" % (x.shape, self.dim))
        return self._check(x, self.fn(x))

    def _check(self, x: np.ndarray, out: Any) -> Tuple[np.ndarray, np.ndarray]:
        n = x.shape[0]
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise ValueError(
                "the target callable returned %s (expected a tuple (log_prob, grad))"
                % type(out).__name__
            )
        lp = np.asarray(out[0], dtype=np.float64)
        g = np.asarray(out[1], dtype=np.float64)
        if lp.shape != (n,):
            raise ValueError(
                "the target callable returned log_prob of shape %s (expected (%d,))" % (lp.shape, n)
            )
        if g.shape != (n, self.dim):
            raise ValueError(
                "the target callable returned grad of shape %s (expected (%d, %d))"
                % (g.shape, n, self.dim)
            )
        if not np.all(np.isfinite(lp)):
            i = int(np.flatnonzero(~np.isfinite(lp))[0])
            raise ValueError(
                "the target callable returned a non-finite log_prob (%r at row %d, x[%d, :3] = %s)"
                % (float(lp[i]), i, i, x[i, :3])
            )
        if not np.all(np.isfinite(g)):
            i = int(np.argwhere(~np.isfinite(g))[0][0])
            raise ValueError(
                "the target callable returned a non-finite gradient (row %d, x[%d, :3] = %s)"
                % (i, i, x[i, :3])
            )
        return lp, g

    def _evaluate(self, flat: np.ndarray, n: int) -> Tuple[np.ndarray, np.ndarray]:
        """Native entry point: flat (n·d,) points in, flat contiguous results out."""
        x = flat.reshape(n, self.dim)
        lp, g = self._check(x, self.fn(x))
        return np.ascontiguousarray(lp), np.ascontiguousarray(g).reshape(-1)

    def __repr__(self) -> str:
        k = 0 if self.modes is None else self.modes.shape[0]
        return "Target(dim=%d, modes=%d, fn=%r)" % (self.dim, k, self.fn)


def bimodal(d: int, r: float = 3.0, w_star: float = 0.8) -> Target:
    """The built-in bimodal target w* N(R e_1, I) + (1 − w*) N(−R e_1, I) written in numpy.

    Useful as a template for one's own targets and to check that the callable path reproduces
    the built-in one (same log-density, gradient to rounding).
    """
    h = 0.5 * np.log(w_star / (1.0 - w_star))
    const = -0.5 * d * np.log(2 * np.pi) - 0.5 * r * r - _log_cosh(h)

    def fn(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        s = x[:, 0]
        a = r * s + h
        lp = const - 0.5 * np.einsum("ij,ij->i", x, x) + _log_cosh(a)
        g = -x.copy()
        g[:, 0] += r * np.tanh(a)
        return lp, g

    modes = np.zeros((2, d))
    modes[0, 0] = r
    modes[1, 0] = -r
    return Target(fn, d, modes)


def _log_cosh(a: Any) -> Any:
    a = np.abs(a)
    return a + np.log1p(np.exp(-2.0 * a)) - np.log(2.0)


__all__ = ["Target", "bimodal"]
