//! Sweeps from Python: the library's sweep (`run_sweep_with`, as `annealvi sweep`) into a
//! directory, then its runs and cells read back as flat columns of numpy arrays.
//!
//! A sweep "in memory" (`out=None` in Python) runs into a temporary directory that the Python
//! layer removes afterwards (also on an error or Ctrl-C): the runs, their streams, the plan,
//! the engines and the aggregation are then the CLI's by construction (one code path, user
//! targets included), at the cost of writing one JSON line per run.

use crate::config::{Table, finish, load_table, set_dotted, set_user_dim};
use crate::{THREADS, callable, check_int, interruptible, to_py, with_progress, with_threads};
use annealvi::prelude::*;
use annealvi::sweep::RunLine;
use annealvi::train::ExternalTarget;
use numpy::PyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The sweep table: `source` (kind "dict" / "path" / "toml") with `overrides` is the whole
/// sweep configuration when `grid` is None; else it is the run configuration (the `[run]`
/// table) and `grid` the `[grid]` table.
fn sweep_table(
    py: Python<'_>,
    kind: &str,
    source: &Bound<'_, PyAny>,
    overrides: &Bound<'_, PyDict>,
    grid: Option<&Bound<'_, PyDict>>,
) -> PyResult<Table> {
    let Some(grid) = grid else {
        return load_table(kind, source, overrides);
    };
    let run = load_table(kind, source, overrides)?;
    if run.table.contains_key("grid") || run.table.contains_key("run") {
        return Err(PyValueError::new_err(
            "the run configuration holds a `grid` or `run` table: pass the [run] table's \
             contents (target, student, schedule, ...) and the grid separately",
        ));
    }
    let mut t = load_table("dict", PyDict::new(py).as_any(), &PyDict::new(py))?;
    let g = load_table("dict", grid.as_any(), &PyDict::new(py))?;
    set_dotted(&mut t.table, "grid", toml::Value::Table(g.table))?;
    set_dotted(&mut t.table, "run", toml::Value::Table(run.table))?;
    Ok(t)
}

/// Runs (or resumes) a sweep into `out` (runs.jsonl, cells.csv, sweep.toml, as the CLI) and
/// returns {"cells": {...}, "runs": {...}, "report": {...}} (see [`cells_dict`],
/// [`runs_dict`]). `progress`: a callable (done, total) in runs, or None.
#[pyfunction]
pub(crate) fn run_sweep<'py>(
    py: Python<'py>,
    kind: &str,
    source: &Bound<'py, PyAny>,
    overrides: &Bound<'py, PyDict>,
    grid: Option<Bound<'py, PyDict>>,
    out: &str,
    resume: bool,
    shard: Option<&str>,
    threads: usize,
    target: Option<Py<PyAny>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    check_int("threads", threads, THREADS)?;
    let mut t = sweep_table(py, kind, source, overrides, grid.as_ref())?;
    if let Some(target) = &target {
        let dim = callable::PyTarget::from_py(py, target)?.dim();
        set_user_dim(&mut t, "run.target.d", dim)?;
    }
    let cfg: SweepConfig = finish(t, "sweep configuration", SweepConfig::validate)?;
    let shard = shard.map(Shard::parse).transpose().map_err(to_py)?;
    let opts = SweepOptions {
        resume,
        shard,
        ..SweepOptions::new(out)
    };
    let report = with_progress(progress, || {
        with_threads(threads, || match target {
            Some(t) => callable::sweep(py, &cfg, &opts, t),
            None => interruptible(py, |cancel| run_sweep_cancellable(&cfg, &opts, cancel))?
                .map_err(to_py),
        })
    })?;
    let runs = read_runs(&opts.out.join("runs.jsonl"), false).map_err(to_py)?;
    let outd = PyDict::new(py);
    outd.set_item("cells", cells_dict(py, &runs)?)?;
    outd.set_item("runs", runs_dict(py, &runs)?)?;
    let rep = PyDict::new(py);
    rep.set_item("planned", report.planned)?;
    rep.set_item("skipped", report.skipped)?;
    rep.set_item("ran", report.ran)?;
    rep.set_item("remaining", report.remaining)?;
    rep.set_item("seconds", report.seconds)?;
    outd.set_item("report", rep)?;
    outd.set_item(
        "config",
        toml::to_string(&cfg).map_err(|e| PyValueError::new_err(e.to_string()))?,
    )?;
    Ok(outd)
}

