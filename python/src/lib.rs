//! The native part of the `annealvi` Python package (module `annealvi._native`).
//!
//! Thin wrappers over the library: configurations are parsed and validated by
//! [`annealvi::config::Config::validate`] (errors become `ValueError` naming the field and its
//! valid range), long calls run on a worker thread while the calling thread waits without the
//! GIL and polls for signals every 0.2 s (Ctrl-C → `KeyboardInterrupt`; a sweep's finished
//! runs stay on disk) and reports progress to a Python callback (see [`with_progress`]). The
//! Python-facing API, its docstrings and stubs live in `annealvi/`.
//!
//! This file holds the error conversion, the per-call thread pool, the per-call progress
//! callback, the interruptible worker and the module's registration; the functions are in `config` (configurations), `theory`
//! (collapse probability, designer, ODE trajectories), `runs` (training runs), `sweep`
//! (sweeps) and `callable` (user-defined targets).

// Argument lists mirror the Python signatures one to one; numerical loops index several
// arrays with one variable (as in the library).
#![allow(clippy::too_many_arguments, clippy::needless_range_loop)]

mod callable;
mod config;
mod runs;
mod student;
mod sweep;
mod theory;

use config::{resolve_config, resolve_sweep};
use runs::{experiment_config, train};
pub(crate) use runs::{flow_columns, gmm_columns, gmm_summary, outcome_items};
use theory::{collapse_probability, design, ode_trajectory, schedule_validate, schedule_values};

use annealvi::prelude::*;
use pyo3::exceptions::{PyKeyboardInterrupt, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

/// Valid range of the dimension `d` (the library's `target.d`).
pub(crate) const DIM: (u64, u64) = (1, 1 << 24);
/// Valid range of `ics` (initial conditions of the ODE Monte Carlo).
pub(crate) const ICS: (u64, u64) = (1, 10_000_000);
/// Valid range of `extra_steps` (a sweep's `grid.extra_steps`).
pub(crate) const EXTRA_STEPS: (u64, u64) = (0, 100_000_000);
/// Valid range of `samples` (the library's `objective.samples`).
pub(crate) const SAMPLES: (u64, u64) = (1, 1 << 20);
/// Valid range of `check_seeds` (the CLI's `design --check-seeds`).
pub(crate) const CHECK_SEEDS: (u64, u64) = (0, 1 << 20);
/// Valid range of `threads` (0 = all cores; the CLI's `--threads`).
pub(crate) const THREADS: (u64, u64) = (0, 1024);
/// Any 64-bit unsigned integer (seeds, run indices; the bounds of `steps` and `every`, whose
/// valid ranges depend on other arguments and are checked by `ode_trajectory`).
pub(crate) const U64: (u64, u64) = (0, u64::MAX);

/// The integer arguments' valid ranges, exported as `_native.INT_RANGES` so that the Python
/// wrappers refuse an out-of-range integer (however large) naming the argument and its range
/// before converting it; the functions check them again.
const INT_RANGES: [(&str, (u64, u64)); 10] = [
    ("d", DIM),
    ("ics", ICS),
    ("extra_steps", EXTRA_STEPS),
    ("samples", SAMPLES),
    ("check_seeds", CHECK_SEEDS),
    ("threads", THREADS),
    ("steps", U64),
    ("every", (1, u64::MAX)),
    ("seed", U64),
    ("run", U64),
];

/// `v` in `lo..=hi`, else a `ValueError` naming the argument `name` and its range.
pub(crate) fn check_int(name: &str, v: usize, (lo, hi): (u64, u64)) -> PyResult<()> {
    if (lo..=hi).contains(&(v as u64)) {
        Ok(())
    } else {
        Err(PyValueError::new_err(format!(
            "invalid value for `{name}`: {v} (expected an integer in [{lo}, {hi}])"
        )))
    }
}

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
    /// The progress callback of the call in progress on this (Python) thread, set by
    /// [`with_progress`]: its [`interruptible`] calls report to it.
    static CALL_PROGRESS: RefCell<Option<Py<PyAny>>> = const { RefCell::new(None) };
    /// On the thread running an [`interruptible`] call's work: the counters that the
    /// library's progress bars created on this thread add to (see [`reporter`]).
    static WORK_PROGRESS: RefCell<Option<Arc<Progress>>> = const { RefCell::new(None) };
}

/// Units of work done and planned by one [`interruptible`] call: the library's progress bars
/// created on its worker thread ([`annealvi::progress::bar`]) add their length to `total` and
/// their increments to `done`; the polling loop passes both to the call's callback.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    done: AtomicU64,
    total: AtomicU64,
}

