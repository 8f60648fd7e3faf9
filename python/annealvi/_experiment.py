"""The object API of runs: :class:`Experiment` (a validated configuration), :class:`Run` (one
finished training run), :class:`Trajectory` (its records as flat columns) and the fitted
students :class:`GaussianMixture` and :class:`RealNVP`."""

import copy
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from . import _config, _native
from ._progress import reporter
from ._sweep import Table
from ._target import Target


class Experiment:
    """A run configuration, validated once: what :meth:`train` runs and :meth:`sweep` sweeps.

    ``Experiment(config=None, **settings)`` takes the configuration as :func:`annealvi.train`
    does — a dict nested like the TOML file, a path to a TOML file or a TOML string
    (configs/example.toml lists every field; None = the defaults, the paper's setting) — and
    settings that change it, as ``section__field=value`` (``optim__steps=2000``) or
    ``section={"field": value}`` (merged into the table). Values may be numpy scalars,
    ``float("inf")`` (e.g. ``optim__max_grad_norm=float("inf")``, the default) and NaN (which
    the validation refuses, naming the field), and objects:

    * ``schedule=`` an :class:`annealvi.schedule.Schedule`
      (``annealvi.schedule.exponential(0.05, 400)``): it replaces the whole ``[schedule]``
      table;
    * ``target=`` an :class:`annealvi.Target` (``Target.from_callable(fn, dim, modes)``): a
      user-defined target, trained against with the configured student (Gaussian mixture or
      RealNVP flow); ``target.d`` is set to its ``dim``. A dict as ``target=`` (or
      ``target__r=…``) still sets the ``[target]`` table of the built-in targets.

    The configuration is parsed and validated at construction (a ``ValueError`` naming the
    field and its valid range, e.g. "invalid value for `optim.steps`: -1 (… expected an
    integer ≥ 0)"); the resolved configuration (every field) is :attr:`config` (a dict) and
    :meth:`to_toml`. :meth:`with_` makes a variation. The same experiment and run index give
    the same numbers on every call and any thread count.

    Example::

        exp = annealvi.Experiment(target__d=32, optim__steps=600,
                                  schedule=annealvi.schedule.exponential(0.05, 400))
        run = exp.train()            # a Run
        run.outcome, run.student.means.shape    # ('covered', (2, 32))
        run.trajectory.to_dataframe()           # step, beta, loss, …, m_1, q_12, sigma_2, w_1
        faster = exp.with_(schedule=annealvi.schedule.exponential(0.05, 100))
    """

    def __init__(self, config: _config.ConfigSource = None, **settings: Any) -> None:
        config, settings, target = _config.split_target(config, settings)
        kind, source = _config.source(config)
        self._init(kind, source, _config.overrides(settings), target)

    def _init(self, kind: str, source: Any, overrides: Dict[str, Any],
              target: Optional[Target]) -> None:
        text, resolved = _native.experiment_config(kind, source, overrides, target)
        if kind == "path":
            # the file's text, read once: a variation or a run later does not depend on it
            with open(source, "r", encoding="utf-8") as f:
                kind, source = "toml", f.read()
        self._kind, self._source = kind, source
        self._overrides = overrides
        self._target = target
        self._toml = text
        self._config = resolved

    @property
    def config(self) -> Dict[str, Any]:
        """The resolved configuration (every field, as validated), nested like the TOML file;
        a copy."""
        return copy.deepcopy(self._config)

    @property
    def target(self) -> Optional[Target]:
        """The user-defined target, or None (the configured built-in target)."""
        return self._target

    @property
    def family(self) -> str:
        """The student family: "gmm" (Gaussian mixture) or "realnvp" (flow)."""
        return str(self._config["student"]["family"])

    def to_toml(self) -> str:
        """The resolved configuration as TOML text (loadable by the CLI: ``annealvi train
        --config``; with a user target, the callable itself is not part of it)."""
        return self._toml

    def with_(self, **settings: Any) -> "Experiment":
        """A new experiment: this one's configuration and settings, then ``settings`` (as the
        constructor's; a later value of a field replaces the earlier one, a Schedule replaces
        the whole ``[schedule]`` table, a Target replaces the user target)."""
        _, settings, target = _config.split_target(None, settings)
        new = Experiment.__new__(Experiment)
        new._init(self._kind, self._source,
                  _config.merge(self._overrides, _config.overrides(settings)),
                  target if target is not None else self._target)
        return new

    def _train(self, run: Any, progress: Any) -> Dict[str, Any]:
        return _train_native(self, run, progress)

    def train(self, run: int = 0, progress: Any = None) -> "Run":
        """One training run (run index ``run``: the initial student and the noise come from
        the streams (seed, run), as ``annealvi train`` for run 0 and a sweep's seed ``run`` in
        a cell without annealing).

        Args:
            run: run index (an integer ≥ 0).
            progress: None (a tqdm bar in an interactive session when tqdm is installed,
                nothing otherwise), True (a bar always: tqdm, else a text line on stderr),
                False (nothing) or a callable ``progress(done, total)``, in steps (the step
                reached at each record, every ``record.every`` steps; reported about every
                0.2 s and at the end).

        Returns:
            a :class:`Run`.

        Ctrl-C stops the run within about a second (KeyboardInterrupt).

        Raises:
            ValueError: ``run`` out of range; a user target returned a wrong shape or a
                non-finite value. Any exception raised by the target callable.
        """
        res = _train_native(self, run, progress)
        return Run(self, _check_run(run), res)

    def sweep(self, out: Optional[Union[str, "os.PathLike[str]"]] = None, *,
              grid: Optional[Mapping[str, Any]] = None, resume: bool = True,
              shard: Optional[str] = None, threads: int = 0, progress: Any = None,
              **grid_settings: Any) -> Any:
        """A sweep of this experiment over (β_i, t0) cells: this configuration is the sweep's
        ``[run]`` table, ``grid`` (or keywords) its ``[grid]`` table. Each cell has its own
        exponential schedule (β_i, t0) and lasts t0 + ``extra_steps`` steps, so the
        experiment's ``[schedule]`` and ``optim.steps`` are not used. Seed i of every cell
        starts from the initial student of run index i (common random numbers across cells).

        Args:
            out: None to keep the runs in memory, or a directory for runs.jsonl, cells.csv and
                sweep.toml (as ``annealvi sweep``; resumable).
            grid: the ``[grid]`` table as a dict (``beta_i``, ``t0``, ``seeds``,
                ``extra_steps``, ``no_annealing``, … as in configs/*.toml).
            resume, shard, threads, progress: as in :func:`annealvi.sweep`.
            **grid_settings: fields of the grid table as keywords (``beta_i=[0.05, 0.3]``,
                ``t0=[300]``, ``seeds=8``), applied after ``grid``.

        Returns:
            the sweep's result object (``.cells``, ``.runs``, ``.to_dataframe()``).
        """
        from . import _sweep  # the in-memory sweep's module

        g: Dict[str, Any] = dict(grid or {})
        g.update(grid_settings)
        # each cell has its own schedule and length: a sweep's [run] table sets neither
        run = {k: v for k, v in self.config.items() if k != "schedule"}
        run["optim"] = {k: v for k, v in run["optim"].items() if k != "steps"}
        return _sweep.run_sweep(run, g, out=out, resume=resume, shard=shard,
                                threads=threads, progress=progress, user_target=self._target)

    def __repr__(self) -> str:
        c = self._config
        t, s, o = c["target"], c["student"], c["optim"]
        if self._target is not None:
            target = "user(dim=%d, modes=%s)" % (
                self._target.dim,
                "none" if self._target.modes is None else len(self._target.modes))
        elif t["kind"] == "bimodal":
            target = "bimodal(d=%d, r=%g, w_star=%g)" % (t["d"], t["r"], t["w_star"])
        else:
            target = "%s(d=%d)" % (t["kind"], t["d"])
        if s["family"] == "gmm":
            student = "gmm(K=%d)" % s["components"]
        else:
            r = s["realnvp"]
            student = "realnvp(layers=%d, width=%d)" % (r["layers"], r["width"])
        return "Experiment(target=%s, student=%s, schedule=%s, %s=%s, lr=%g, steps=%d, seed=%d)" % (
            target, student, _schedule_repr(c["schedule"]), "estimator",
            c["objective"]["estimator"], o["lr"], o["steps"], c["seed"])


