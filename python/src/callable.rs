//! User-defined targets: a Python callable `fn(x) -> (log_prob, grad)` on an (n, d) float64
//! batch, trained against with the Gaussian-mixture student or the RealNVP flow.
//!
//! This file is the numpy/GIL glue: [`PyTarget`] is the library's
//! [`ExternalTarget`](annealvi::train::ExternalTarget) (one call of the callable per batch),
//! and the runs are the library's driver against it ([`annealvi::run::Trainer::run_on`], the
//! one place that dispatches on the family) with the streams of the built-in runs, so that
//! against the built-in bimodal target written in Python they reproduce the built-in runs. The Python wrapper (`annealvi/_target.py`) checks shapes
//! and finiteness and raises a `ValueError` naming the problem; any exception ends the run and
//! is re-raised to the caller.

use crate::{flow_columns, gmm_columns, gmm_summary, interruptible, outcome_items, to_py};
use annealvi::family::VariationalFamily;
use annealvi::objective::{BatchWorkspace, Estimator, mc_gradient_batched};
use annealvi::prelude::*;
use annealvi::seed::{Purpose, stream};
use annealvi::sweep::{noise_index, run_line};
use annealvi::train::{External, ExternalTarget};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// The Python side of a user-defined target: `evaluate(x_flat, n) -> (log_prob, grad_flat)`
/// (validated by the wrapper), the dimension and the optional mode centres.
pub struct PyTarget {
    evaluate: Py<PyAny>,
    dim: usize,
    modes: Option<Vec<Vec<f64>>>,
}

impl PyTarget {
    /// Reads `target` (an `annealvi.Target`): its `_evaluate`, `dim` and `modes` attributes.
    pub fn from_py(py: Python<'_>, target: &Py<PyAny>) -> PyResult<Self> {
        let t = target.bind(py);
        let evaluate = t.getattr("_evaluate")?.unbind();
        let dim: usize = t.getattr("dim")?.extract()?;
        let modes: Option<Vec<Vec<f64>>> = t.getattr("_modes_list")?.extract()?;
        Ok(Self {
            evaluate,
            dim,
            modes,
        })
    }
}

impl ExternalTarget for PyTarget {
    type Error = PyErr;

    fn dim(&self) -> usize {
        self.dim
    }

    /// Acquires the GIL, calls the wrapper on the n = `lp.len()` points of `x`, copies the
    /// results.
    fn evaluate(&self, x: &[f64], lp: &mut [f64], grad: &mut [f64]) -> PyResult<()> {
        let n = lp.len();
        Python::attach(|py| {
            let arr = PyArray1::from_slice(py, x);
            let res = self.evaluate.bind(py).call1((arr, n))?;
            let (l, g): (Bound<'_, PyAny>, Bound<'_, PyAny>) = res.extract()?;
            let l = l.cast_into::<PyArray1<f64>>()?;
            let g = g.cast_into::<PyArray1<f64>>()?;
            let (l, g) = (l.readonly(), g.readonly());
            let (ls, gs) = (l.as_slice()?, g.as_slice()?);
            if ls.len() != n || gs.len() != n * self.dim {
                return Err(PyValueError::new_err(format!(
                    "the target returned {} log-densities and {} gradient entries (expected {n} \
                     and {})",
                    ls.len(),
                    gs.len(),
                    n * self.dim
                )));
            }
            lp.copy_from_slice(ls);
            grad.copy_from_slice(gs);
            Ok(())
        })
    }

    fn modes(&self) -> Option<&[Vec<f64>]> {
        self.modes.as_deref()
    }
}

/// A finished run against a user target: the library's result (the Gaussian-mixture
/// student's result statistics are the masses of q on the modes), the records of each family
/// and the axis of the recorded statistics.
struct Finished {
    run: AnyRun<Vec<f64>>,
    rec: Recorder,
    flow_rec: FlowRecorder,
    /// The step at which an adaptive schedule reached β = 1.
    annealed: Option<usize>,
    axis: Vec<f64>,
}

/// One run of `cfg` against `target` by the library's driver ([`Trainer::run_on`]), with the
/// streams of the built-in runs: the student from (seed, init_run, Init), the noise from
/// (seed, noise_run, Sgd), the records' estimates from the record stream and the outcome from
/// (seed, noise_run, Eval). With `report`, the steps count into the call's progress (a single
/// run; a sweep's progress counts runs).
fn run(
    cfg: &Config,
    target: &PyTarget,
    (init_run, noise_run): (u64, u64),
    cancel: &AtomicBool,
    report: bool,
) -> PyResult<Finished> {
    refuse_exact(cfg)?;
    let exp = cfg.compile().map_err(to_py)?;
    let mut obs = crate::runs::StepProgress::new(cfg, report);
    let r = Trainer::new(&exp)
        .streams(init_run, noise_run)
        .observer(&mut obs)
        .cancel(cancel)
        .run_on(target);
    let rec = obs.into_recorders();
    let run = match r {
        Ok(run) => run,
        Err(RunError::Target(e)) => return Err(e),
        Err(RunError::Run(Error::Interrupted)) => return Err(crate::interrupted()),
        Err(RunError::Run(e)) => return Err(to_py(e)),
    };
    Ok(Finished {
        run,
        rec: rec.0,
        flow_rec: rec.1,
        annealed: rec.2,
        axis: External::new(target).axis().to_vec(),
    })
}

