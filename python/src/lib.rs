//! The native part of the `annealvi` Python package (module `annealvi._native`).
//!
//! Thin wrappers over the library: configurations are parsed and validated by
//! [`annealvi::config::Config::validate`] (errors become `ValueError` naming the field and its
//! valid range), long calls run on a worker thread while the calling thread waits without the
//! GIL and polls for signals every 0.2 s (Ctrl-C → `KeyboardInterrupt`; a sweep's finished
//! runs stay on disk). The Python-facing API, its docstrings and stubs live in `annealvi/`.

// Argument lists mirror the Python signatures one to one; numerical loops index several
// arrays with one variable (as in the library).
#![allow(clippy::too_many_arguments, clippy::needless_range_loop)]

mod callable;

use annealvi::config::{NumberOr, ScheduleKind};
use annealvi::prelude::*;
use annealvi::seed::{Purpose, stream};
use annealvi::sweep::{Axis, GridConfig};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// A library error as the matching Python exception.
pub(crate) fn to_py(e: Error) -> PyErr {
    match e {
        Error::Io { .. } => PyOSError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

thread_local! {
    /// The rayon pool of the call in progress on this (Python) thread, set by [`with_threads`]:
    /// the workers of its [`interruptible`] calls run inside it.
    static CALL_POOL: RefCell<Option<Arc<rayon::ThreadPool>>> = const { RefCell::new(None) };
}

/// Runs `f` (a call whose Python API takes `threads`) with a rayon pool of `threads` threads
/// (0 = all cores) for the library's parallel loops; the pool lives for this call only.
fn with_threads<T>(threads: usize, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| {
            to_py(Error::Invalid(format!(
                "cannot start {threads} threads: {e}"
            )))
        })?;
    let outer = CALL_POOL.with(|p| p.replace(Some(Arc::new(pool))));
    let r = f();
    CALL_POOL.with(|p| *p.borrow_mut() = outer);
    r
}

/// Runs `f` on a worker thread (inside the call's rayon pool, if [`with_threads`] set one; else
/// on the global pool); the caller waits without the GIL and checks for signals every 0.2 s.
/// On a signal (Ctrl-C) `cancel` is set, the worker is awaited (it stops at its next check)
/// and the signal's exception (KeyboardInterrupt) is returned. A panic in the worker becomes a
/// `RuntimeError`.
pub(crate) fn interruptible<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&AtomicBool) -> T + Send,
{
    let cancel = AtomicBool::new(false);
    let pool = CALL_POOL.with(|p| p.borrow().clone());
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let cancel_ref = &cancel;
        s.spawn(move || {
            let work = || f(cancel_ref);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &pool {
                Some(pool) => pool.install(work),
                None => work(),
            }));
            let _ = tx.send(r);
        });
        // Receiver is not Sync; the mutex lets the GIL-free closure borrow it
        let rx = std::sync::Mutex::new(rx);
        let mut pending: Option<PyErr> = None;
        loop {
            let got = py.detach(|| {
                rx.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .recv_timeout(Duration::from_millis(200))
            });
            match got {
                Ok(Ok(v)) => {
                    return match pending {
                        Some(e) => Err(e),
                        None => Ok(v),
                    };
                }
                Ok(Err(_)) | Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(pending.unwrap_or_else(|| {
                        PyRuntimeError::new_err(
                            "internal error in annealvi (a panic in the native code); please \
                             report it with the call that caused it",
                        )
                    }));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if pending.is_none()
                        && let Err(e) = py.check_signals()
                    {
                        cancel.store(true, Ordering::Relaxed);
                        pending = Some(e);
                    }
                }
            }
        }
    })
}

/// The raised exception when a call was cancelled through its flag without a Python signal.
fn interrupted() -> PyErr {
    PyKeyboardInterrupt::new_err("interrupted")
}

// ---------------------------------------------------------------------------------------------
// configurations

