//! Training runs and sweeps from Python (built-in targets; user targets are in `callable`):
//! results as dicts of numpy arrays.

use crate::config::{Table, finish, load_table, set_user_dim};
use crate::{callable, interrupted, interruptible, to_py};
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

/// The validated run configuration of `kind`/`source` with `overrides` (and with a user
/// `target`, its dimension; see [`table_for`]): (resolved TOML text, the same as a dict).
/// `annealvi.Experiment` holds both and trains from the text.
#[pyfunction]
#[pyo3(signature = (kind, source, overrides, target=None))]
pub(crate) fn experiment_config<'py>(
    py: Python<'py>,
    kind: &str,
    source: &Bound<'py, PyAny>,
    overrides: &Bound<'py, PyDict>,
    target: Option<Py<PyAny>>,
) -> PyResult<(String, Bound<'py, PyAny>)> {
    let t = table_for(py, kind, source, overrides, target.as_ref(), "target.d")?;
    let cfg: Config = finish(t, "configuration", Config::validate)?;
    let table = toml::Table::try_from(&cfg)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(e.to_string()))?;
    Ok((cfg.to_toml(), toml_to_py(py, &toml::Value::Table(table))?))
}

/// A TOML value as the Python value (tables as dicts, arrays as lists, datetimes as strings).
fn toml_to_py<'py>(py: Python<'py>, v: &toml::Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match v {
        toml::Value::String(s) => s.into_pyobject(py)?.into_any(),
        toml::Value::Integer(i) => i.into_pyobject(py)?.into_any(),
        toml::Value::Float(f) => f.into_pyobject(py)?.into_any(),
        toml::Value::Boolean(b) => b.into_pyobject(py)?.to_owned().into_any(),
        toml::Value::Datetime(d) => d.to_string().into_pyobject(py)?.into_any(),
        toml::Value::Array(a) => {
            let items = a
                .iter()
                .map(|x| toml_to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            pyo3::types::PyList::new(py, items)?.into_any()
        }
        toml::Value::Table(t) => {
            let d = PyDict::new(py);
            for (k, x) in t {
                d.set_item(k, toml_to_py(py, x)?)?;
            }
            d.into_any()
        }
    })
}

/// An observer that keeps the records (a [`Recorder`]) and counts the steps they reach into a
/// progress bar of `optim.steps` units (made on the run's worker thread, so that it counts
/// into the call's progress; see `with_progress`).
pub(crate) struct StepProgress {
    pub(crate) rec: (Recorder, FlowRecorder),
    /// The step at which an adaptive schedule reached β = 1.
    annealed: Option<usize>,
    bar: Option<annealvi::progress::Bar>,
    last: u64,
}

impl StepProgress {
    /// With `report`, a bar of `optim.steps` units (call on the worker thread of the run);
    /// without, records only (the runs of a sweep, whose progress counts runs).
    pub(crate) fn new(cfg: &Config, report: bool) -> Self {
        Self {
            rec: Default::default(),
            annealed: None,
            bar: report.then(|| annealvi::progress::bar(cfg.optim.steps as u64, "train")),
            last: 0,
        }
    }

    fn reached(&mut self, step: usize) {
        let step = step as u64;
        if let Some(bar) = &self.bar
            && step > self.last
        {
            bar.inc(step - self.last);
            self.last = step;
        }
    }

    /// The records of each family and the step at which an adaptive schedule reached β = 1
    /// (`anneal_steps`), once the run is over.
    pub(crate) fn into_recorders(self) -> (Recorder, FlowRecorder, Option<usize>) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        (self.rec.0, self.rec.1, self.annealed)
    }
}

impl Observer for StepProgress {
    fn on_annealed(&mut self, step: usize) {
        self.annealed = Some(step);
    }
    fn on_record(&mut self, r: &annealvi::train::Record<dyn annealvi::train::RecordStats>) {
        self.reached(r.step);
        self.rec.on_record(r);
    }
    fn on_marginal(&mut self, s: &annealvi::train::MarginalSnapshot) {
        self.rec.on_marginal(s);
    }
}

/// One training run of `config` (run index `run`: streams (seed, run, Init/Sgd/Eval), as the
/// CLI's `train` with run 0). Returns {"summary": {...}, "trajectory": {...}, "student": the
/// fitted model}. `progress`: a callable (done, total) in steps, or None.
#[pyfunction]
#[pyo3(signature = (kind, source, overrides, run, target, progress=None))]
pub(crate) fn train<'py>(
    py: Python<'py>,
    kind: &str,
    source: &Bound<'py, PyAny>,
    overrides: &Bound<'py, PyDict>,
    run: u64,
    target: Option<Py<PyAny>>,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let t = table_for(py, kind, source, overrides, target.as_ref(), "target.d")?;
    let cfg: Config = finish(t, "configuration", Config::validate)?;
    crate::with_progress(progress, || match target {
        Some(t) => callable::train(py, &cfg, run, t),
        None => train_builtin(py, &cfg, run),
    })
}

/// [`train`] against the configured (built-in) target.
fn train_builtin<'py>(py: Python<'py>, cfg: &Config, run: u64) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    let summary = PyDict::new(py);
    let traj = PyDict::new(py);
    summary.set_item("seed", cfg.seed)?;
    let exp = cfg.compile().map_err(to_py)?;
    // streams (run, run); a recorder of each family's records (the run keeps its family's)
    let (finished, (rec, flow_rec, annealed)) = interruptible(py, |cancel| {
        let mut obs = StepProgress::new(cfg, true);
        let r = Trainer::new(&exp)
            .index(run)
            .observer(&mut obs)
            .cancel(cancel)
            .run();
        match r {
            Ok(r) => Ok((r, obs.into_recorders())),
            Err(Error::Interrupted) => Err(interrupted()),
            Err(e) => Err(to_py(e)),
        }
    })??;
    if let Some(step) = annealed {
        summary.set_item("anneal_steps", step)?;
    }
    match finished {
        annealvi::run::AnyRun::Flow(q, res) => {
            out.set_item("student", crate::student::FlowModel::new(*q))?;
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
        annealvi::run::AnyRun::Mixture(q, res) => {
            out.set_item("student", crate::student::gmm_model(cfg, q))?;
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
