//! The theory from Python: the collapse probability (formula, ODE or SGD), the schedule
//! designer and ODE trajectories.

use crate::config::{model_config, rename_model_field};
use crate::{
    CHECK_SEEDS, DIM, EXTRA_STEPS, ICS, SAMPLES, check_int, interrupted, interruptible, to_py,
};
use annealvi::config::{NumberOr, ScheduleKind};
use annealvi::prelude::*;
use annealvi::seed::{Purpose, stream};
use annealvi::sweep::{Axis, GridConfig};
use annealvi::theory::{IntegrateError, MAX_STEPS, OdeSystem, Tolerance, integrate};
use numpy::PyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::atomic::{AtomicBool, Ordering};

/// P(collapse) of the exponential schedules (β_i[j], t0[j]) followed by `extra_steps` steps at
/// β = 1. Returns (p, ci_low, ci_high, collapsed) arrays; the formula has no sampling interval
/// (NaN) and no count (−1). A cell whose ODE cannot be integrated (the integrator's step budget
/// spent, a non-finite state) is a `ValueError` naming the cell and the reason, as `annealvi
/// theory` refuses such a grid, rather than a NaN.
#[pyfunction]
pub(crate) fn collapse_probability<'py>(
    py: Python<'py>,
    beta_i: Vec<f64>,
    t0: Vec<f64>,
    d: usize,
    r: f64,
    w_star: f64,
    lr: f64,
    init_scale: f64,
    extra_steps: usize,
    method: &str,
    ics: usize,
    seed: u64,
) -> PyResult<Bound<'py, PyDict>> {
    check_int("d", d, DIM)?;
    check_int("extra_steps", extra_steps, EXTRA_STEPS)?;
    let cfg = model_config(d, r, w_star, lr, init_scale)?;
    if beta_i.len() != t0.len() {
        return Err(PyValueError::new_err(format!(
            "beta_i and t0: {} and {} values (expected equal shapes after broadcasting)",
            beta_i.len(),
            t0.len()
        )));
    }
    for (&b, &t) in beta_i.iter().zip(&t0) {
        let mut c = cfg.clone();
        c.schedule.kind = ScheduleKind::Exponential;
        c.schedule.beta_i = b;
        c.schedule.t0 = t;
        c.validate().map_err(|e| to_py(rename_model_field(e)))?;
    }
    if method != "ode" && method != "formula" {
        return Err(PyValueError::new_err(format!(
            "invalid value for `method`: {method:?} (expected \"ode\" or \"formula\")"
        )));
    }
    if method == "ode" {
        check_int("ics", ics, ICS)?;
    }
    let target = *cfg
        .build_target()
        .as_bimodal()
        .expect("bimodal by construction");
    let n = beta_i.len();
    // each cell's (p, ci_low, ci_high, collapsed), or why it has none
    type Row = std::result::Result<(f64, f64, f64, i64), String>;
    let res = interruptible(py, |cancel| -> Result<Vec<Row>> {
        use rayon::prelude::*;
        if method == "formula" {
            let model = FormulaModel::new(target, d, lr, init_scale, extra_steps as f64);
            return (0..n)
                .into_par_iter()
                .map(|j| {
                    if cancel.load(Ordering::Relaxed) {
                        return Err(Error::Interrupted);
                    }
                    let p = model.cell(beta_i[j], t0[j]).p;
                    let tau = lr * (t0[j] + extra_steps as f64);
                    Ok(if p.is_nan() {
                        Err(if tau > 0.0 {
                            format!(
                                "the formula has no value: its ODEs (symmetric branch, \
                                 separatrix) cannot be integrated to τ = lr × (t0 + \
                                 extra_steps) = {tau:.4e}"
                            )
                        } else {
                            "the formula needs t0 + extra_steps > 0".to_string()
                        })
                    } else {
                        Ok((p, f64::NAN, f64::NAN, -1))
                    })
                })
                .collect();
        }
        let pred = Predictor::new(target, d, lr, init_scale, extra_steps as f64, ics, seed);
        (0..n)
            .into_par_iter()
            .map(|j| {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted);
                }
                let s = Exponential {
                    beta_i: beta_i[j],
                    t0: t0[j],
                };
                Ok(match pred.collapsed(&s, t0[j]) {
                    Ok(c) => {
                        let (lo, hi) = wilson_interval(c, ics);
                        Ok((c as f64 / ics as f64, lo, hi, c as i64))
                    }
                    Err(Error::Integrate(IntegrateError::StepBudget { tau, target, steps })) => {
                        Err(format!(
                            "the ODE integrator took its budget of {steps} steps and reached \
                             only τ = {tau:.4e} of τ = lr × (t0 + extra_steps) = {target:.4e}"
                        ))
                    }
                    Err(e) => Err(format!("its ODE cannot be integrated: {e}")),
                })
            })
            .collect()
    })?
    .map_err(|e| match e {
        Error::Interrupted => interrupted(),
        e => to_py(e),
    })?;
    let failed: Vec<usize> = (0..n).filter(|&j| res[j].is_err()).collect();
    if let Some(&j) = failed.first() {
        let why = res[j].as_ref().err().map_or("", |s| s.as_str());
        return Err(PyValueError::new_err(format!(
            "P(collapse) cannot be computed at (beta_i = {}, t0 = {}) ({} of {n} cells): {why} \
             (check lr = {lr}, r, t0 and extra_steps)",
            beta_i[j],
            t0[j],
            failed.len()
        )));
    }
    let res: Vec<(f64, f64, f64, i64)> = res.into_iter().flatten().collect();
    let dict = PyDict::new(py);
    let p: Vec<f64> = res.iter().map(|x| x.0).collect();
    let lo: Vec<f64> = res.iter().map(|x| x.1).collect();
    let hi: Vec<f64> = res.iter().map(|x| x.2).collect();
    dict.set_item("p", PyArray1::from_vec(py, p))?;
    dict.set_item("ci_low", PyArray1::from_vec(py, lo))?;
    dict.set_item("ci_high", PyArray1::from_vec(py, hi))?;
    dict.set_item(
        "collapsed",
        PyArray1::from_vec(py, res.iter().map(|x| x.3).collect::<Vec<i64>>()),
    )?;
    Ok(dict)
}

