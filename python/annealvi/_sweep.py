"""Sweeps over (β_i, t0) cells, on disk or in memory, and their results as objects.

:func:`run_sweep` (behind :func:`annealvi.sweep` and ``Experiment.sweep``) runs the library's
sweep — the CLI's ``annealvi sweep``: same plan, same streams, same runs — and returns a
:class:`SweepResult` whose ``cells`` and ``runs`` are :class:`Table` objects (dicts of numpy
columns, one entry per cell or per run, with ``to_dataframe()``).

With ``out=None`` the sweep runs "in memory": into a temporary directory removed before the
call returns (also on an error or Ctrl-C), so that nothing is left behind and the runs are
those of a sweep on disk by construction (one code path, user targets included).
"""

import os
import tempfile
from typing import Any, Dict, Mapping, Optional, Union

import numpy as np

from . import _config, _native
from ._progress import ProgressArg, reporter


def _int(name: str, v: Any) -> int:
    """``v`` as an int within the argument's valid range (the native module's INT_RANGES),
    else a ValueError naming the argument and the range (before any conversion can overflow)."""
    lo, hi = _native.INT_RANGES.get(name, (0, 2 ** 64 - 1))
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
        raise ValueError("invalid value for `%s`: %r (expected an integer in [%d, %d])"
                         % (name, v, lo, hi))
    return int(v)


class Table(dict):
    """Columns of equal length as a dict of 1-D numpy arrays (``table["p_collapse"]``), so
    ``pandas.DataFrame(table)`` works as it is; ``to_dataframe()`` does the same, and
    ``len(table)`` is the number of columns (``table.rows`` the number of rows)."""

    def __init__(self, columns: Mapping[str, Any], what: str = "rows") -> None:
        super().__init__((k, np.asarray(v)) for k, v in columns.items())
        self._what = what

    @property
    def rows(self) -> int:
        """The number of rows (0 for a table without columns)."""
        return len(next(iter(self.values()))) if self else 0

    @property
    def columns(self) -> list:
        """The column names, in order."""
        return list(self.keys())

    def to_dataframe(self) -> Any:
        """The table as a pandas DataFrame (pandas must be installed)."""
        try:
            import pandas as pd  # type: ignore[import-not-found]
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("to_dataframe() needs pandas (pip install pandas)") from e
        return pd.DataFrame({k: v for k, v in self.items()})

    def row(self, i: int) -> Dict[str, Any]:
        """Row ``i`` as a dict of Python scalars."""
        return {k: v[i].item() if hasattr(v[i], "item") else v[i] for k, v in self.items()}

    def __repr__(self) -> str:
        return "Table(%d %s × %d columns: %s)" % (self.rows, self._what, len(self),
                                                   ", ".join(self.keys()))