/// Reads a configuration table: `kind` is "json" (a dict serialised by the wrapper), "path"
/// (a TOML file) or "toml" (TOML text); then applies `overrides` (a JSON object of dotted keys,
/// e.g. {"target.d": 64}).
fn load_table(kind: &str, source: &str, overrides: &str) -> PyResult<toml::Table> {
    let mut table: toml::Table = match kind {
        "json" => serde_json::from_str(source)
            .map_err(|e| PyValueError::new_err(format!("cannot read the config dict: {e}")))?,
        "path" => {
            let p = std::path::Path::new(source);
            let text = std::fs::read_to_string(p).map_err(|e| to_py(Error::io(p, "read", e)))?;
            text.parse::<toml::Table>()
                .map_err(|e| PyValueError::new_err(format!("cannot parse {source}: {e}")))?
        }
        "toml" => source
            .parse::<toml::Table>()
            .map_err(|e| PyValueError::new_err(format!("cannot parse the TOML string: {e}")))?,
        other => {
            return Err(PyValueError::new_err(format!(
                "config source kind {other:?} (expected json, path or toml)"
            )));
        }
    };
    let ov: serde_json::Map<String, serde_json::Value> = serde_json::from_str(overrides)
        .map_err(|e| PyValueError::new_err(format!("cannot read the overrides: {e}")))?;
    for (key, value) in ov {
        let v = toml::Value::try_from(&value).map_err(|e| {
            PyValueError::new_err(format!(
                "override `{key}`: {value} is not a TOML value ({e})"
            ))
        })?;
        set_dotted(&mut table, &key, v)?;
    }
    Ok(table)
}

fn set_dotted(table: &mut toml::Table, key: &str, value: toml::Value) -> PyResult<()> {
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(PyValueError::new_err(format!(
            "override key `{key}`: expected a dotted path such as target.d"
        )));
    }
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| {
            PyValueError::new_err(format!("override `{key}`: `{p}` is not a table"))
        })?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

fn from_table<T: serde::de::DeserializeOwned>(table: toml::Table, what: &str) -> PyResult<T> {
    table
        .try_into()
        .map_err(|e: toml::de::Error| PyValueError::new_err(format!("{what}: {}", e.message())))
}

fn load_config(kind: &str, source: &str, overrides: &str) -> PyResult<Config> {
    let cfg: Config = from_table(load_table(kind, source, overrides)?, "configuration")?;
    cfg.validate().map_err(to_py)?;
    Ok(cfg)
}

fn load_sweep(kind: &str, source: &str, overrides: &str) -> PyResult<SweepConfig> {
    let cfg: SweepConfig = from_table(load_table(kind, source, overrides)?, "sweep configuration")?;
    cfg.validate().map_err(to_py)?;
    Ok(cfg)
}

/// The validated run configuration (resolved, every field) as TOML text.
#[pyfunction]
fn resolve_config(kind: &str, source: &str, overrides: &str) -> PyResult<String> {
    Ok(load_config(kind, source, overrides)?.to_toml())
}