/// The sweep configuration of the theory model (for the SGD check of a design).
pub(crate) fn model_sweep(
    cfg: Config,
    extra_steps: usize,
    samples: usize,
) -> PyResult<SweepConfig> {
    let mut run = cfg;
    run.objective.samples = samples;
    run.student.sigma0 = NumberOr::Name("schedule".into());
    let sc = SweepConfig {
        grid: GridConfig {
            beta_i: Axis::List(vec![0.1]),
            t0: Axis::List(vec![1000.0]),
            no_annealing: false,
            seeds: 1,
            extra_steps,
            ..GridConfig::default()
        },
        run,
    };
    sc.validate().map_err(to_py)?;
    Ok(sc)
}

/// The fastest exponential schedule with predicted P(collapse) ≤ `max_collapse` (what
/// `annealvi design` does), with every candidate β_i and, when `check_seeds` > 0, the SGD check.
#[pyfunction]
pub(crate) fn design<'py>(
    py: Python<'py>,
    max_collapse: f64,
    d: usize,
    r: f64,
    w_star: f64,
    lr: f64,
    init_scale: f64,
    extra_steps: usize,
    ics: usize,
    seed: u64,
    check_seeds: usize,
    samples: usize,
    t_min: f64,
    t_max: f64,
) -> PyResult<Bound<'py, PyDict>> {
    if !(max_collapse > 0.0 && max_collapse < 1.0) {
        return Err(PyValueError::new_err(format!(
            "invalid value for `max_collapse`: {max_collapse} (expected a number in (0, 1))"
        )));
    }
    check_int("d", d, DIM)?;
    check_int("extra_steps", extra_steps, EXTRA_STEPS)?;
    check_int("ics", ics, ICS)?;
    check_int("check_seeds", check_seeds, CHECK_SEEDS)?;
    check_int("samples", samples, SAMPLES)?;
    // t0 is a run's step count (an SGD check runs t0 + extra_steps steps)
    if !(t_min >= 1.0 && t_max > t_min && t_max <= 1e8) {
        return Err(PyValueError::new_err(format!(
            "invalid value for `t_range`: ({t_min}, {t_max}) (expected 1 ≤ t_min < t_max ≤ 1e8)"
        )));
    }
    let mut cfg = model_config(d, r, w_star, lr, init_scale)?;
    cfg.seed = seed;
    let sweep = model_sweep(cfg, extra_steps, samples)?;
    let pred = Predictor::from_sweep(&sweep, ics).map_err(to_py)?;
    let betas: Vec<f64> = (0..16)
        .map(|i| 10f64.powf(-3.0 + 2.7 * i as f64 / 15.0))
        .collect();
    let (best, all, check) = interruptible(py, |cancel| {
        let range = (t_min, t_max);
        let (best, all) =
            fastest_exponential_cancellable(&pred, max_collapse, &betas, range, cancel).map_err(
                |e| match e {
                    Error::Interrupted => interrupted(),
                    e => to_py(e),
                },
            )?;
        let check = match best {
            Some(d) if check_seeds > 0 => Some(
                simulate_cancellable(&sweep, d.beta_i, d.t0, check_seeds, cancel)
                    .ok_or_else(interrupted)?,
            ),
            _ => None,
        };
        Ok::<_, PyErr>((best, all, check))
    })??;
    let dict = PyDict::new(py);
    match best {
        Some(b) => {
            let (lo, hi) = wilson_interval(b.collapsed, ics);
            dict.set_item("beta_i", b.beta_i)?;
            dict.set_item("t0", b.t0)?;
            dict.set_item(
                "rate",
                Exponential {
                    beta_i: b.beta_i,
                    t0: b.t0,
                }
                .rate(),
            )?;
            dict.set_item("p_predicted", b.p_predicted)?;
            dict.set_item("ci_low", lo)?;
            dict.set_item("ci_high", hi)?;
        }
        None => {
            for k in ["beta_i", "t0", "rate", "p_predicted", "ci_low", "ci_high"] {
                dict.set_item(k, f64::NAN)?;
            }
        }
    }
    dict.set_item("found", best.is_some())?;
    dict.set_item("ics", ics)?;
    let cand = PyDict::new(py);
    cand.set_item("beta_i", PyArray1::from_vec(py, betas.clone()))?;
    cand.set_item(
        "t0",
        PyArray1::from_vec(
            py,
            all.iter()
                .map(|(_, d)| d.map_or(f64::NAN, |d| d.t0))
                .collect(),
        ),
    )?;
    cand.set_item(
        "p_predicted",
        PyArray1::from_vec(
            py,
            all.iter()
                .map(|(_, d)| d.map_or(f64::NAN, |d| d.p_predicted))
                .collect(),
        ),
    )?;
    dict.set_item("candidates", cand)?;
    if let Some((c, n)) = check {
        let (lo, hi) = wilson_interval(c, n);
        let ch = PyDict::new(py);
        ch.set_item("n", n)?;
        ch.set_item("collapsed", c)?;
        ch.set_item("p_collapse", c as f64 / n as f64)?;
        ch.set_item("ci_low", lo)?;
        ch.set_item("ci_high", hi)?;
        dict.set_item("check", ch)?;
    } else {
        dict.set_item("check", py.None())?;
    }
    Ok(dict)
}

