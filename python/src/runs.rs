//! Training runs and sweeps from Python (built-in targets; user targets are in `callable`):
//! results as dicts of numpy arrays.

use crate::config::{Table, finish, load_table, set_user_dim};
use crate::{THREADS, callable, check_int, interrupted, interruptible, to_py, with_threads};
use annealvi::prelude::*;
use annealvi::train::ExternalTarget;
use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The table of `kind`/`source` with `overrides`; with a user target, its `key` (the
/// dimension, "target.d" or "run.target.d") set to the target's dim (a configuration that sets
/// another value is refused, naming both).
fn table_for(
    py: Python<'_>,
    kind: &str,
    source: &Bound<'_, PyAny>,
    overrides: &Bound<'_, PyDict>,
    target: Option<&Py<PyAny>>,
    key: &str,
) -> PyResult<Table> {
    let mut t = load_table(kind, source, overrides)?;
    if let Some(target) = target {
        let dim = callable::PyTarget::from_py(py, target)?.dim();
        set_user_dim(&mut t, key, dim)?;
    }
    Ok(t)
}

pub(crate) fn outcome_items(dict: &Bound<'_, PyDict>, o: &Outcome) -> PyResult<()> {
    dict.set_item("outcome", o.label())?;
    match o {
        Outcome::Collapsed { mode, mode_name } => {
            dict.set_item("mode", *mode)?;
            dict.set_item("mode_name", mode_name)?;
        }
        Outcome::Diverged { step } => dict.set_item("diverged_step", *step)?,
        _ => {}
    }
    Ok(())
}

pub(crate) fn matrix<'py>(
    py: Python<'py>,
    rows: usize,
    flat: Vec<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let cols = flat.len().checked_div(rows).unwrap_or(0);
    Ok(PyArray1::from_vec(py, flat)
        .reshape([rows, cols])?
        .into_any())
}

/// One training run of `config` (run index `run`: streams (seed, run, Init/Sgd/Eval), as the
/// CLI's `train` with run 0). Returns {"summary": {...}, "trajectory": {...}}.
#[pyfunction]
pub(crate) fn train<'py>(
    py: Python<'py>,
    kind: &str,
    source: &Bound<'py, PyAny>,
    overrides: &Bound<'py, PyDict>,
    run: u64,
    target: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let t = table_for(py, kind, source, overrides, target.as_ref(), "target.d")?;
    let cfg: Config = finish(t, "configuration", Config::validate)?;
    if let Some(t) = target {
        return callable::train(py, &cfg, run, t);
    }
    let out = PyDict::new(py);
    let summary = PyDict::new(py);
    let traj = PyDict::new(py);
    summary.set_item("seed", cfg.seed)?;
    let exp = cfg.compile().map_err(to_py)?;
    // streams (run, run); a recorder of each family's records (the run keeps its family's)
    let (finished, (rec, flow_rec)) = interruptible(py, |cancel| {
        let mut rec = (Recorder::default(), FlowRecorder::default());
        let r = Trainer::new(&exp)
            .index(run)
            .observer(&mut rec)
            .cancel(cancel)
            .run();
        match r {
            Ok(r) => Ok((r, rec)),
            Err(Error::Interrupted) => Err(interrupted()),
            Err(e) => Err(to_py(e)),
        }
    })??;
    match finished {
        annealvi::run::AnyRun::Flow(_, res) => {
            outcome_items(&summary, &res.outcome)?;
            summary.set_item("final_step", res.final_step)?;
            summary.set_item("light_mode_mass", res.light_mode_mass)?;
            summary.set_item("mode_weight_error", res.stats.mode_weight_error)?;
            summary.set_item("ess_fraction", res.stats.ess_fraction)?;
            summary.set_item("kl", res.stats.kl)?;
            summary.set_item(
                "mode_masses",
                PyArray1::from_vec(py, res.stats.mode_masses.clone()),
            )?;
            flow_columns(py, &traj, &flow_rec.records)?;
        }
        annealvi::run::AnyRun::Mixture(_, res) => {
            outcome_items(&summary, &res.outcome)?;
            summary.set_item("final_step", res.final_step)?;
            summary.set_item("light_mode_mass", res.light_mode_mass)?;
            gmm_summary(py, &summary, &res.stats)?;
            gmm_columns(py, &traj, &rec.records)?;
        }
    }
    out.set_item("summary", summary)?;
    out.set_item("trajectory", traj)?;
    Ok(out)
}

pub(crate) fn gmm_summary(
    py: Python<'_>,
    summary: &Bound<'_, PyDict>,
    st: &annealvi::family::gmm::Stats,
) -> PyResult<()> {
    summary.set_item("m", PyArray1::from_vec(py, st.m.clone()))?;
    summary.set_item("q", PyArray1::from_vec(py, st.q.clone()))?;
    summary.set_item("sigma", PyArray1::from_vec(py, st.sigma.clone()))?;
    summary.set_item("w", PyArray1::from_vec(py, st.w.clone()))?;
    Ok(())
}

