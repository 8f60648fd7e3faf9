//! The theory from Python: schedules given as `[schedule]` tables, the collapse probability
//! (the sharp formula or the ODE Monte Carlo) of exponential schedules or of any schedule, the
//! schedule designer (fastest exponential, optimal at a budget) and ODE trajectories. The
//! long calls take `threads` (a rayon pool for the call) and `progress` (see
//! [`crate::with_progress`]).

use crate::config::{from_table, load_table, model_config, rename_model_field};
use crate::{
    CHECK_SEEDS, DIM, EXTRA_STEPS, ICS, SAMPLES, THREADS, check_int, interrupted, interruptible,
    to_py, with_progress, with_threads,
};
use annealvi::config::{NumberOr, ScheduleConfig, ScheduleKind};
use annealvi::design::optimal::{self, Shape};
use annealvi::prelude::*;
use annealvi::seed::{Purpose, stream};
use annealvi::sweep::{Axis, GridConfig};
use annealvi::theory::{IntegrateError, MAX_STEPS, OdeSystem, Tolerance, integrate};
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A `[schedule]` table (a dict such as `Schedule.to_config()` returns), validated (errors
/// name `schedule.<field>`).
pub(crate) fn schedule_config(table: &Bound<'_, PyDict>) -> PyResult<ScheduleConfig> {
    let py = table.py();
    let t = load_table("dict", table.as_any(), &PyDict::new(py))?;
    let sc: ScheduleConfig = from_table(t.table, "schedule")?;
    sc.validate().map_err(to_py)?;
    Ok(sc)
}

/// Validates the schedule table `table` (a `ValueError` naming `schedule.<field>` otherwise).
#[pyfunction]
pub(crate) fn schedule_validate(table: &Bound<'_, PyDict>) -> PyResult<()> {
    schedule_config(table).map(|_| ())
}

/// β at each of `steps` for the schedule table `table`, and the step from which β stays at
/// its final value (the schedule's end).
#[pyfunction]
pub(crate) fn schedule_values<'py>(
    py: Python<'py>,
    table: &Bound<'py, PyDict>,
    steps: PyReadonlyArray1<'py, f64>,
) -> PyResult<(Bound<'py, PyArray1<f64>>, f64)> {
    let s = schedule_config(table)?.init().map_err(to_py)?;
    let out: Vec<f64> = steps.as_array().iter().map(|&t| s.beta(t)).collect();
    Ok((PyArray1::from_vec(py, out), s.end()))
}

/// The error of a formula cell without a value.
fn formula_error(tau: f64) -> String {
    if tau > 0.0 {
        format!(
            "the formula has no value: its ODEs cannot be integrated to τ = lr × (annealing \
             steps + extra_steps) = {tau:.4e}"
        )
    } else {
        "the formula needs annealing steps + extra_steps > 0".to_string()
    }
}