class SweepResult:
    """The result of a sweep.

    Attributes:
        cells: :class:`Table`, one row per (β_i, t0) cell, ordered by (β_i, t0): ``beta_i``,
            ``t0`` (0 = no annealing), ``rate``, ``n``, ``collapsed``, ``diverged``,
            ``covered``, ``partial`` (runs that covered some but not all modes),
            ``p_collapse``, ``ci_low``, ``ci_high`` (Wilson 95%; ci_low ≤ p_collapse ≤
            ci_high exactly), ``mean_light_mass`` and, for flow runs only,
            ``mean_mode_weight_error``, ``mean_ess_fraction``, ``mean_kl``.
        runs: :class:`Table`, one row per run, ordered by (β_i, t0, seed): ``beta_i``, ``t0``,
            ``seed``, ``outcome`` ("covered", "collapsed", "partial", "diverged"), ``mode``
            (−1 unless collapsed), ``diverged_step`` (−1 unless diverged), ``steps``,
            ``light_mode_mass``, the final statistics of mixture runs as flat columns
            (``m_1``, ``m_2``, ``sigma_1``, …, ``q_11``, ``q_12``, ``q_22``, ``w_1``, …), the
            flow's metrics where the runs have them (``mode_weight_error``, ``ess_fraction``,
            ``kl``, …) and ``wall_seconds``.
        report: dict: runs ``planned``, ``skipped`` (already in ``out``), ``ran``,
            ``remaining`` and the ``seconds`` taken.
        out: the sweep directory, or None for a sweep in memory.
        config: the validated sweep configuration, as TOML text.

    ``result["cells"]``, ``result["runs"]`` and ``result["report"]`` work too (the dicts of
    earlier versions); ``to_dataframe()`` is ``cells.to_dataframe()``.
    """

    def __init__(self, raw: Mapping[str, Any], out: Optional[str]) -> None:
        self.cells = Table(raw["cells"], "cells")
        self.runs = Table(raw["runs"], "runs")
        self.report: Dict[str, Any] = dict(raw["report"])
        self.out = out
        self.config: str = raw.get("config", "")

    def to_dataframe(self) -> Any:
        """The cells as a pandas DataFrame (``cells.to_dataframe()``)."""
        return self.cells.to_dataframe()

    def __getitem__(self, key: str) -> Any:
        if key in ("cells", "runs", "report"):
            return getattr(self, key)
        raise KeyError(key)

    def keys(self) -> list:
        """``["cells", "runs", "report"]`` (dict-style access)."""
        return ["cells", "runs", "report"]

    def __repr__(self) -> str:
        where = "in memory" if self.out is None else "in %s" % self.out
        c = self.cells
        counts = ""
        if c.rows:
            counts = ": %d collapsed, %d partial, %d covered, %d diverged" % (
                int(c["collapsed"].sum()), int(c["partial"].sum()), int(c["covered"].sum()),
                int(c["diverged"].sum()))
        return "SweepResult(%d cells, %d runs%s; %d ran, %d skipped, %.1f s, %s)" % (
            c.rows, self.runs.rows, counts, self.report.get("ran", 0),
            self.report.get("skipped", 0), self.report.get("seconds", 0.0), where)


def _check_target(user_target: Any) -> None:
    from ._target import Target
    if user_target is not None and not isinstance(user_target, Target):
        raise TypeError("user_target must be an annealvi.Target (Target.from_callable(fn, dim))")


def _run(kind: str, source: Any, overrides: Dict[str, Any], grid: Optional[Dict[str, Any]],
         out: Union[None, str, "os.PathLike[str]"], resume: bool, shard: Optional[str],
         threads: int, progress: ProgressArg, user_target: Any) -> SweepResult:
    _check_target(user_target)
    threads = _int("threads", threads)
    if shard is not None and not isinstance(shard, str):
        raise TypeError("shard must be a string \"K/N\" or None")
    with reporter(progress, None, "sweep") as rep:
        if out is None:
            with tempfile.TemporaryDirectory(prefix="annealvi-sweep-") as tmp:
                raw = _native.run_sweep(kind, source, overrides, grid, tmp, False, shard,
                                        threads, user_target, rep.callback)
            return SweepResult(raw, None)
        path = os.fspath(out)
        raw = _native.run_sweep(kind, source, overrides, grid, path, bool(resume), shard,
                                threads, user_target, rep.callback)
        return SweepResult(raw, path)