def _schedule_repr(sc: Mapping[str, Any]) -> str:
    k = sc["kind"]
    if k == "constant":
        return "constant(beta=%g)" % sc["beta"]
    if k == "points":
        return "points(%d points, end=%g)" % (len(sc["points"]),
                                                sc["points"][-1][0] if sc["points"] else 0)
    return "%s(beta_i=%g, t0=%g)" % (k, sc["beta_i"], sc["t0"])


def _check_run(run: Any) -> int:
    lo, hi = _native.INT_RANGES["run"]
    if isinstance(run, bool) or not isinstance(run, (int, np.integer)) or not lo <= run <= hi:
        raise ValueError("invalid value for `run`: %r (expected an integer in [%d, %d])"
                         % (run, lo, hi))
    return int(run)


def _train_native(exp: Experiment, run: Any, progress: Any) -> Dict[str, Any]:
    """The native run of ``exp`` (its resolved TOML): {"summary", "trajectory", "student"}."""
    run = _check_run(run)
    with reporter(progress, int(exp._config["optim"]["steps"]), "train") as r:
        return _native.train("toml", exp._toml, {}, run, exp._target, r.callback)


class Trajectory(Table):
    """A run's records (every ``record.every`` steps, and the last step) as flat columns: a
    dict of 1-d numpy arrays of equal length (a :class:`annealvi.Table`), so
    ``pandas.DataFrame(traj)`` and ``traj.to_dataframe()`` make a table; ``traj.rows`` is the
    number of records, ``traj.columns`` the names.

    Columns, Gaussian mixture (K components): ``step`` (int), ``beta``, ``loss`` (the training
    loss estimate), ``kl`` (KL(q‖π_β) estimate), ``neg_elbo``, then ``m_1`` … ``m_K``
    (m_k = μ_k·μ̂), ``q_11``, ``q_12``, …, ``q_KK`` (q_kl = μ_k·μ_l, k ≤ l; written ``q_k_l``
    when K ≥ 10), ``sigma_1`` … ``sigma_K`` and ``w_1`` … ``w_K`` — the names of
    :func:`annealvi.ode_trajectory`. RealNVP flow: ``step``, ``beta``, ``loss``, ``kl``,
    ``neg_elbo``, ``light_mode_mass``, ``ess_fraction``, ``mode_mass_1`` … ``mode_mass_J``.
    """

    def __init__(self, columns: Mapping[str, Any]) -> None:
        super().__init__(columns, "records")