/// P(collapse) of the exponential schedules (β_i[j], t0[j]) — or, when `schedules` is given,
/// of each of those `[schedule]` tables (any kind; β = 1 reached at its end) — followed by
/// `extra_steps` steps at β = 1. `method` "formula" is the sharp formula
/// ([`FormulaModel::sharp`] / [`FormulaModel::sharp_for`]), "ode" the tabulated ODE Monte
/// Carlo over `ics` initial conditions. Returns (p, ci_low, ci_high, collapsed) arrays; the
/// formula has no sampling interval (NaN) and no count (−1). A cell whose ODE cannot be
/// integrated (the integrator's step budget spent, a non-finite state) is a `ValueError`
/// naming the cell and the reason, as `annealvi theory` refuses such a grid, rather than a
/// NaN. Progress counts cells.
#[pyfunction]
pub(crate) fn collapse_probability<'py>(
    py: Python<'py>,
    beta_i: Vec<f64>,
    t0: Vec<f64>,
    schedules: Option<Vec<Bound<'py, PyDict>>>,
    d: usize,
    r: f64,
    w_star: f64,
    lr: f64,
    init_scale: f64,
    extra_steps: usize,
    method: &str,
    ics: usize,
    seed: u64,
    threads: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    check_int("d", d, DIM)?;
    check_int("extra_steps", extra_steps, EXTRA_STEPS)?;
    check_int("threads", threads, THREADS)?;
    let cfg = model_config(d, r, w_star, lr, init_scale)?;
    // each cell's schedule and the step at which it reaches its end
    let cells: Vec<(Box<dyn Schedule>, f64, String)> = match &schedules {
        Some(list) => list
            .iter()
            .map(|t| {
                let s = schedule_config(t)?.init().map_err(to_py)?;
                let end = s.end();
                Ok((s, end, t.repr()?.to_string()))
            })
            .collect::<PyResult<_>>()?,
        None => {
            if beta_i.len() != t0.len() {
                return Err(PyValueError::new_err(format!(
                    "beta_i and t0: {} and {} values (expected equal shapes after broadcasting)",
                    beta_i.len(),
                    t0.len()
                )));
            }
            beta_i
                .iter()
                .zip(&t0)
                .map(|(&b, &t)| {
                    let mut c = cfg.clone();
                    c.schedule.kind = ScheduleKind::Exponential;
                    c.schedule.beta_i = b;
                    c.schedule.t0 = t;
                    c.validate().map_err(|e| to_py(rename_model_field(e)))?;
                    let s: Box<dyn Schedule> = Box::new(Exponential { beta_i: b, t0: t });
                    Ok((s, t, format!("(beta_i = {b}, t0 = {t})")))
                })
                .collect::<PyResult<_>>()?
        }
    };
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
    let n = cells.len();
    let extra = extra_steps as f64;
    // each cell's (p, ci_low, ci_high, collapsed), or why it has none
    type Row = std::result::Result<(f64, f64, f64, i64), String>;
    let res = with_progress(progress, || {
        with_threads(threads, || {
            interruptible(py, |cancel| -> Result<Vec<Row>> {
                use rayon::prelude::*;
                let bar = annealvi::progress::bar(n as u64, "cells");
                let model = (method == "formula")
                    .then(|| FormulaModel::new(target, d, lr, init_scale, extra));
                let pred = (method == "ode")
                    .then(|| Predictor::new(target, d, lr, init_scale, extra, ics, seed));
                let rows = cells
                    .par_iter()
                    .map(|(s, end, _)| {
                        if cancel.load(Ordering::Relaxed) {
                            return Err(Error::Interrupted);
                        }
                        let row = match (&model, &pred) {
                            (Some(model), _) => {
                                let p = model.sharp_for(s.as_ref(), end + extra).p;
                                if p.is_finite() {
                                    Ok((p, f64::NAN, f64::NAN, -1))
                                } else {
                                    Err(formula_error(lr * (end + extra)))
                                }
                            }
                            (_, Some(pred)) => match pred.collapsed(s.as_ref(), *end) {
                                Ok(c) => {
                                    let (lo, hi) = wilson_interval(c, ics);
                                    Ok((c as f64 / ics as f64, lo, hi, c as i64))
                                }
                                Err(Error::Integrate(IntegrateError::StepBudget {
                                    tau,
                                    target,
                                    steps,
                                })) => Err(format!(
                                    "the ODE integrator took its budget of {steps} steps and \
                                     reached only τ = {tau:.4e} of τ = lr × (annealing steps + \
                                     extra_steps) = {target:.4e}"
                                )),
                                Err(e) => Err(format!("its ODE cannot be integrated: {e}")),
                            },
                            (None, None) => Err("no method".to_string()),
                        };
                        bar.inc(1);
                        Ok(row)
                    })
                    .collect();
                bar.finish_and_clear();
                rows
            })
        })
    })?
    .map_err(|e| match e {
        Error::Interrupted => interrupted(),
        e => to_py(e),
    })?;
    let failed: Vec<usize> = (0..n).filter(|&j| res[j].is_err()).collect();
    if let Some(&j) = failed.first() {
        let why = res[j].as_ref().err().map_or("", |s| s.as_str());
        return Err(PyValueError::new_err(format!(
            "P(collapse) cannot be computed at {} ({} of {n} cells): {why} (check lr = {lr}, r, \
             the schedule and extra_steps)",
            cells[j].2,
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

/// The 16 β_i candidates of `annealvi design` (log-spaced from 1e-3 to 10^−0.3).
fn design_betas() -> Vec<f64> {
    (0..16)
        .map(|i| 10f64.powf(-3.0 + 2.7 * i as f64 / 15.0))
        .collect()
}

/// A library error of a cancellable call as the Python exception.
fn py_err(e: Error) -> PyErr {
    match e {
        Error::Interrupted => interrupted(),
        e => to_py(e),
    }
}

/// The schedule designer (what `annealvi design` does). `shape` "exponential": the fastest
/// exponential schedule with predicted P(collapse) ≤ `max_collapse`, with every candidate β_i
/// and, when `check_seeds` > 0, the SGD check. `shape` "optimal": the monotone schedule,
/// piecewise linear in ln β over `segments` slices, minimising the predicted P(collapse) at
/// `budget` steps (or at the shortest budget reaching `max_collapse`), compared with the best
/// exponential and linear-in-temperature schedules there. Progress counts the candidate β_i
/// (exponential) or the stages (optimal), then the SGD runs of the check.
#[pyfunction]
pub(crate) fn design<'py>(
    py: Python<'py>,
    shape: &str,
    max_collapse: Option<f64>,
    budget: Option<f64>,
    segments: usize,
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
    threads: usize,
    progress: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    if let Some(eps) = max_collapse
        && !(eps > 0.0 && eps < 1.0)
    {
        return Err(PyValueError::new_err(format!(
            "invalid value for `max_collapse`: {eps} (expected a number in (0, 1))"
        )));
    }
    check_int("d", d, DIM)?;
    check_int("extra_steps", extra_steps, EXTRA_STEPS)?;
    check_int("ics", ics, ICS)?;
    check_int("check_seeds", check_seeds, CHECK_SEEDS)?;
    check_int("samples", samples, SAMPLES)?;
    check_int("threads", threads, THREADS)?;
    let mut cfg = model_config(d, r, w_star, lr, init_scale)?;
    cfg.seed = seed;
    let sweep = model_sweep(cfg, extra_steps, samples)?;
    match shape {
        "exponential" => {
            if budget.is_some() {
                return Err(PyValueError::new_err(
                    "invalid value for `budget`: the exponential designer takes `max_collapse` \
                     (the fastest schedule reaching it); `budget` is for shape=\"optimal\"",
                ));
            }
            let Some(eps) = max_collapse else {
                return Err(PyValueError::new_err(
                    "invalid value for `max_collapse`: None (expected a number in (0, 1) for \
                     shape=\"exponential\")",
                ));
            };
            // t0 is a run's step count (an SGD check runs t0 + extra_steps steps)
            if !(t_min >= 1.0 && t_max > t_min && t_max <= 1e8) {
                return Err(PyValueError::new_err(format!(
                    "invalid value for `t_range`: ({t_min}, {t_max}) (expected 1 ≤ t_min < \
                     t_max ≤ 1e8)"
                )));
            }
            with_progress(progress, || {
                with_threads(threads, || {
                    design_exponential(py, &sweep, eps, ics, check_seeds, (t_min, t_max))
                })
            })
        }
        "optimal" => {
            if !(2..=64).contains(&segments) {
                return Err(PyValueError::new_err(format!(
                    "invalid value for `segments`: {segments} (expected an integer in [2, 64])"
                )));
            }
            match (budget, max_collapse) {
                (None, None) => {
                    return Err(PyValueError::new_err(
                        "shape=\"optimal\" needs `budget` (the optimal schedule at that many \
                         steps) or `max_collapse` (the shortest budget reaching it)",
                    ));
                }
                (Some(_), Some(_)) => {
                    return Err(PyValueError::new_err(
                        "shape=\"optimal\" takes `budget` or `max_collapse`, not both",
                    ));
                }
                (Some(b), None) if !(b.is_finite() && b >= segments as f64 && b <= 1e7) => {
                    return Err(PyValueError::new_err(format!(
                        "invalid value for `budget`: {b} (expected a number of steps in \
                         [{segments} (= segments), 1e7])"
                    )));
                }
                _ => {}
            }
            with_progress(progress, || {
                with_threads(threads, || {
                    design_optimal(py, &sweep, budget, max_collapse, segments, ics, check_seeds)
                })
            })
        }
        other => Err(PyValueError::new_err(format!(
            "invalid value for `shape`: {other:?} (expected \"exponential\" or \"optimal\")"
        ))),
    }
}

/// The SGD check's counts as a dict.
fn check_dict<'py>(py: Python<'py>, (c, n): (usize, usize)) -> PyResult<Bound<'py, PyDict>> {
    let (lo, hi) = wilson_interval(c, n);
    let ch = PyDict::new(py);
    ch.set_item("n", n)?;
    ch.set_item("collapsed", c)?;
    ch.set_item("p_collapse", c as f64 / n.max(1) as f64)?;
    ch.set_item("ci_low", lo)?;
    ch.set_item("ci_high", hi)?;
    Ok(ch)
}

/// `design(shape="exponential")`: the candidates' searches one β_i at a time (each is the
/// library's search on that β_i alone, so the result is `annealvi design`'s), in parallel.
fn design_exponential<'py>(
    py: Python<'py>,
    sweep: &SweepConfig,
    eps: f64,
    ics: usize,
    check_seeds: usize,
    range: (f64, f64),
) -> PyResult<Bound<'py, PyDict>> {
    let pred = Predictor::from_sweep(sweep, ics).map_err(to_py)?;
    let betas = design_betas();
    let (best, all, check) = interruptible(py, |cancel| {
        use rayon::prelude::*;
        let bar = annealvi::progress::bar(betas.len() as u64, "design");
        let all: Vec<(f64, Option<Design>)> = betas
            .par_iter()
            .map(|&b| {
                let (_, one) = fastest_exponential_cancellable(&pred, eps, &[b], range, cancel)?;
                bar.inc(1);
                Ok(one[0])
            })
            .collect::<Result<_>>()
            .map_err(py_err)?;
        bar.finish_and_clear();
        // as the library: the first β_i with the smallest t0
        let best = all
            .iter()
            .filter_map(|(_, d)| *d)
            .min_by(|a, b| a.t0.total_cmp(&b.t0));
        let check = match best {
            Some(d) if check_seeds > 0 => Some(
                simulate_cancellable(sweep, d.beta_i, d.t0, check_seeds, cancel)
                    .ok_or_else(interrupted)?,
            ),
            _ => None,
        };
        Ok::<_, PyErr>((best, all, check))
    })??;
    let dict = PyDict::new(py);
    dict.set_item("shape", "exponential")?;
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
            dict.set_item("collapsed", b.collapsed)?;
            dict.set_item("ci_low", lo)?;
            dict.set_item("ci_high", hi)?;
        }
        None => {
            for k in ["beta_i", "t0", "rate", "p_predicted", "ci_low", "ci_high"] {
                dict.set_item(k, f64::NAN)?;
            }
            dict.set_item("collapsed", -1)?;
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
    match check {
        Some(c) => dict.set_item("check", check_dict(py, c)?)?,
        None => dict.set_item("check", py.None())?,
    }
    Ok(dict)
}