/// The outcome to report: none ("unknown") for a target without modes, unless the run
/// diverged.
fn reported(target: &PyTarget, outcome: &Outcome) -> Option<Outcome> {
    let known = target.modes.as_ref().is_some_and(|m| !m.is_empty());
    (known || matches!(outcome, Outcome::Diverged { .. })).then(|| outcome.clone())
}

/// A sweep line's result: the reported outcome (see [`reported`]), without statistics.
fn result<St>(t: &PyTarget, r: &RunResult<St>) -> RunResult<()> {
    RunResult {
        outcome: reported(t, &r.outcome).unwrap_or(Outcome::Partial { modes_covered: 0 }),
        final_step: r.final_step,
        light_mode_mass: r.light_mode_mass,
        stats: (),
    }
}

/// The summary's outcome items (see [`reported`]).
fn outcome_summary(summary: &Bound<'_, PyDict>, t: &PyTarget, o: &Outcome) -> PyResult<()> {
    match reported(t, o) {
        Some(o) => outcome_items(summary, &o),
        None => summary.set_item("outcome", "unknown"),
    }
}

fn refuse_exact(cfg: &Config) -> PyResult<()> {
    if cfg.objective.estimator == Estimator::Exact {
        return Err(PyValueError::new_err(
            "invalid value for `objective.estimator`: \"exact\" (expected \"full\" or \"stl\" \
             with a user-defined target: exact gradients exist only for the built-in targets)",
        ));
    }
    Ok(())
}

fn check_dims(cfg: &Config, target: &PyTarget) -> PyResult<()> {
    if cfg.target.d != target.dim {
        return Err(PyValueError::new_err(format!(
            "invalid value for `target.d`: {} (expected the user target's dim = {})",
            cfg.target.d, target.dim
        )));
    }
    Ok(())
}

/// `annealvi.train` with a user target.
pub fn train<'py>(
    py: Python<'py>,
    cfg: &Config,
    run: u64,
    target: Py<PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let t = PyTarget::from_py(py, &target)?;
    check_dims(cfg, &t)?;
    let f = interruptible(py, |cancel| self::run(cfg, &t, (run, run), cancel, true))??;
    let (q, res) = match f.run {
        AnyRun::Flow(q, res) => {
            return train_flow(py, cfg, &t, *q, res, &f.flow_rec, f.annealed);
        }
        AnyRun::Mixture(q, res) => (q, res),
    };
    let (rec, axis) = (f.rec, f.axis);
    let summary = PyDict::new(py);
    summary.set_item("seed", cfg.seed)?;
    if let Some(step) = f.annealed {
        summary.set_item("anneal_steps", step)?;
    }
    outcome_summary(&summary, &t, &res.outcome)?;
    summary.set_item("final_step", res.final_step)?;
    summary.set_item("light_mode_mass", res.light_mode_mass)?;
    summary.set_item("mode_masses", PyArray1::from_vec(py, res.stats))?;
    gmm_summary(py, &summary, &q.stats(&axis))?;
    let traj = PyDict::new(py);
    gmm_columns(py, &traj, &rec.records)?;
    let out = PyDict::new(py);
    out.set_item("summary", summary)?;
    out.set_item("trajectory", traj)?;
    // the callable path trains the d-dimensional student (vector engine)
    out.set_item("student", crate::student::GmmModel::new(q))?;
    Ok(out)
}

/// `annealvi.train` with a user target and the flow student: the summary and trajectory of the
/// built-in flow runs (`kl` and `mode_weight_error` NaN: the target's normaliser and mode
/// weights are unknown).
fn train_flow<'py>(
    py: Python<'py>,
    cfg: &Config,
    t: &PyTarget,
    q: annealvi::family::RealNvp,
    res: RunResult<annealvi::family::realnvp::FlowStats>,
    rec: &FlowRecorder,
    annealed: Option<usize>,
) -> PyResult<Bound<'py, PyDict>> {
    let summary = PyDict::new(py);
    summary.set_item("seed", cfg.seed)?;
    if let Some(step) = annealed {
        summary.set_item("anneal_steps", step)?;
    }
    outcome_summary(&summary, t, &res.outcome)?;
    let st = &res.stats;
    summary.set_item("final_step", res.final_step)?;
    summary.set_item("light_mode_mass", st.light_mode_mass)?;
    summary.set_item("mode_weight_error", st.mode_weight_error)?;
    summary.set_item("ess_fraction", st.ess_fraction)?;
    summary.set_item("kl", st.kl)?;
    summary.set_item(
        "mode_masses",
        PyArray1::from_vec(py, st.mode_masses.clone()),
    )?;
    let traj = PyDict::new(py);
    flow_columns(py, &traj, &rec.records)?;
    let out = PyDict::new(py);
    out.set_item("summary", summary)?;
    out.set_item("trajectory", traj)?;
    out.set_item("student", crate::student::FlowModel::new(q))?;
    Ok(out)
}