def _pair_name(k: int, l: int, n: int) -> str:
    return "q_%d%d" % (k, l) if n < 10 else "q_%d_%d" % (k, l)


def flat_trajectory(traj: Mapping[str, Any]) -> Trajectory:
    """The native trajectory (packed (rows, K) arrays m, q, sigma, w or mode_masses) as flat
    columns."""
    out: Dict[str, np.ndarray] = {}
    for name in ("step", "beta", "loss", "kl", "neg_elbo", "light_mode_mass", "ess_fraction"):
        if name in traj:
            out[name] = np.asarray(traj[name])
    if "m" in traj:
        m = np.asarray(traj["m"])
        k = m.shape[1]
        for i in range(k):
            out["m_%d" % (i + 1)] = m[:, i].copy()
        q = np.asarray(traj["q"])
        j = 0
        for a in range(k):
            for b in range(a, k):
                out[_pair_name(a + 1, b + 1, k)] = q[:, j].copy()
                j += 1
        for name in ("sigma", "w"):
            arr = np.asarray(traj[name])
            for i in range(k):
                out["%s_%d" % (name, i + 1)] = arr[:, i].copy()
    if "mode_masses" in traj:
        mm = np.asarray(traj["mode_masses"])
        for i in range(mm.shape[1] if mm.ndim == 2 else 0):
            out["mode_mass_%d" % (i + 1)] = mm[:, i].copy()
    return Trajectory(out)