impl Progress {
    fn get(&self) -> (u64, u64) {
        (
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }
}

/// A library progress bar counting into a call's [`Progress`].
struct Counter(Option<Arc<Progress>>);

impl annealvi::progress::Report for Counter {
    fn inc(&self, n: u64) {
        if let Some(p) = &self.0 {
            p.done.fetch_add(n, Ordering::Relaxed);
        }
    }
    fn finish(&self) {}
}

/// The library's progress reporter in this process (installed with the module): a bar made on
/// the worker thread of an [`interruptible`] call counts into that call's [`Progress`]; any
/// other bar counts nothing (the package draws nothing itself).
fn reporter(len: u64, _msg: &str) -> Box<dyn annealvi::progress::Report> {
    let p = WORK_PROGRESS.with(|p| p.borrow().clone());
    if let Some(p) = &p {
        p.total.fetch_add(len, Ordering::Relaxed);
    }
    Box::new(Counter(p))
}

/// Runs `f` (a call whose Python API takes `progress`) with `callback` (a Python callable
/// `callback(done, total)`, or None) as the progress callback of its [`interruptible`] calls:
/// it is called from the calling thread, with the GIL, about every 0.2 s while the counts
/// change, and once at the end of each call. An exception it raises stops the call (as
/// Ctrl-C does) and is raised.
pub(crate) fn with_progress<T>(
    callback: Option<Py<PyAny>>,
    f: impl FnOnce() -> PyResult<T>,
) -> PyResult<T> {
    let outer = CALL_PROGRESS.with(|p| p.replace(callback));
    let r = f();
    CALL_PROGRESS.with(|p| *p.borrow_mut() = outer);
    r
}

/// Runs `f` (a call whose Python API takes `threads`) with a rayon pool of `threads` threads
/// (0 = all cores) for the library's parallel loops; the pool lives for this call only.
pub(crate) fn with_threads<T>(threads: usize, f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
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
/// on the global pool); the caller waits without the GIL and checks for signals every 0.2 s,
/// and reports the progress counted by the library's bars made on the worker thread to the
/// callback that [`with_progress`] set, if any. On a signal (Ctrl-C), or an exception raised
/// by the progress callback, `cancel` is set, the worker is awaited (it stops at its next
/// check) and the exception (KeyboardInterrupt) is returned. A panic in the worker becomes a
/// `RuntimeError`.
pub(crate) fn interruptible<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    T: Send,
    F: FnOnce(&AtomicBool) -> T + Send,
{
    let cancel = AtomicBool::new(false);
    let pool = CALL_POOL.with(|p| p.borrow().clone());
    let callback = CALL_PROGRESS.with(|p| p.borrow().as_ref().map(|c| c.clone_ref(py)));
    let progress = Arc::new(Progress::default());
    let mut reported: Option<(u64, u64)> = None;
    // calls the callback when the counts changed (not before any work is counted); an
    // exception stops the call
    let mut report = |py: Python<'_>| -> PyResult<()> {
        if let Some(cb) = &callback {
            let now = progress.get();
            if reported != Some(now) && now != (0, 0) {
                reported = Some(now);
                cb.call1(py, now)?;
            }
        }
        Ok(())
    };
    let work_progress = progress.clone();
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        let cancel_ref = &cancel;
        s.spawn(move || {
            let work = || {
                WORK_PROGRESS.with(|p| *p.borrow_mut() = Some(work_progress));
                let r = f(cancel_ref);
                WORK_PROGRESS.with(|p| *p.borrow_mut() = None);
                r
            };
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
                    if pending.is_none()
                        && let Err(e) = report(py)
                    {
                        pending = Some(e);
                    }
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
                        && let Err(e) = py.check_signals().and_then(|_| report(py))
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
pub(crate) fn interrupted() -> PyErr {
    PyKeyboardInterrupt::new_err("interrupted")
}

/// The native module.
#[pymodule]
#[pyo3(name = "_native")]
fn native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // false when another copy of the module installed it first: same function
    let _ = annealvi::progress::set_reporter(reporter);
    m.add_function(wrap_pyfunction!(resolve_config, m)?)?;
    m.add_function(wrap_pyfunction!(resolve_sweep, m)?)?;
    m.add_function(wrap_pyfunction!(schedule_validate, m)?)?;
    m.add_function(wrap_pyfunction!(schedule_values, m)?)?;
    m.add_function(wrap_pyfunction!(collapse_probability, m)?)?;
    m.add_function(wrap_pyfunction!(design, m)?)?;
    m.add_function(wrap_pyfunction!(ode_trajectory, m)?)?;
    m.add_function(wrap_pyfunction!(train, m)?)?;
    m.add_function(wrap_pyfunction!(sweep::run_sweep, m)?)?;
    m.add_function(wrap_pyfunction!(callable::gmm_gradient_check, m)?)?;
    m.add_function(wrap_pyfunction!(experiment_config, m)?)?;
    m.add_class::<student::GmmModel>()?;
    m.add_class::<student::FlowModel>()?;
    let ranges = PyDict::new(m.py());
    for (name, range) in INT_RANGES {
        ranges.set_item(name, range)?;
    }
    m.add("INT_RANGES", ranges)?;
    Ok(())
}