/// Refuses, before any work, a trajectory that the integrator cannot produce: it takes at most
/// `MAX_STEPS` steps of at most Δτ = `max_step` (default tolerance), and at least one per
/// report, so τ = lr × `steps` and the number of reports are bounded.
fn check_reports(steps: usize, every: usize, lr: f64) -> PyResult<()> {
    let max_tau = MAX_STEPS as f64 * Tolerance::default().max_step;
    let max_steps = (max_tau / lr).floor();
    if steps as f64 > max_steps {
        return Err(PyValueError::new_err(format!(
            "invalid value for `steps`: {steps} (expected an integer in [0, {max_steps}] at lr = \
             {lr}: the ODE integrator reaches at most τ = lr × steps = {max_tau}, in {MAX_STEPS} \
             steps of at most Δτ = {})",
            Tolerance::default().max_step
        )));
    }
    let min_every = steps.div_ceil(MAX_STEPS).max(1);
    if every < min_every {
        return Err(PyValueError::new_err(format!(
            "invalid value for `every`: {every} (expected an integer ≥ {min_every} for steps = \
             {steps}: each report costs at least one of the ODE integrator's {MAX_STEPS} steps)"
        )));
    }
    Ok(())
}

/// An ODE system whose derivative is NaN once `cancel` is set, so that an integration stops
/// within a few steps (with an error the caller replaces by `KeyboardInterrupt`).
struct Cancellable<'a, S> {
    inner: &'a S,
    cancel: &'a AtomicBool,
}