def run_sweep(run_config: _config.ConfigSource, grid: Mapping[str, Any],
              out: Union[None, str, "os.PathLike[str]"] = None, resume: bool = True,
              shard: Optional[str] = None, threads: int = 0, progress: ProgressArg = None,
              user_target: Any = None) -> SweepResult:
    """A sweep of the run configuration ``run_config`` over the cells of ``grid``.

    Args:
        run_config: the run configuration (the ``[run]`` table of a sweep: target, student,
            objective, optim, ...) as anything :func:`annealvi.train` accepts: a dict, a path
            to a TOML file, a TOML string or None (defaults).
        grid: the ``[grid]`` table as a dict: ``beta_i``, ``t0`` (lists, or ranges
            ``{"log_from": …, "log_to": …, "n": …}``), ``no_annealing``, ``seeds``,
            ``extra_steps``, … as in configs/*.toml.
        out: None (in memory: nothing is left on disk) or a directory for runs.jsonl,
            cells.csv and sweep.toml (the CLI's files).
        resume: with ``out``, continue a sweep already there (only its missing runs run);
            False refuses a directory that holds one.
        shard: "K/N" to run only the K-th of N interleaved parts.
        threads: worker threads (0 = all cores); the results do not depend on it.
        progress: None (a bar in interactive sessions with tqdm), True, False or a callable
            ``progress(done, total)`` counting runs (see :mod:`annealvi._progress`).
        user_target: a user-defined :class:`annealvi.Target` (with ``modes``) instead of the
            configured target.

    Returns:
        a :class:`SweepResult`.

    Ctrl-C stops the sweep within about a second (KeyboardInterrupt); with ``out`` the
    finished runs stay there and ``resume=True`` continues.
    """
    if not isinstance(grid, Mapping):
        raise TypeError("grid must be a dict (the [grid] table), not %s" % type(grid).__name__)
    kind, source = _config.source(run_config)
    return _run(kind, source, {}, _config._plain(grid), out, resume, shard, threads, progress,
                user_target)


def sweep(config: _config.ConfigSource, out: Union[None, str, "os.PathLike[str]"] = None, *,
          resume: bool = True, shard: Optional[str] = None, threads: int = 0,
          progress: ProgressArg = None, user_target: Any = None,
          **overrides: Any) -> SweepResult:
    """A sweep over (β_i, t0) cells, as ``annealvi sweep`` (same files, same runs).

    Args:
        config: the sweep configuration (``[grid]`` and ``[run]`` tables; e.g.
            configs/fig2-quick.toml) as a dict, a path or a TOML string.
        out: output directory (runs.jsonl, one line per finished run; cells.csv; sweep.toml),
            or None to run in memory (nothing is left on disk).
        resume: continue a sweep already in ``out`` (only its missing runs are run); False
            refuses a directory that holds one.
        shard: "K/N" to run only the K-th of N interleaved parts (for clusters).
        threads: worker threads (0 = all cores).
        progress: None (a bar in interactive sessions with tqdm), True, False or a callable
            ``progress(done, total)`` counting runs.
        user_target: a user-defined :class:`Target` (with ``modes``) instead of the configured
            target, with the Gaussian-mixture or the RealNVP student (``run.target.d`` is set
            to its ``dim``; a configuration or override that sets another is refused).
        **overrides: as in :func:`train`, with the run's fields under ``run``
            (``run__optim__lr=0.02``, ``grid__seeds=8``).

    Returns:
        a :class:`SweepResult`: ``.cells`` (one row per cell: ``beta_i``, ``t0``, ``rate``,
        ``n``, ``collapsed``, ``diverged``, ``covered``, ``partial``, ``p_collapse``,
        ``ci_low``, ``ci_high`` (Wilson 95%), ``mean_light_mass`` and, for flows,
        ``mean_mode_weight_error``, ``mean_ess_fraction``, ``mean_kl``), ``.runs`` (one row per
        run), ``.report`` (runs ``planned``, ``skipped``, ``ran``, ``remaining``,
        ``seconds``); each table has ``to_dataframe()``, and ``res["cells"]`` still works.

    Ctrl-C stops the sweep within about a second (with a KeyboardInterrupt): no new run
    starts, runs in progress against the built-in targets stop at their next step and are
    dropped (runs against a user target finish); the finished runs stay in ``out`` and
    ``resume=True`` continues.
    """
    kind, source = _config.source(config)
    return _run(kind, source, _config.overrides(overrides), None, out, resume, shard, threads,
                progress, user_target)


__all__ = ["Table", "SweepResult", "run_sweep", "sweep"]