/// `design(shape="optimal")`: [`optimal::optimise`] at the budget (or at the shortest budget
/// reaching `max_collapse`, [`optimal::shortest_budget`]), verified by the table ODE Monte
/// Carlo, with the best exponential and linear-in-temperature schedules at that budget, as
/// `annealvi design --shape optimal`. The stages are interruptible between them (the
/// optimiser itself runs to its end); the SGD check of the optimal schedule
/// ([`optimal::simulate_config`], the CLI's seeds) cannot be interrupted.
fn design_optimal<'py>(
    py: Python<'py>,
    sweep: &SweepConfig,
    budget: Option<f64>,
    max_collapse: Option<f64>,
    segments: usize,
    ics: usize,
    check_seeds: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let pred = Predictor::from_sweep(sweep, ics).map_err(to_py)?;
    let model = FormulaModel::from_sweep(sweep)
        .ok_or_else(|| PyValueError::new_err("the sharp formula does not apply to this model"))?;
    let shapes = [Shape::Exponential, Shape::LinearTemperature];
    type Found = (
        Option<f64>,
        Vec<optimal::Tried>,
        Option<optimal::AtBudget>,
        Option<(usize, usize)>,
    );
    let (found, tried, at, check): Found = interruptible(py, |cancel| -> Result<Found> {
        let stop = || {
            if cancel.load(Ordering::Relaxed) {
                Err(Error::Interrupted)
            } else {
                Ok(())
            }
        };
        // stages: the search (with max_collapse), the design at the budget, the check
        let bar = annealvi::progress::bar(1 + max_collapse.is_some() as u64, "design");
        let (budget, warm, tried) = match (budget, max_collapse) {
            (Some(b), _) => (Some(b.round()), Vec::new(), Vec::new()),
            (None, Some(eps)) => {
                let (best, tried) = optimal::shortest_budget(
                    &pred,
                    &model,
                    eps,
                    None,
                    segments,
                    optimal::MAX_BUDGET,
                )?;
                bar.inc(1);
                match best {
                    Some(t) => (Some(t.budget), vec![t.theta], tried),
                    None => (None, Vec::new(), tried),
                }
            }
            (None, None) => (None, Vec::new(), Vec::new()),
        };
        stop()?;
        let Some(budget) = budget else {
            return Ok((None, tried, None, None));
        };
        let at = optimal::at_budget(&pred, &model, budget, segments, &shapes, &warm)?;
        bar.inc(1);
        bar.finish_and_clear();
        stop()?;
        let check = if check_seeds > 0 {
            let mut run = sweep.run.clone();
            run.schedule = ScheduleConfig {
                kind: ScheduleKind::Points,
                points: at.optimal.knots.clone(),
                ..Default::default()
            };
            run.optim.steps = budget as usize + sweep.grid.extra_steps;
            run.validate()?;
            let bar = annealvi::progress::bar(check_seeds as u64, "SGD check");
            let c = optimal::simulate_config(&run, check_seeds)?;
            bar.inc(check_seeds as u64);
            Some(c)
        } else {
            None
        };
        Ok((Some(budget), tried, Some(at), check))
    })?
    .map_err(py_err)?;
    let dict = PyDict::new(py);
    dict.set_item("shape", "optimal")?;
    dict.set_item("found", at.is_some())?;
    dict.set_item("ics", ics)?;
    dict.set_item("segments", segments)?;
    dict.set_item("budget", found.unwrap_or(f64::NAN))?;
    let t = PyDict::new(py);
    t.set_item(
        "budget",
        PyArray1::from_vec(py, tried.iter().map(|x| x.budget).collect()),
    )?;
    t.set_item(
        "p_predicted",
        PyArray1::from_vec(py, tried.iter().map(|x| x.p_table).collect()),
    )?;
    t.set_item(
        "beta_i",
        PyArray1::from_vec(py, tried.iter().map(|x| x.beta_i).collect()),
    )?;
    dict.set_item("tried", t)?;
    match &at {
        Some(at) => {
            let o = &at.rows[0];
            let (lo, hi) = wilson_interval(o.collapsed, ics);
            dict.set_item("points", at.optimal.knots.clone())?;
            dict.set_item("beta_i", o.beta_i)?;
            dict.set_item("t0", at.optimal.budget)?;
            dict.set_item("p_predicted", o.p_table)?;
            dict.set_item("collapsed", o.collapsed)?;
            dict.set_item("ci_low", lo)?;
            dict.set_item("ci_high", hi)?;
            dict.set_item("p_formula", o.p_formula)?;
            dict.set_item("evaluations", at.optimal.evaluations)?;
            let rows = PyDict::new(py);
            let names: Vec<&str> = at.rows.iter().map(|v| v.shape).collect();
            rows.set_item("shape", names)?;
            let col = |f: &dyn Fn(&optimal::Verified) -> f64| -> Vec<f64> {
                at.rows.iter().map(f).collect()
            };
            rows.set_item("beta_i", PyArray1::from_vec(py, col(&|v| v.beta_i)))?;
            rows.set_item("p_formula", PyArray1::from_vec(py, col(&|v| v.p_formula)))?;
            rows.set_item("p_predicted", PyArray1::from_vec(py, col(&|v| v.p_table)))?;
            let ci: Vec<(f64, f64)> = at
                .rows
                .iter()
                .map(|v| wilson_interval(v.collapsed, ics))
                .collect();
            rows.set_item(
                "ci_low",
                PyArray1::from_vec(py, ci.iter().map(|x| x.0).collect()),
            )?;
            rows.set_item(
                "ci_high",
                PyArray1::from_vec(py, ci.iter().map(|x| x.1).collect()),
            )?;
            dict.set_item("candidates", rows)?;
        }
        None => {
            dict.set_item("points", py.None())?;
            for k in [
                "beta_i",
                "t0",
                "p_predicted",
                "ci_low",
                "ci_high",
                "p_formula",
            ] {
                dict.set_item(k, f64::NAN)?;
            }
            dict.set_item("collapsed", -1)?;
            dict.set_item("evaluations", 0)?;
            dict.set_item("candidates", PyDict::new(py))?;
        }
    }
    match check {
        Some(c) => dict.set_item("check", check_dict(py, c)?)?,
        None => dict.set_item("check", py.None())?,
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
/// within a few steps (with an error the caller replaces by `KeyboardInterrupt`), and that
/// counts the SGD steps τ/η reached into `bar`.
struct Cancellable<'a, S> {
    inner: &'a S,
    cancel: &'a AtomicBool,
    bar: &'a annealvi::progress::Bar,
    lr: f64,
    /// Steps counted so far.
    reached: AtomicU64,
}