/// `annealvi.sweep` with a user target: the library's sweep with each run trained by
/// [`run`] (same streams as the built-in runs). The first error of any run stops the sweep
/// (finished runs stay on disk) and is raised.
pub fn sweep(
    py: Python<'_>,
    cfg: &SweepConfig,
    opts: &SweepOptions,
    target: Py<PyAny>,
) -> PyResult<SweepReport> {
    let t = PyTarget::from_py(py, &target)?;
    if t.modes.is_none() {
        return Err(PyValueError::new_err(
            "a sweep needs the target's `modes` (centres) to classify the outcomes: \
             Target.from_callable(fn, dim, modes=...)",
        ));
    }
    check_dims(&cfg.run, &t)?;
    let failure: Mutex<Option<PyErr>> = Mutex::new(None);
    let report = interruptible(py, |cancel| {
        let runner = |spec: RunSpec, cells: &[Cell]| -> Option<RunLine> {
            let cell = cells[spec.cell];
            let c = cfg.cell_config(&cell);
            let start = std::time::Instant::now();
            let streams = (spec.seed as u64, noise_index(&cell, spec.seed));
            let line = run(&c, &t, streams, cancel, false).map(|f| {
                let wall = start.elapsed().as_secs_f64();
                match f.run {
                    AnyRun::Flow(_, r) => {
                        run_line(cell, spec.seed, result(&t, &r), None, Some(r.stats), wall)
                    }
                    AnyRun::Mixture(q, r) => {
                        let st = Some(q.stats(&f.axis));
                        run_line(cell, spec.seed, result(&t, &r), st, None, wall)
                    }
                }
            });
            match line {
                Ok(line) => Some(line),
                Err(e) => {
                    cancel.store(true, Ordering::Relaxed);
                    let mut f = failure.lock().unwrap_or_else(|p| p.into_inner());
                    f.get_or_insert(e);
                    None
                }
            }
        };
        run_sweep_with(cfg, opts, cancel, Some(&runner))
    })?;
    if let Some(e) = failure.into_inner().unwrap_or(None) {
        return Err(e);
    }
    report.map_err(to_py)
}

/// (loss, gradient) of the callable path, then of the built-in kernel.
type GradientPair<'py> = (
    f64,
    Bound<'py, PyArray1<f64>>,
    f64,
    Bound<'py, PyArray1<f64>>,
);

/// The batched gradient against `target` and the library's fast kernel against the built-in
/// bimodal target (d, R, w*) for the same student and noise: returns (loss_callable, grad_callable,
/// loss_builtin, grad_builtin), for the test that a callable reproduces the built-in target.
#[pyfunction]
pub fn gmm_gradient_check<'py>(
    py: Python<'py>,
    target: Py<PyAny>,
    r: f64,
    w_star: f64,
    beta: f64,
    estimator: &str,
    samples: usize,
    seed: u64,
) -> PyResult<GradientPair<'py>> {
    crate::check_int("samples", samples, crate::SAMPLES)?;
    let t = PyTarget::from_py(py, &target)?;
    let mut cfg = Config::default();
    cfg.target.d = t.dim;
    cfg.target.r = r;
    cfg.target.w_star = w_star;
    cfg.student.trainable_weights = true;
    cfg.student.sigma0 = annealvi::config::NumberOr::Number(1.3);
    let est = match estimator {
        "full" => Estimator::Full,
        "stl" => Estimator::Stl,
        o => {
            return Err(PyValueError::new_err(format!(
                "invalid value for `estimator`: {o:?} (expected \"full\" or \"stl\")"
            )));
        }
    };
    let exp = cfg.compile().map_err(to_py)?; // validates
    let mut init = stream(seed, 0, Purpose::Init);
    let q = exp.init_student(&mut init);
    let n = q.params().len();
    let (mut g1, mut g2) = (vec![0.0; n], vec![0.0; n]);
    let mut r1 = stream(seed, 0, Purpose::Sgd);
    let mut r2 = stream(seed, 0, Purpose::Sgd);
    let l1 = mc_gradient_batched(
        &q,
        |x: &[f64], lp: &mut [f64], g: &mut [f64]| t.evaluate(x, lp, g),
        beta,
        est,
        samples,
        &mut r1,
        &mut BatchWorkspace::default(),
        &mut g1,
    )?;
    let target = exp
        .target()
        .ok_or_else(|| PyValueError::new_err("the built-in bimodal target"))?;
    let mut ws = annealvi::objective::McWorkspace::default();
    let l2 =
        annealvi::objective::mc_gradient(&q, target, beta, est, samples, &mut r2, &mut ws, &mut g2);
    Ok((
        l1,
        PyArray1::from_vec(py, g1),
        l2,
        PyArray1::from_vec(py, g2),
    ))
}