/// The validated sweep configuration as TOML text.
#[pyfunction]
fn resolve_sweep(kind: &str, source: &str, overrides: &str) -> PyResult<String> {
    let cfg = load_sweep(kind, source, overrides)?;
    toml::to_string(&cfg).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// The model of the theory functions: bimodal target (d, R, w*), 2-component student with
/// fixed weights ½ and random initial means N(0, s² I_d), SGD with η = `lr`, validated as a
/// run configuration (so errors name the same fields as the CLI's).
fn model_config(d: usize, r: f64, w_star: f64, lr: f64, init_scale: f64) -> PyResult<Config> {
    let mut c = Config::default();
    c.target.d = d;
    c.target.r = r;
    c.target.w_star = w_star;
    c.optim.lr = lr;
    c.student.init_mean_scale = NumberOr::Number(init_scale);
    c.validate().map_err(|e| to_py(rename_model_field(e)))?;
    Ok(c)
}

/// Model fields of the validation named as the Python arguments (`target.w_star` → `w_star`).
fn rename_model_field(e: Error) -> Error {
    match e {
        Error::Config {
            field,
            value,
            expected,
        } => {
            let name = match field.as_str() {
                "target.d" => "d",
                "target.r" => "r",
                "target.w_star" => "w_star",
                "optim.lr" => "lr",
                "student.init_mean_scale" => "init_scale",
                f => f.trim_start_matches("schedule."),
            };
            Error::Config {
                field: name.to_string(),
                value,
                expected,
            }
        }
        e => e,
    }
}

fn schedule_config(kind: &str, beta_i: f64, t0: f64, beta: f64) -> PyResult<Config> {
    let mut c = Config::default();
    c.schedule.kind = match kind {
        "exponential" => ScheduleKind::Exponential,
        "linear" => ScheduleKind::Linear,
        "linear_temperature" => ScheduleKind::LinearTemperature,
        "constant" => ScheduleKind::Constant,
        other => {
            return Err(PyValueError::new_err(format!(
                "schedule kind {other:?} (expected exponential, linear, linear_temperature or \
                 constant)"
            )));
        }
    };
    c.schedule.beta_i = beta_i;
    c.schedule.t0 = t0;
    c.schedule.beta = beta;
    c.validate().map_err(to_py)?;
    Ok(c)
}

/// Validates a schedule's parameters (ValueError naming `schedule.<field>` otherwise).
#[pyfunction]
fn check_schedule(kind: &str, beta_i: f64, t0: f64, beta: f64) -> PyResult<()> {
    schedule_config(kind, beta_i, t0, beta).map(|_| ())
}

/// β at each step of `steps` for the schedule (kind, β_i, t0, β).
#[pyfunction]
fn schedule_beta<'py>(
    py: Python<'py>,
    kind: &str,
    beta_i: f64,
    t0: f64,
    beta: f64,
    steps: PyReadonlyArray1<'py, f64>,
) -> PyResult<Bound<'py, PyArray1<f64>>> {
    let s = schedule_config(kind, beta_i, t0, beta)?.build_schedule();
    let out: Vec<f64> = steps.as_array().iter().map(|&t| s.beta(t)).collect();
    Ok(PyArray1::from_vec(py, out))
}

// ---------------------------------------------------------------------------------------------
// theory