impl<S: OdeSystem<N>, const N: usize> OdeSystem<N> for Cancellable<'_, S> {
    fn rhs(&self, tau: f64, x: &[f64; N]) -> [f64; N] {
        if self.cancel.load(Ordering::Relaxed) {
            [f64::NAN; N]
        } else {
            self.inner.rhs(tau, x)
        }
    }

    fn project(&self, tau: f64, x: &mut [f64; N]) {
        self.inner.project(tau, x);
    }
}

/// The summary statistics' ODE (docs/theory.md §8) from the initial student of `run` under the
/// exponential schedule (β_i, t0), reported every `every` steps up to `steps`.
#[pyfunction]
pub(crate) fn ode_trajectory<'py>(
    py: Python<'py>,
    beta_i: f64,
    t0: f64,
    steps: usize,
    every: usize,
    d: usize,
    r: f64,
    w_star: f64,
    lr: f64,
    init_scale: f64,
    sigma0: Option<f64>,
    seed: u64,
    run: u64,
    quasi_static: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let mut cfg = model_config(d, r, w_star, lr, init_scale)?;
    cfg.seed = seed;
    cfg.schedule.kind = ScheduleKind::Exponential;
    cfg.schedule.beta_i = beta_i;
    cfg.schedule.t0 = t0;
    cfg.student.sigma0 = match sigma0 {
        Some(s) => NumberOr::Number(s),
        None => NumberOr::Name("schedule".into()),
    };
    cfg.validate().map_err(|e| to_py(rename_model_field(e)))?;
    check_reports(steps, every, lr)?;
    let schedule = cfg.build_schedule();
    let dy = annealvi::theory::Dynamics::from_config(&cfg, schedule.as_ref(), quasi_static)
        .map_err(to_py)?;
    let mut init = stream(cfg.seed, run, Purpose::Init);
    let q = cfg.init_student(&mut init);
    let mut e1 = vec![0.0; d];
    e1[0] = 1.0;
    let x0 = annealvi::theory::state_from_stats(&q.stats(&e1));
    let mut step_list: Vec<usize> = (0..=steps).step_by(every).collect();
    if step_list.last() != Some(&steps) {
        step_list.push(steps);
    }
    let times: Vec<f64> = step_list.iter().map(|&s| lr * s as f64).collect();
    let states = interruptible(py, |cancel| {
        let dy = Cancellable { inner: &dy, cancel };
        let r = integrate(&dy, 0.0, x0, &times, Tolerance::default());
        if cancel.load(Ordering::Relaxed) {
            Err(interrupted())
        } else {
            r.map_err(|e| PyValueError::new_err(format!("the ODE integration failed: {e}")))
        }
    })??;
    let dict = PyDict::new(py);
    let col = |i: usize| -> Vec<f64> { states.iter().map(|x| x[i]).collect() };
    dict.set_item(
        "step",
        PyArray1::from_vec(py, step_list.iter().map(|&s| s as i64).collect::<Vec<_>>()),
    )?;
    dict.set_item(
        "beta",
        PyArray1::from_vec(
            py,
            step_list
                .iter()
                .map(|&s| schedule.beta(s as f64))
                .collect::<Vec<_>>(),
        ),
    )?;
    dict.set_item("m_1", PyArray1::from_vec(py, col(0)))?;
    dict.set_item("m_2", PyArray1::from_vec(py, col(1)))?;
    dict.set_item("q_11", PyArray1::from_vec(py, col(2)))?;
    dict.set_item("q_12", PyArray1::from_vec(py, col(3)))?;
    dict.set_item("q_22", PyArray1::from_vec(py, col(4)))?;
    dict.set_item("sigma_1", PyArray1::from_vec(py, col(5)))?;
    dict.set_item("sigma_2", PyArray1::from_vec(py, col(6)))?;
    Ok(dict)
}