class Run:
    """One finished training run (from :meth:`Experiment.train`).

    Attributes:
        experiment: the :class:`Experiment` it ran.
        run: its run index.
        outcome: "covered", "collapsed", "partial", "diverged", or "unknown" (a user target
            without modes).
        mode: the index of the mode a collapsed run settled on (None otherwise); mode_name
            its name.
        diverged_step: the step at which a diverged run stopped (None otherwise).
        final_step: the last step trained.
        light_mode_mass: the student's mass on the light mode's cell (the smallest mode mass
            for a flow or a user target).
        summary: every summary statistic as a dict (``m``, ``q``, ``sigma``, ``w`` of the
            final mixture; ``kl``, ``ess_fraction``, ``mode_masses``, ``mode_weight_error`` of
            a flow); each is also an attribute (``run.sigma``).
        trajectory: the records as a :class:`Trajectory` (flat columns).
        student: the fitted model, a :class:`GaussianMixture` or a :class:`RealNVP`.
    """

    def __init__(self, experiment: Experiment, run: int, res: Mapping[str, Any]) -> None:
        self.experiment = experiment
        self.run = run
        self.summary: Dict[str, Any] = dict(res["summary"])
        self.trajectory = flat_trajectory(res["trajectory"])
        native = res["student"]
        if isinstance(native, _native.GmmModel):
            self.student: Union["GaussianMixture", "RealNVP"] = GaussianMixture._wrap(native)
        else:
            self.student = RealNVP._wrap(native)

    @property
    def outcome(self) -> str:
        """The outcome: "covered", "collapsed", "partial", "diverged", or "unknown" (a user
        target without modes)."""
        return str(self.summary["outcome"])

    @property
    def mode(self) -> Optional[int]:
        """The index of the mode a collapsed run settled on; None otherwise."""
        return self.summary.get("mode")

    @property
    def mode_name(self) -> Optional[str]:
        """The name of that mode in the target; None otherwise."""
        return self.summary.get("mode_name")

    @property
    def diverged_step(self) -> Optional[int]:
        """The step at which a diverged run stopped; None otherwise."""
        return self.summary.get("diverged_step")

    @property
    def final_step(self) -> int:
        """The last step trained."""
        return int(self.summary["final_step"])

    @property
    def light_mode_mass(self) -> float:
        """The student's mass on the light mode's cell (the smallest mode mass for a flow
        or a user target)."""
        return float(self.summary["light_mode_mass"])

    @property
    def seed(self) -> int:
        """The configuration's seed."""
        return int(self.summary["seed"])

    def __getattr__(self, name: str) -> Any:
        # the other summary statistics (m, q, sigma, w, kl, ess_fraction, mode_masses, …)
        summary = self.__dict__.get("summary")
        if summary is not None and name in summary:
            return summary[name]
        raise AttributeError("'Run' object has no attribute %r (summary keys: %s)"
                             % (name, ", ".join(summary or ())))

    def to_dict(self) -> Dict[str, Any]:
        """The result as plain dicts: {"summary": {...}, "trajectory": {column: array}} (flat
        columns; :func:`annealvi.train` returns the same summary with packed arrays ``m``,
        ``q``, ``sigma``, ``w``)."""
        return {"summary": dict(self.summary), "trajectory": dict(self.trajectory)}

    def __repr__(self) -> str:
        extra = ""
        if self.mode is not None:
            extra = ", mode=%r" % (self.mode_name if self.mode_name else self.mode)
        if self.diverged_step is not None:
            extra = ", diverged_step=%d" % self.diverged_step
        return "Run(run=%d, outcome=%r%s, final_step=%d, light_mode_mass=%.4g, student=%r)" % (
            self.run, self.outcome, extra, self.final_step, self.light_mode_mass, self.student)


