"""User-defined targets: :class:`Target`."""

from typing import Any, Callable, Optional, Sequence, Tuple

import numpy as np


class Target:
    """A target density π on R^d given by a Python callable.

    Build it with :meth:`Target.from_callable` (a numpy log-density and its gradient),
    :meth:`Target.from_torch` or :meth:`Target.from_jax` (a log-density alone, differentiated by
    PyTorch or JAX); pass it as ``user_target=`` to :func:`annealvi.train` or
    :func:`annealvi.sweep` (Gaussian-mixture or RealNVP student).
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

    @classmethod
    def from_torch(cls, fn: Callable[[Any], Any], dim: int, modes: Optional[Any] = None,
                   dtype: Any = None) -> "Target":
        """A target from a batched log-density written in PyTorch, differentiated by autograd.

        Args:
            fn: called with an ``(n, d)`` CPU tensor of points (of ``dtype``, requiring
                gradients); returns a tensor of shape ``(n,)``: the (possibly unnormalised)
                log-density at each point. Its gradient with respect to x comes from
                ``torch.autograd.grad`` of the sum (each row depends only on its own point);
                the graph is freed after each call and the gradients of any parameters
                ``fn`` uses are not touched. It may move x to another device (its result is
                copied back to the CPU). It is called when :meth:`from_callable`'s ``fn`` would
                be (once per training step on the K·B or B samples). A result of another
                shape, or one that does not depend on x through torch operations, raises a
                ``ValueError``; a non-finite value ends the run as with :meth:`from_callable`.
            dim: the dimension d.
            modes: optional ``(n_modes, d)`` centres of the target's modes, as in
                :meth:`from_callable`.
            dtype: the tensors' floating dtype (default ``torch.float64``; ``torch.float32``
                computes in single precision). Results reach the student as float64.

        Raises:
            ImportError: PyTorch is not installed.
        """
        try:
            import torch
        except ImportError as e:
            raise ImportError("Target.from_torch needs PyTorch: pip install torch") from e
        if dtype is None:
            dtype = torch.float64
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError("invalid value for `dtype`: %r (expected a floating torch dtype, "
                             "e.g. torch.float64 or torch.float32)" % (dtype,))
        return cls(_TorchFn(torch, fn, dtype), dim, modes)

    @classmethod
    def from_jax(cls, fn: Callable[[Any], Any], dim: int,
                 modes: Optional[Any] = None) -> "Target":
        """A target from a batched log-density written in JAX, differentiated and jit-compiled.

        Args:
            fn: called with an ``(n, d)`` JAX array of points; returns an array of shape
                ``(n,)``: the (possibly unnormalised) log-density at each point. It must be
                traceable by ``jax.jit``. The log-densities and their gradient with respect to
                x (``jax.value_and_grad`` of the sum, each row depending only on its own point)
                are one compiled function, compiled once per distinct n: n is K·B in every
                step of a K-component mixture, so it compiles once; a flow's steps use B, its
                records and final evaluation chunks of B whose last one may be smaller, so at
                most three sizes. The precision is JAX's when ``from_jax`` is called:
                float64 where ``jax_enable_x64`` is on (``jax.config.update("jax_enable_x64",
                True)``, or inside a ``jax.enable_x64()`` context), float32 otherwise, and it
                stays so for this target (also in other threads and outside the context;
                JAX's own configuration is not changed). Float32 log-densities and gradients
                are what the student then sees (as float64). (JAX 0.10 fails to compile a
                function closing over a float64 numpy array in both precisions in one process;
                ``jnp.asarray(c, x.dtype)`` avoids it.) A result of another shape raises a
                ``ValueError``; a non-finite value ends the run as with
                :meth:`from_callable`.
            dim: the dimension d.
            modes: optional ``(n_modes, d)`` centres of the target's modes, as in
                :meth:`from_callable`.

        Raises:
            ImportError: JAX is not installed.
        """
        try:
            import jax
        except ImportError as e:
            raise ImportError("Target.from_jax needs JAX: pip install jax") from e
        return cls(_JaxFn(jax, fn), dim, modes)

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


def _shape_error(api: str, shape: Any, n: int) -> ValueError:
    return ValueError("%s: `fn` returned an array of shape %s (expected (n,) = (%d,): one "
                      "log-density per row of x)" % (api, tuple(shape), n))


class _TorchFn:
    """``fn(x) -> (log_prob, grad)`` in numpy from a torch log-density (:meth:`Target.from_torch`)."""

    def __init__(self, torch: Any, fn: Callable[[Any], Any], dtype: Any) -> None:
        self._torch = torch
        self.fn = fn
        self.dtype = dtype

    def __call__(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        n = x.shape[0]
        a = np.asarray(x, dtype=np.float64)
        if not a.flags.writeable or not a.flags.c_contiguous:
            a = np.array(a, order="C")
        xt = torch.from_numpy(a).to(self.dtype).requires_grad_(True)
        with torch.enable_grad():
            lp = self.fn(xt)
            if not isinstance(lp, torch.Tensor):
                raise ValueError("Target.from_torch: `fn` returned %s (expected a tensor of "
                                 "shape (n,) = (%d,))" % (type(lp).__name__, n))
            if tuple(lp.shape) != (n,):
                raise _shape_error("Target.from_torch", lp.shape, n)
            if not lp.requires_grad:
                raise ValueError("Target.from_torch: the result of `fn` does not depend on x "
                                 "through torch operations (no gradient; was it detached, or "
                                 "computed in numpy?)")
            (g,) = torch.autograd.grad(lp.sum(), xt, allow_unused=True)
        if g is None:
            raise ValueError("Target.from_torch: the result of `fn` does not depend on x "
                             "(no gradient)")
        with torch.no_grad():
            lp_np = lp.detach().to(device="cpu", dtype=torch.float64).numpy()
            g_np = g.to(device="cpu", dtype=torch.float64).numpy()
        return lp_np, g_np

    def __repr__(self) -> str:
        return "from_torch(%r, dtype=%s)" % (self.fn, self.dtype)


class _JaxFn:
    """``fn(x) -> (log_prob, grad)`` in numpy from a JAX log-density (:meth:`Target.from_jax`)."""

    def __init__(self, jax: Any, fn: Callable[[Any], Any]) -> None:
        import jax.numpy as jnp

        self.fn = fn
        self._jax = jax
        self.x64 = bool(jax.config.read("jax_enable_x64"))
        self.dtype = np.float64 if self.x64 else np.float32
        # the context that sets the precision for one call (jax.enable_x64 from JAX 0.8 on,
        # jax.experimental.enable_x64 before)
        self._x64_context = getattr(jax, "enable_x64", None)
        if self._x64_context is None:
            import jax.experimental

            self._x64_context = getattr(jax.experimental, "enable_x64", None)

        def total(x: Any) -> Any:
            lp = jnp.asarray(fn(x))
            if lp.shape != (x.shape[0],):
                raise _shape_error("Target.from_jax", lp.shape, x.shape[0])
            return lp.sum(), lp

        self._value_and_grad = jax.jit(jax.value_and_grad(total, has_aux=True))

    def __call__(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, dtype=self.dtype)
        if bool(self._jax.config.read("jax_enable_x64")) == self.x64 or self._x64_context is None:
            (_, lp), g = self._value_and_grad(x)
        else:
            with self._x64_context(self.x64):
                (_, lp), g = self._value_and_grad(x)
        return np.asarray(lp, dtype=np.float64), np.asarray(g, dtype=np.float64)

    def __repr__(self) -> str:
        return "from_jax(%r, %s)" % (self.fn, np.dtype(self.dtype).name)


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