pub(crate) fn gmm_columns(
    py: Python<'_>,
    traj: &Bound<'_, PyDict>,
    r: &[annealvi::train::Record],
) -> PyResult<()> {
    let n = r.len();
    traj.set_item(
        "step",
        PyArray1::from_vec(py, r.iter().map(|x| x.step as i64).collect::<Vec<_>>()),
    )?;
    let scal =
        |f: &dyn Fn(&annealvi::train::Record) -> f64| -> Vec<f64> { r.iter().map(f).collect() };
    traj.set_item("beta", PyArray1::from_vec(py, scal(&|x| x.beta)))?;
    traj.set_item("loss", PyArray1::from_vec(py, scal(&|x| x.loss)))?;
    traj.set_item("kl", PyArray1::from_vec(py, scal(&|x| x.kl)))?;
    traj.set_item("neg_elbo", PyArray1::from_vec(py, scal(&|x| x.neg_elbo)))?;
    let flat = |f: &dyn Fn(&annealvi::train::Record) -> &Vec<f64>| -> Vec<f64> {
        r.iter().flat_map(|x| f(x).iter().copied()).collect()
    };
    traj.set_item("m", matrix(py, n, flat(&|x| &x.stats.m))?)?;
    traj.set_item("q", matrix(py, n, flat(&|x| &x.stats.q))?)?;
    traj.set_item("sigma", matrix(py, n, flat(&|x| &x.stats.sigma))?)?;
    traj.set_item("w", matrix(py, n, flat(&|x| &x.stats.w))?)?;
    Ok(())
}

pub(crate) fn flow_columns(
    py: Python<'_>,
    traj: &Bound<'_, PyDict>,
    r: &[annealvi::train::Record<annealvi::family::realnvp::FlowStats>],
) -> PyResult<()> {
    type R = annealvi::train::Record<annealvi::family::realnvp::FlowStats>;
    let n = r.len();
    traj.set_item(
        "step",
        PyArray1::from_vec(py, r.iter().map(|x| x.step as i64).collect::<Vec<_>>()),
    )?;
    let scal = |f: &dyn Fn(&R) -> f64| -> Vec<f64> { r.iter().map(f).collect() };
    traj.set_item("beta", PyArray1::from_vec(py, scal(&|x| x.beta)))?;
    traj.set_item("loss", PyArray1::from_vec(py, scal(&|x| x.loss)))?;
    traj.set_item("kl", PyArray1::from_vec(py, scal(&|x| x.kl)))?;
    traj.set_item("neg_elbo", PyArray1::from_vec(py, scal(&|x| x.neg_elbo)))?;
    traj.set_item(
        "light_mode_mass",
        PyArray1::from_vec(py, scal(&|x| x.stats.light_mode_mass)),
    )?;
    traj.set_item(
        "ess_fraction",
        PyArray1::from_vec(py, scal(&|x| x.stats.ess_fraction)),
    )?;
    traj.set_item(
        "mode_masses",
        matrix(
            py,
            n,
            r.iter()
                .flat_map(|x| x.stats.mode_masses.iter().copied())
                .collect(),
        )?,
    )?;
    Ok(())
}

/// Runs (or resumes) the sweep of `config` into `out` (runs.jsonl, cells.csv, sweep.toml, as
/// the CLI), then returns its cells as columns.
#[pyfunction]
pub(crate) fn sweep<'py>(
    py: Python<'py>,
    kind: &str,
    source: &Bound<'py, PyAny>,
    overrides: &Bound<'py, PyDict>,
    out: &str,
    resume: bool,
    shard: Option<&str>,
    threads: usize,
    target: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    check_int("threads", threads, THREADS)?;
    let t = table_for(py, kind, source, overrides, target.as_ref(), "run.target.d")?;
    let cfg: SweepConfig = finish(t, "sweep configuration", SweepConfig::validate)?;
    let shard = shard.map(Shard::parse).transpose().map_err(to_py)?;
    let opts = SweepOptions {
        resume,
        shard,
        ..SweepOptions::new(out)
    };
    let report = with_threads(threads, || match target {
        Some(t) => callable::sweep(py, &cfg, &opts, t),
        None => {
            interruptible(py, |cancel| run_sweep_cancellable(&cfg, &opts, cancel))?.map_err(to_py)
        }
    })?;
    let runs = read_runs(&opts.out.join("runs.jsonl"), false).map_err(to_py)?;
    let cells = aggregate(&runs);
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
    dict.set_item(
        "mean_mode_weight_error",
        PyArray1::from_vec(py, col(&|c| c.mean_mode_weight_error)),
    )?;
    dict.set_item(
        "mean_ess_fraction",
        PyArray1::from_vec(py, col(&|c| c.mean_ess_fraction)),
    )?;
    dict.set_item("mean_kl", PyArray1::from_vec(py, col(&|c| c.mean_kl)))?;
    let rep = PyDict::new(py);
    rep.set_item("planned", report.planned)?;
    rep.set_item("skipped", report.skipped)?;
    rep.set_item("ran", report.ran)?;
    rep.set_item("seconds", report.seconds)?;
    let outd = PyDict::new(py);
    outd.set_item("cells", dict)?;
    outd.set_item("report", rep)?;
    Ok(outd)
}