/// The cells of `runs` as columns (one entry per cell, ordered by (β_i, t0), as cells.csv):
/// `beta_i`, `t0` (0 = no annealing), `rate`, `n`, `collapsed`, `diverged`, `covered`,
/// `partial`, `p_collapse`, `ci_low`, `ci_high` (Wilson 95%, ci_low ≤ p_collapse ≤ ci_high
/// exactly), `mean_light_mass`; for flow runs also `mean_mode_weight_error`,
/// `mean_ess_fraction`, `mean_kl` (left out for mixture runs, where they have no value).
pub(crate) fn cells_dict<'py>(py: Python<'py>, runs: &[RunLine]) -> PyResult<Bound<'py, PyDict>> {
    let cells = aggregate(runs);
    // flow runs carry some of their metrics (against a user target, the mode-weight error
    // and the KL are unknown)
    let flow = runs
        .iter()
        .any(|r| r.mode_weight_error.is_some() || r.ess_fraction.is_some() || r.kl.is_some());
    let dict = PyDict::new(py);
    let col = |f: &dyn Fn(&CellStats) -> f64| -> Vec<f64> { cells.iter().map(f).collect() };
    let icol = |f: &dyn Fn(&CellStats) -> usize| -> Vec<i64> {
        cells.iter().map(|c| f(c) as i64).collect()
    };
    let ci: Vec<(f64, f64)> = cells
        .iter()
        .map(|c| wilson_interval(c.collapsed, c.n))
        .collect();
    dict.set_item("beta_i", PyArray1::from_vec(py, col(&|c| c.cell.beta_i)))?;
    dict.set_item("t0", PyArray1::from_vec(py, col(&|c| c.cell.t0)))?;
    dict.set_item("rate", PyArray1::from_vec(py, col(&|c| c.cell.rate())))?;
    dict.set_item("n", PyArray1::from_vec(py, icol(&|c| c.n)))?;
    dict.set_item("collapsed", PyArray1::from_vec(py, icol(&|c| c.collapsed)))?;
    dict.set_item("diverged", PyArray1::from_vec(py, icol(&|c| c.diverged)))?;
    dict.set_item("covered", PyArray1::from_vec(py, icol(&|c| c.covered)))?;
    dict.set_item("partial", PyArray1::from_vec(py, icol(&|c| c.partial())))?;
    dict.set_item(
        "p_collapse",
        PyArray1::from_vec(py, col(&|c| c.p_collapse())),
    )?;
    dict.set_item(
        "ci_low",
        PyArray1::from_vec(py, ci.iter().map(|x| x.0).collect::<Vec<_>>()),
    )?;
    dict.set_item(
        "ci_high",
        PyArray1::from_vec(py, ci.iter().map(|x| x.1).collect::<Vec<_>>()),
    )?;
    dict.set_item(
        "mean_light_mass",
        PyArray1::from_vec(py, col(&|c| c.mean_light_mass)),
    )?;
    if flow {
        dict.set_item(
            "mean_mode_weight_error",
            PyArray1::from_vec(py, col(&|c| c.mean_mode_weight_error)),
        )?;
        dict.set_item(
            "mean_ess_fraction",
            PyArray1::from_vec(py, col(&|c| c.mean_ess_fraction)),
        )?;
        dict.set_item("mean_kl", PyArray1::from_vec(py, col(&|c| c.mean_kl)))?;
    }
    Ok(dict)
}

/// Column names of a vector statistic with `len` entries: `m_1`, … (per component), or for
/// `q` (k ≤ l pairs of K components, len = K(K+1)/2) `q_11`, `q_12`, … (`q_1_10` style when
/// K ≥ 10).
fn vector_names(name: &str, len: usize) -> Vec<String> {
    if name != "q" {
        return (1..=len).map(|k| format!("{name}_{k}")).collect();
    }
    let mut k = 0;
    while k * (k + 1) / 2 < len {
        k += 1;
    }
    if k * (k + 1) / 2 != len {
        return (1..=len).map(|j| format!("q_{j}")).collect();
    }
    let mut out = Vec::with_capacity(len);
    for a in 1..=k {
        for b in a..=k {
            out.push(if k < 10 {
                format!("q_{a}{b}")
            } else {
                format!("q_{a}_{b}")
            });
        }
    }
    out
}