def _points(x: Any, d: int) -> Tuple[np.ndarray, bool]:
    """``x`` as a C-contiguous (n, d) float64 array; a single point (d,) as (1, d)."""
    a = np.asarray(x, dtype=np.float64)
    single = a.ndim == 1
    if single:
        a = a.reshape(1, -1)
    if a.ndim != 2 or a.shape[1] != d:
        raise ValueError("invalid value for `x`: shape %s (expected (n, %d) or (%d,))"
                         % (np.shape(x), d, d))
    return np.ascontiguousarray(a), single


def _count(name: str, v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < 2 ** 64:
        raise ValueError("invalid value for `%s`: %r (expected an integer ≥ 0)" % (name, v))
    return int(v)


class GaussianMixture:
    """A Gaussian mixture q(x) = Σ_k w_k N(x; μ_k, σ_k² I_d): the fitted student of a run (its
    :attr:`Run.student`), or built from parameters.

    ``GaussianMixture(means, sigma, weights)``: means (K, d), σ (K,) > 0, weights (K,) > 0
    summing to 1.

    The statistics engine (``student.simulation = "statistics"``) simulates a run in frame
    coordinates: an orthonormal frame whose first axis is the target's μ̂, then the target
    means' directions, then p − a directions of the student's own (p ≤ d). Its fitted student is
    embedded in R^d: the frame's target directions are the target's (so μ_k·μ̂ and μ_k·ν_j are
    the run's), the student's directions are the standard basis vectors e_1, e_2, … taken in
    order and orthogonalised against them (the engine's law is rotation invariant there, so any
    completion is as good). For the paper's target along e_1 the means are the frame
    coordinates padded with zeros. Its statistics (m, q, σ, w) are the run's summary's.
    """

    def __init__(self, means: Any, sigma: Any, weights: Any) -> None:
        m = np.ascontiguousarray(np.asarray(means, dtype=np.float64))
        if m.ndim != 2:
            raise ValueError("invalid value for `means`: shape %s (expected (K, d))" % (m.shape,))
        self._native = _native.GmmModel(m, np.ascontiguousarray(sigma, dtype=np.float64),
                                        np.ascontiguousarray(weights, dtype=np.float64))

    @classmethod
    def _wrap(cls, native: Any) -> "GaussianMixture":
        obj = cls.__new__(cls)
        obj._native = native
        return obj

    @property
    def dim(self) -> int:
        """The dimension d."""
        return int(self._native.dim)

    @property
    def components(self) -> int:
        """The number of components K."""
        return int(self._native.components)

    @property
    def means(self) -> np.ndarray:
        """The means μ_k, shape (K, d)."""
        return self._native.means

    @property
    def sigma(self) -> np.ndarray:
        """The standard deviations σ_k, shape (K,)."""
        return self._native.sigma

    @property
    def weights(self) -> np.ndarray:
        """The weights w_k, shape (K,)."""
        return self._native.weights

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` independent samples, shape (n, d): the same ``seed`` gives the same points
        (n·d ≤ 2²⁸)."""
        return self._native.sample(_count("n", n), _count("seed", seed))

    def log_prob(self, x: Any) -> Any:
        """ln q(x) (nats) of the rows of ``x`` (n, d) → shape (n,); a single point (d,) → a
        float. Non-finite coordinates are refused (ValueError naming ``x``)."""
        a, single = _points(x, self.dim)
        lp = self._native.log_prob(a)
        return float(lp[0]) if single else lp

    def __repr__(self) -> str:
        return "GaussianMixture(K=%d, d=%d, sigma=%s, weights=%s)" % (
            self.components, self.dim, np.array2string(self.sigma, precision=4),
            np.array2string(self.weights, precision=4))


class RealNVP:
    """A fitted RealNVP flow q = f_θ # N(0, σ0² I_d) (a run's :attr:`Run.student` with
    ``student.family = "realnvp"``), evaluated by the library's flow.

    Parameters: :attr:`params` is θ as one float64 vector in the library's layout (for coupling
    l, for net s then t, for linear layer j: W (n_out × n_in, row-major, as PyTorch's
    ``nn.Linear.weight``) then b); :attr:`layout` describes each linear layer's place in it and
    :meth:`parameters` returns them by name, ``"coupling{l}.{s|t}.{j}.weight"`` / ``.bias``.
    :attr:`arch` holds the architecture (d, layers, depth, width, activation, mask,
    scale_bound, sigma0, precision). The batched passes run in the flow's ``precision`` (f32
    by default), so :meth:`log_prob` agrees with :meth:`sample_with_log_prob` to that
    precision.
    """

    def __init__(self) -> None:
        raise TypeError("a RealNVP comes from a run: Experiment(student__family=\"realnvp\", "
                        "…).train().student")

    @classmethod
    def _wrap(cls, native: Any) -> "RealNVP":
        obj = cls.__new__(cls)
        obj._native = native
        return obj

    @property
    def dim(self) -> int:
        """The dimension d."""
        return int(self._native.dim)

    @property
    def arch(self) -> Dict[str, Any]:
        """The architecture as a dict."""
        return dict(self._native.arch)

    @property
    def params(self) -> np.ndarray:
        """θ, the flat parameter vector (float64)."""
        return self._native.params

    @property
    def layout(self) -> List[Dict[str, Any]]:
        """One dict per linear layer, in θ's order: ``coupling``, ``net`` ("s" or "t"),
        ``layer``, ``offset`` (of W in θ), ``shape`` (n_out, n_in) of W; b (n_out) follows W."""
        return [{"coupling": l, "net": net, "layer": j, "offset": off, "shape": (n_out, n_in)}
                for (l, net, j, off, n_out, n_in) in self._native.layout]

    def parameters(self) -> Dict[str, np.ndarray]:
        """The weights and biases by name (copies): ``"coupling0.s.0.weight"`` (n_out, n_in),
        ``"coupling0.s.0.bias"`` (n_out,), …"""
        theta = self.params
        out: Dict[str, np.ndarray] = {}
        for e in self.layout:
            n_out, n_in = e["shape"]
            off = e["offset"]
            name = "coupling%d.%s.%d" % (e["coupling"], e["net"], e["layer"])
            out[name + ".weight"] = theta[off:off + n_out * n_in].reshape(n_out, n_in).copy()
            out[name + ".bias"] = theta[off + n_out * n_in:off + n_out * n_in + n_out].copy()
        return out

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` samples, shape (n, d), pushed forward from base noise drawn with ``seed`` (the
        same seed gives the same points)."""
        return self.sample_with_log_prob(n, seed)[0]

    def sample_with_log_prob(self, n: int, seed: int = 0) -> Tuple[np.ndarray, np.ndarray]:
        """``n`` samples (n, d) and their ln q (n,), computed in the same forward pass."""
        return self._native.sample_with_log_prob(_count("n", n), _count("seed", seed))

    def log_prob(self, x: Any) -> Any:
        """ln q(x) (nats) through the inverse flow, rows of ``x`` (n, d) → (n,); a single
        point (d,) → a float."""
        a, single = _points(x, self.dim)
        lp = self._native.log_prob(a)
        return float(lp[0]) if single else lp

    def __repr__(self) -> str:
        a = self.arch
        return "RealNVP(d=%d, layers=%d, depth=%d, width=%d, params=%d, precision=%s)" % (
            a["d"], a["layers"], a["depth"], a["width"], len(self.params), a["precision"])


__all__ = ["Experiment", "Run", "Trajectory", "GaussianMixture", "RealNVP"]