/// P(collapse) of the exponential schedules (β_i[j], t0[j]) followed by `extra_steps` steps at
/// β = 1. Returns (p, ci_low, ci_high, collapsed) arrays; the formula has no sampling interval
/// (NaN) and no count (−1).
#[pyfunction]
fn collapse_probability<'py>(
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
    if method == "ode" && !(1..=10_000_000).contains(&ics) {
        return Err(PyValueError::new_err(format!(
            "invalid value for `ics`: {ics} (expected an integer in [1, 10000000])"
        )));
    }
    let target = *cfg
        .build_target()
        .as_bimodal()
        .expect("bimodal by construction");
    let n = beta_i.len();
    let res = interruptible(py, |cancel| -> Result<Vec<(f64, f64, f64, i64)>> {
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
                    Ok((p, f64::NAN, f64::NAN, -1))
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
                match pred.collapsed(&s, t0[j]) {
                    Ok(c) => {
                        let (lo, hi) = wilson_interval(c, ics);
                        Ok((c as f64 / ics as f64, lo, hi, c as i64))
                    }
                    Err(_) => Ok((f64::NAN, f64::NAN, f64::NAN, -1)),
                }
            })
            .collect()
    })?
    .map_err(|e| match e {
        Error::Interrupted => interrupted(),
        e => to_py(e),
    })?;
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
fn model_sweep(cfg: Config, extra_steps: usize, samples: usize) -> PyResult<SweepConfig> {
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
fn design<'py>(
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
    if !(1..=10_000_000).contains(&ics) {
        return Err(PyValueError::new_err(format!(
            "invalid value for `ics`: {ics} (expected an integer in [1, 10000000])"
        )));
    }
    if !(t_min.is_finite() && t_min >= 1.0 && t_max.is_finite() && t_max > t_min) {
        return Err(PyValueError::new_err(format!(
            "invalid value for `t_range`: ({t_min}, {t_max}) (expected 1 ≤ t_min < t_max, finite)"
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

/// The summary statistics' ODE (docs/theory.md §8) from the initial student of `run` under the
/// exponential schedule (β_i, t0), reported every `every` steps up to `steps`.
#[pyfunction]
fn ode_trajectory<'py>(
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
    if every == 0 {
        return Err(PyValueError::new_err(
            "invalid value for `every`: 0 (expected an integer ≥ 1)",
        ));
    }
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
    let states = interruptible(py, |_c| {
        annealvi::theory::integrate(&dy, 0.0, x0, &times, annealvi::theory::Tolerance::default())
    })?
    .map_err(|e| PyValueError::new_err(format!("the ODE integration failed: {e}")))?;
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

// ---------------------------------------------------------------------------------------------
// training and sweeps

fn outcome_items(dict: &Bound<'_, PyDict>, o: &Outcome) -> PyResult<()> {
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

fn matrix<'py>(py: Python<'py>, rows: usize, flat: Vec<f64>) -> PyResult<Bound<'py, PyAny>> {
    let cols = flat.len().checked_div(rows).unwrap_or(0);
    Ok(PyArray1::from_vec(py, flat)
        .reshape([rows, cols])?
        .into_any())
}

/// One training run of `config` (run index `run`: streams (seed, run, Init/Sgd/Eval), as the
/// CLI's `train` with run 0). Returns {"summary": {...}, "trajectory": {...}}.
#[pyfunction]
fn train<'py>(
    py: Python<'py>,
    kind: &str,
    source: &str,
    overrides: &str,
    run: u64,
    target: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let cfg = load_config(kind, source, overrides)?;
    if let Some(t) = target {
        return callable::train(py, &cfg, run, t);
    }
    let out = PyDict::new(py);
    let summary = PyDict::new(py);
    let traj = PyDict::new(py);
    summary.set_item("seed", cfg.seed)?;
    // run_config's streams, (run, run)
    let (finished, rec) = interruptible(py, |cancel| {
        let mut rec = Recorder::default();
        match annealvi::run::run_any_cancellable(&cfg, (run, run), &mut rec, cancel) {
            Ok(Some(r)) => Ok((r, rec)),
            Ok(None) => Err(interrupted()),
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
            flow_columns(py, &traj, &rec.flow_records)?;
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
fn sweep<'py>(
    py: Python<'py>,
    kind: &str,
    source: &str,
    overrides: &str,
    out: &str,
    resume: bool,
    shard: Option<&str>,
    threads: usize,
    target: Option<Py<PyAny>>,
) -> PyResult<Bound<'py, PyDict>> {
    let cfg = load_sweep(kind, source, overrides)?;
    let shard = shard.map(Shard::parse).transpose().map_err(to_py)?;
    let opts = SweepOptions {
        out: out.into(),
        resume,
        shard,
        max_runs: None,
        budget: None,
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

/// The native module.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(resolve_config, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_sweep, m)?)?;
    m.add_function(wrap_pyfunction!(check_schedule, m)?)?;
    m.add_function(wrap_pyfunction!(schedule_beta, m)?)?;
    m.add_function(wrap_pyfunction!(collapse_probability, m)?)?;
    m.add_function(wrap_pyfunction!(design, m)?)?;
    m.add_function(wrap_pyfunction!(ode_trajectory, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(sweep, m)?)?;
    m.add_function(wrap_pyfunction!(callable::gmm_gradient_check, m)?)?;
    Ok(())
}