/// The runs as flat columns, one entry per run, ordered by (β_i, t0, seed): `beta_i`, `t0`,
/// `seed`, `outcome` (str), `mode` (−1 unless collapsed), `diverged_step` (−1 unless
/// diverged), `steps`, `light_mode_mass` (NaN if diverged), `m_k`, `sigma_k`, `q_kl`, `w_k`
/// (mixture runs), the flow's and benchmark targets' metrics where any run has them
/// (`mode_weight_error`, `ess_fraction`, `kl`, `log_z_error`, `modes_covered`, `emc`; NaN or
/// −1 where a run has none), `wall_seconds`.
pub(crate) fn runs_dict<'py>(py: Python<'py>, runs: &[RunLine]) -> PyResult<Bound<'py, PyDict>> {
    let mut seen = std::collections::HashSet::new();
    let mut sorted: Vec<&RunLine> = runs
        .iter()
        .filter(|r| seen.insert((r.beta_i.to_bits(), r.t0.to_bits(), r.seed)))
        .collect();
    sorted.sort_by(|a, b| {
        (a.beta_i, a.t0, a.seed)
            .partial_cmp(&(b.beta_i, b.t0, b.seed))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let dict = PyDict::new(py);
    let f = |g: &dyn Fn(&RunLine) -> f64| -> Vec<f64> { sorted.iter().map(|r| g(r)).collect() };
    let i = |g: &dyn Fn(&RunLine) -> i64| -> Vec<i64> { sorted.iter().map(|r| g(r)).collect() };
    dict.set_item("beta_i", PyArray1::from_vec(py, f(&|r| r.beta_i)))?;
    dict.set_item("t0", PyArray1::from_vec(py, f(&|r| r.t0)))?;
    dict.set_item("seed", PyArray1::from_vec(py, i(&|r| r.seed as i64)))?;
    let outcomes: Vec<&str> = sorted.iter().map(|r| r.outcome.label()).collect();
    dict.set_item("outcome", outcomes)?;
    dict.set_item(
        "mode",
        PyArray1::from_vec(py, i(&|r| r.mode.map_or(-1, |m| m as i64))),
    )?;
    dict.set_item(
        "diverged_step",
        PyArray1::from_vec(py, i(&|r| r.diverged_step.map_or(-1, |s| s as i64))),
    )?;
    dict.set_item("steps", PyArray1::from_vec(py, i(&|r| r.steps as i64)))?;
    dict.set_item(
        "light_mode_mass",
        PyArray1::from_vec(py, f(&|r| r.light_mode_mass.unwrap_or(f64::NAN))),
    )?;
    type Vector = fn(&RunLine) -> &Vec<f64>;
    let vectors: [(&str, Vector); 4] = [
        ("m", |r| &r.m),
        ("sigma", |r| &r.sigma),
        ("q", |r| &r.q),
        ("w", |r| &r.w),
    ];
    for (name, get) in vectors {
        let len = sorted.iter().map(|r| get(r).len()).max().unwrap_or(0);
        for (j, col) in vector_names(name, len).into_iter().enumerate() {
            let v = f(&|r| get(r).get(j).copied().unwrap_or(f64::NAN));
            dict.set_item(col, PyArray1::from_vec(py, v))?;
        }
    }
    type Metric = fn(&RunLine) -> Option<f64>;
    let metrics: [(&str, Metric); 5] = [
        ("mode_weight_error", |r| r.mode_weight_error),
        ("ess_fraction", |r| r.ess_fraction),
        ("kl", |r| r.kl),
        ("log_z_error", |r| r.log_z_error),
        ("emc", |r| r.emc),
    ];
    for (name, get) in metrics {
        if sorted.iter().any(|r| get(r).is_some()) {
            let v = f(&|r| get(r).unwrap_or(f64::NAN));
            dict.set_item(name, PyArray1::from_vec(py, v))?;
        }
    }
    if sorted.iter().any(|r| r.modes_covered.is_some()) {
        let v = i(&|r| r.modes_covered.map_or(-1, |m| m as i64));
        dict.set_item("modes_covered", PyArray1::from_vec(py, v))?;
    }
    dict.set_item(
        "wall_seconds",
        PyArray1::from_vec(py, f(&|r| r.wall_seconds)),
    )?;
    Ok(dict)
}