impl<S: OdeSystem<N>, const N: usize> OdeSystem<N> for Cancellable<'_, S> {
    fn rhs(&self, tau: f64, x: &[f64; N]) -> [f64; N] {
        if self.cancel.load(Ordering::Relaxed) {
            return [f64::NAN; N];
        }
        let step = (tau / self.lr).max(0.0) as u64;
        let before = self.reached.fetch_max(step, Ordering::Relaxed);
        if step > before {
            self.bar.inc(step - before);
        }
        self.inner.rhs(tau, x)
    }

    fn project(&self, tau: f64, x: &mut [f64; N]) {
        self.inner.project(tau, x);
    }

    fn state_bound(&self) -> f64 {
        self.inner.state_bound()
    }
}

/// The summary statistics' ODE (docs/theory.md §8) from the initial student of `run` under the
/// exponential schedule (β_i, t0), reported every `every` steps up to `steps`. Progress
/// counts the SGD steps (τ/η) integrated.
#[pyfunction]
#[pyo3(signature = (beta_i, t0, steps, every, d, r, w_star, lr, init_scale, sigma0, seed, run,
                    quasi_static, progress=None))]
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
    progress: Option<Py<PyAny>>,
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
    let states = with_progress(progress, || {
        interruptible(py, |cancel| {
            let bar = annealvi::progress::bar(steps as u64, "ODE");
            let dy = Cancellable {
                inner: &dy,
                cancel,
                bar: &bar,
                lr,
                reached: AtomicU64::new(0),
            };
            let r = integrate(&dy, 0.0, x0, &times, Tolerance::default());
            let reached = dy.reached.load(Ordering::Relaxed);
            bar.inc((steps as u64).saturating_sub(reached));
            bar.finish_and_clear();
            if cancel.load(Ordering::Relaxed) {
                Err(interrupted())
            } else {
                r.map_err(|e| PyValueError::new_err(format!("the ODE integration failed: {e}")))
            }
        })
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
