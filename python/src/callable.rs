//! User-defined targets: a Python callable `fn(x) -> (log_prob, grad)` on an (n, d) float64
//! batch, trained against with the Gaussian-mixture student or the RealNVP flow.
//!
//! The Monte-Carlo gradient is the library's reference estimator
//! ([`annealvi::objective::mc_gradient_reference`]) rewritten to evaluate the target once per
//! step on the whole batch (K·B points) instead of point by point: it draws the same normals in
//! the same order (component, sample, coordinate), so against the built-in bimodal target
//! written in Python it reproduces the built-in runs. The flow takes the batch's values through
//! the library's hook ([`annealvi::family::realnvp::BatchTarget`]), with the noise, records
//! and evaluation of the built-in flow runs. The Python wrapper
//! (`annealvi/_target.py`) checks shapes and finiteness and raises a `ValueError` naming the
//! problem; any exception ends the run and is re-raised to the caller.

use crate::{flow_columns, gmm_columns, gmm_summary, interruptible, outcome_items, to_py};
use annealvi::family::realnvp::{BatchTarget, FlowStats};
use annealvi::family::{GmmStudent, RealNvp, VariationalFamily};
use annealvi::normal::NormalGen;
use annealvi::objective::Estimator;
use annealvi::prelude::*;
use annealvi::seed::{Purpose, stream};
use annealvi::sweep::{noise_index, run_line};
use annealvi::train::{Record, Student, TrainSettings, record_stream};
use numpy::{PyArray1, PyArrayMethods};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use rand::Rng;
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

    /// ln π and ∇ ln π at the n points of `x` (row-major n × d): acquires the GIL, calls the
    /// wrapper, copies the results.
    pub fn eval(&self, x: &[f64], n: usize, lp: &mut [f64], grad: &mut [f64]) -> PyResult<()> {
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
}

/// Reusable buffers of [`batched_gradient`].
#[derive(Default)]
pub struct Batch {
    normals: Option<NormalGen>,
    z: Vec<f64>,
    x: Vec<f64>,
    lp: Vec<f64>,
    gp: Vec<f64>,
}

/// The reverse-KL Monte-Carlo gradient of `q` against the tempered user target π^β (estimator
/// full or STL, B = `samples` per component); writes ∇_θ into `grad` and returns the loss
/// estimate Σ_k w_k (1/B) Σ_b [ln q(x_kb) − β ln π(x_kb)]. The same arithmetic as
/// [`annealvi::objective::mc_gradient_reference`], with one target call per step.
#[allow(clippy::too_many_arguments)]
pub fn batched_gradient<R: Rng + ?Sized>(
    q: &GmmStudent,
    target: &PyTarget,
    beta: f64,
    estimator: Estimator,
    samples: usize,
    rng: &mut R,
    buf: &mut Batch,
    grad: &mut [f64],
) -> PyResult<f64> {
    let d = target.dim;
    let kc = q.components();
    let n = kc * samples;
    let w = q.weights();
    let sig: Vec<f64> = (0..kc).map(|k| q.sigma(k)).collect();
    // hoisted out of the per-coordinate loops (the accessors are not inlined across crates)
    let mu: Vec<&[f64]> = (0..kc).map(|k| q.mean(k)).collect();
    let (sigma_off, logit_off) = (q.log_sigma_offset(), q.logit_offset());
    let dn = d as f64;
    grad.iter_mut().for_each(|g| *g = 0.0);
    // reseeding gives the numbers of a fresh generator without rebuilding its buffers
    let mut normals = match buf.normals.take() {
        Some(mut g) => {
            g.reseed(rng);
            g
        }
        None => NormalGen::from_rng(rng),
    };
    buf.z.resize(n * d, 0.0);
    buf.x.resize(n * d, 0.0);
    buf.lp.resize(n, 0.0);
    buf.gp.resize(n * d, 0.0);
    for k in 0..kc {
        for b in 0..samples {
            let row = (k * samples + b) * d;
            normals.fill(&mut buf.z[row..row + d]);
            for i in 0..d {
                buf.x[row + i] = mu[k][i] + sig[k] * buf.z[row + i];
            }
        }
    }
    buf.normals = Some(normals);
    target.eval(&buf.x, n, &mut buf.lp, &mut buf.gp)?;
    let mut fbar = vec![0.0; kc];
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    let mut gx = vec![0.0; d];
    for k in 0..kc {
        let scale = w[k] / samples as f64;
        for b in 0..samples {
            let row = (k * samples + b) * d;
            let x = &buf.x[row..row + d];
            let z = &buf.z[row..row + d];
            let gp = &buf.gp[row..row + d];
            let terms: Vec<f64> = (0..kc)
                .map(|l| {
                    let dist: f64 = (0..d).map(|i| (x[i] - mu[l][i]).powi(2)).sum();
                    w[l].ln() - 0.5 * dn * (ln2pi + 2.0 * sig[l].ln()) - 0.5 * dist / sig[l].powi(2)
                })
                .collect();
            let lq = log_sum_exp(&terms);
            let resp: Vec<f64> = terms.iter().map(|t| (t - lq).exp()).collect();
            let lp = buf.lp[k * samples + b];
            fbar[k] += (lq - beta * lp) / samples as f64;
            for i in 0..d {
                let mut v = -beta * gp[i];
                for l in 0..kc {
                    v += resp[l] * (mu[l][i] - x[i]) / sig[l].powi(2);
                }
                gx[i] = v;
            }
            for i in 0..d {
                grad[k * d + i] += scale * gx[i];
            }
            let dsig: f64 = (0..d).map(|i| gx[i] * z[i]).sum();
            grad[sigma_off + k] += scale * dsig * sig[k];
            if estimator == Estimator::Full {
                for l in 0..kc {
                    let s2 = sig[l].powi(2);
                    let mut dist = 0.0;
                    for i in 0..d {
                        let diff = x[i] - mu[l][i];
                        grad[l * d + i] += scale * resp[l] * diff / s2;
                        dist += diff * diff;
                    }
                    grad[sigma_off + l] += scale * resp[l] * (-dn + dist / s2);
                    grad[logit_off + l] += scale * (resp[l] - w[l]);
                }
            }
        }
    }
    let loss: f64 = (0..kc).map(|k| w[k] * fbar[k]).sum();
    let off = logit_off;
    if q.trainable_weights() {
        for j in 0..kc {
            grad[off + j] += w[j] * (fbar[j] - loss);
        }
    } else {
        grad[off..off + kc].iter_mut().for_each(|g| *g = 0.0);
    }
    Ok(loss)
}

fn log_sum_exp(t: &[f64]) -> f64 {
    let m = t.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + t.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// The axis of the recorded statistics m_k = μ_k·u: the direction of the first mode, else e_1.
fn axis(target: &PyTarget) -> Vec<f64> {
    let d = target.dim;
    let mut u = vec![0.0; d];
    if let Some(m) = target.modes.as_ref().and_then(|m| m.first()) {
        let n = m.iter().map(|v| v * v).sum::<f64>().sqrt();
        if n > 0.0 {
            for i in 0..d {
                u[i] = m[i] / n;
            }
            return u;
        }
    }
    u[0] = 1.0;
    u
}

fn nearest(x: &[f64], modes: &[Vec<f64>]) -> usize {
    let mut best = (f64::INFINITY, 0);
    for (j, m) in modes.iter().enumerate() {
        let d2: f64 = x.iter().zip(m).map(|(a, b)| (a - b) * (a - b)).sum();
        if d2 < best.0 {
            best = (d2, j);
        }
    }
    best.1
}

/// Outcome and per-mode masses of a finite student: each component belongs to its nearest mode
/// (covered / collapsed / partial, as the library's mixture targets); the mass of q on each
/// mode's cell (nearest-centre) is estimated from `samples` draws of `eval`. Without modes the
/// outcome is "covered"-less: "unknown".
fn classify(
    q: &GmmStudent,
    target: &PyTarget,
    samples: usize,
    eval: &mut dyn rand::RngCore,
) -> (Option<Outcome>, Vec<f64>) {
    let Some(modes) = target.modes.as_ref() else {
        return (None, Vec::new());
    };
    let assigned: Vec<usize> = (0..q.components())
        .map(|k| nearest(q.mean(k), modes))
        .collect();
    let mut covered = vec![false; modes.len()];
    for &m in &assigned {
        covered[m] = true;
    }
    let n = covered.iter().filter(|c| **c).count();
    let outcome = if n == modes.len() {
        Outcome::Covered
    } else if n == 1 {
        Outcome::Collapsed {
            mode: assigned[0],
            mode_name: format!("mode {}", assigned[0]),
        }
    } else {
        Outcome::Partial { modes_covered: n }
    };
    let mut counts = vec![0usize; modes.len()];
    let mut x = vec![0.0; target.dim];
    for _ in 0..samples {
        q.sample(eval, &mut x);
        counts[nearest(&x, modes)] += 1;
    }
    let masses = counts
        .iter()
        .map(|&c| c as f64 / samples.max(1) as f64)
        .collect();
    (Some(outcome), masses)
}

/// The end of a run against a user target.
pub struct CallableResult {
    /// Outcome (None without modes).
    pub outcome: Option<Outcome>,
    /// Step reached.
    pub final_step: usize,
    /// Mass of q on each mode (empty without modes).
    pub mode_masses: Vec<f64>,
    /// Final student.
    pub student: GmmStudent,
    /// Records (every `record.every` steps).
    pub records: Vec<Record>,
}

/// One run of `cfg` against `target` with streams (seed, init_run, Init) for the initial
/// student, (seed, noise_run, Sgd) for the noise and (seed, noise_run, Eval) for the mode
/// masses — the loop of [`annealvi::train::train`] for the Gaussian-mixture student.
pub fn run_gmm(
    cfg: &Config,
    target: &PyTarget,
    (init_run, noise_run): (u64, u64),
    cancel: &AtomicBool,
) -> PyResult<CallableResult> {
    let settings = TrainSettings::from_config(cfg);
    refuse_exact(&settings)?;
    let mut init = stream(cfg.seed, init_run, Purpose::Init);
    let mut q = cfg.init_student(&mut init);
    let schedule = cfg.build_schedule();
    let mut opt = cfg.build_optimizer();
    let mut rng = stream(cfg.seed, noise_run, Purpose::Sgd);
    let mut eval = stream(cfg.seed, noise_run, Purpose::Eval);
    let groups = q.groups();
    let mut grad = vec![0.0; q.params().len()];
    let mut buf = Batch::default();
    let u = axis(target);
    let mut records = Vec::new();
    let t_end = settings.steps;
    let mut diverged_at = None;
    for step in 0..=t_end {
        if cancel.load(Ordering::Relaxed) {
            return Err(crate::interrupted());
        }
        let beta = schedule.beta(step as f64);
        let due = settings.record_every > 0 && (step % settings.record_every == 0 || step == t_end);
        let record = |loss: f64, q: &GmmStudent| Record {
            step,
            beta,
            loss,
            kl: f64::NAN,
            neg_elbo: loss,
            stats: q.stats(&u),
        };
        if step == t_end {
            if due {
                records.push(record(f64::NAN, &q));
            }
            break;
        }
        let loss = batched_gradient(
            &q,
            target,
            beta,
            settings.estimator,
            settings.samples,
            &mut rng,
            &mut buf,
            &mut grad,
        )?;
        if due {
            records.push(record(loss, &q));
        }
        if !loss.is_finite() || grad.iter().any(|g| !g.is_finite()) {
            diverged_at = Some(step);
            break;
        }
        if settings.loss_scale != 1.0 {
            grad.iter_mut().for_each(|g| *g *= settings.loss_scale);
        }
        opt.step(q.params_mut(), &grad, &groups);
        if !q.is_finite() {
            diverged_at = Some(step + 1);
            break;
        }
    }
    let (outcome, mode_masses, final_step) = match diverged_at {
        Some(s) => (Some(Outcome::Diverged { step: s }), Vec::new(), s),
        None => {
            let (o, m) = classify(&q, target, settings.outcome_samples, &mut eval);
            (o, m, t_end)
        }
    };
    Ok(CallableResult {
        outcome,
        final_step,
        mode_masses,
        student: q,
        records,
    })
}

/// The end of a flow run against a user target.
pub struct FlowCallableResult {
    /// Outcome (None without modes).
    pub outcome: Option<Outcome>,
    /// Step reached.
    pub final_step: usize,
    /// Final Monte-Carlo statistics (all NaN for a diverged run).
    pub stats: FlowStats,
    /// Records (every `record.every` steps).
    pub records: Vec<Record<FlowStats>>,
}

/// One run of the RealNVP student of `cfg` against `target`: the loop of
/// [`annealvi::train::train`] for flows with the same streams — weights from (seed, init_run,
/// Init), noise from (seed, noise_run, Sgd), the records' estimates from
/// [`record_stream`] and the final evaluation from (seed, noise_run, Eval) — the target
/// evaluated once per batch through [`RealNvp::loss_and_grad_batched`] and
/// [`RealNvp::evaluate_batched`].
pub fn run_flow(
    cfg: &Config,
    target: &PyTarget,
    (init_run, noise_run): (u64, u64),
    cancel: &AtomicBool,
) -> PyResult<FlowCallableResult> {
    let settings = TrainSettings::from_config(cfg);
    refuse_exact(&settings)?;
    let mut init = stream(cfg.seed, init_run, Purpose::Init);
    let mut q: RealNvp = cfg.init_flow(&mut init).map_err(to_py)?;
    let schedule = cfg.build_schedule();
    let mut opt = cfg.build_optimizer();
    let mut rng = stream(cfg.seed, noise_run, Purpose::Sgd);
    let mut eval = stream(cfg.seed, noise_run, Purpose::Eval);
    let mut record_rng = record_stream(&eval);
    let groups = q.groups();
    let mut grad = vec![0.0; q.params().len()];
    let mut eps = Vec::new();
    let d = target.dim;
    let modes = target.modes.clone().unwrap_or_default();
    let mut f = |x: &[f64], lp: &mut [f64], g: &mut [f64]| target.eval(x, x.len() / d, lp, g);
    let mut records = Vec::new();
    let t_end = settings.steps;
    let mut diverged_at = None;
    for step in 0..=t_end {
        if cancel.load(Ordering::Relaxed) {
            return Err(crate::interrupted());
        }
        let beta = schedule.beta(step as f64);
        let due = settings.record_every > 0 && (step % settings.record_every == 0 || step == t_end);
        let mut record = |q: &mut RealNvp, f: &mut BatchTarget<PyErr>, loss: f64| -> PyResult<()> {
            let st = q.evaluate_batched(
                f,
                &modes,
                beta,
                settings.kl_samples,
                settings.collapse_threshold,
                &mut record_rng,
            )?;
            records.push(Record {
                step,
                beta,
                loss,
                kl: st.kl,
                neg_elbo: st.neg_elbo,
                stats: st,
            });
            Ok(())
        };
        if step == t_end {
            if due {
                record(&mut q, &mut f, f64::NAN)?;
            }
            break;
        }
        let loss = q.loss_and_grad_batched(
            &mut f,
            beta,
            settings.estimator,
            settings.samples,
            &mut rng,
            &mut eps,
            &mut grad,
        )?;
        if due {
            record(&mut q, &mut f, loss)?;
        }
        if !loss.is_finite() || !q.update(opt.as_mut(), &mut grad, &groups, settings.loss_scale) {
            diverged_at = Some(step);
            break;
        }
        if !q.params_finite() {
            diverged_at = Some(step + 1);
            break;
        }
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(crate::interrupted());
    }
    let (outcome, final_step, stats) = match diverged_at {
        Some(s) => (Some(Outcome::Diverged { step: s }), s, FlowStats::nan()),
        None => {
            let st = q.evaluate_batched(
                &mut f,
                &modes,
                1.0,
                settings.outcome_samples,
                settings.collapse_threshold,
                &mut eval,
            )?;
            let outcome = (!modes.is_empty()).then(|| st.outcome_named(|m| format!("mode {m}")));
            (outcome, t_end, st)
        }
    };
    Ok(FlowCallableResult {
        outcome,
        final_step,
        stats,
        records,
    })
}

fn refuse_exact(settings: &TrainSettings) -> PyResult<()> {
    if settings.estimator == Estimator::Exact {
        return Err(PyValueError::new_err(
            "invalid value for `objective.estimator`: \"exact\" (expected \"full\" or \"stl\" \
             with a user-defined target: exact gradients exist only for the built-in targets)",
        ));
    }
    Ok(())
}

fn is_flow(cfg: &Config) -> bool {
    cfg.student.family == annealvi::config::FamilyKind::Realnvp
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
    if is_flow(cfg) {
        return train_flow(py, cfg, run, &t);
    }
    let res = interruptible(py, |cancel| run_gmm(cfg, &t, (run, run), cancel))??;
    let summary = PyDict::new(py);
    summary.set_item("seed", cfg.seed)?;
    match &res.outcome {
        Some(o) => outcome_items(&summary, o)?,
        None => summary.set_item("outcome", "unknown")?,
    }
    summary.set_item("final_step", res.final_step)?;
    summary.set_item(
        "light_mode_mass",
        res.mode_masses
            .iter()
            .cloned()
            .fold(f64::NAN, |a: f64, b| if a.is_nan() { b } else { a.min(b) }),
    )?;
    summary.set_item(
        "mode_masses",
        PyArray1::from_vec(py, res.mode_masses.clone()),
    )?;
    gmm_summary(py, &summary, &res.student.stats(&axis(&t)))?;
    let traj = PyDict::new(py);
    gmm_columns(py, &traj, &res.records)?;
    let out = PyDict::new(py);
    out.set_item("summary", summary)?;
    out.set_item("trajectory", traj)?;
    Ok(out)
}

/// `annealvi.train` with a user target and the flow student: the summary and trajectory of the
/// built-in flow runs (`kl` and `mode_weight_error` NaN: the target's normaliser and mode
/// weights are unknown).
fn train_flow<'py>(
    py: Python<'py>,
    cfg: &Config,
    run: u64,
    t: &PyTarget,
) -> PyResult<Bound<'py, PyDict>> {
    let res = interruptible(py, |cancel| run_flow(cfg, t, (run, run), cancel))??;
    let summary = PyDict::new(py);
    summary.set_item("seed", cfg.seed)?;
    match &res.outcome {
        Some(o) => outcome_items(&summary, o)?,
        None => summary.set_item("outcome", "unknown")?,
    }
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
    flow_columns(py, &traj, &res.records)?;
    let out = PyDict::new(py);
    out.set_item("summary", summary)?;
    out.set_item("trajectory", traj)?;
    Ok(out)
}

/// `annealvi.sweep` with a user target: the library's sweep with each run trained by
/// [`run_gmm`] (same streams as the built-in runs). The first error of any run stops the sweep
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
            let line = if is_flow(&c) {
                run_flow(&c, &t, streams, cancel).map(|r| {
                    let res = RunResult {
                        outcome: r.outcome.unwrap_or(Outcome::Partial { modes_covered: 0 }),
                        final_step: r.final_step,
                        light_mode_mass: r.stats.light_mode_mass,
                        stats: (),
                    };
                    let wall = start.elapsed().as_secs_f64();
                    run_line(cell, spec.seed, res, None, Some(r.stats), wall)
                })
            } else {
                run_gmm(&c, &t, streams, cancel).map(|r| {
                    let light = r.mode_masses.iter().cloned().fold(f64::INFINITY, f64::min);
                    let res = RunResult {
                        outcome: r.outcome.unwrap_or(Outcome::Partial { modes_covered: 0 }),
                        final_step: r.final_step,
                        light_mode_mass: light,
                        stats: (),
                    };
                    run_line(
                        cell,
                        spec.seed,
                        res,
                        Some(r.student.stats(&axis(&t))),
                        None,
                        start.elapsed().as_secs_f64(),
                    )
                })
            };
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
    let t = PyTarget::from_py(py, &target)?;
    let mut cfg = Config::default();
    cfg.target.d = t.dim;
    cfg.target.r = r;
    cfg.target.w_star = w_star;
    cfg.student.trainable_weights = true;
    cfg.student.sigma0 = annealvi::config::NumberOr::Number(1.3);
    cfg.validate().map_err(to_py)?;
    let est = match estimator {
        "full" => Estimator::Full,
        "stl" => Estimator::Stl,
        o => {
            return Err(PyValueError::new_err(format!(
                "invalid value for `estimator`: {o:?} (expected \"full\" or \"stl\")"
            )));
        }
    };
    let mut init = stream(seed, 0, Purpose::Init);
    let q = cfg.init_student(&mut init);
    let n = q.params().len();
    let (mut g1, mut g2) = (vec![0.0; n], vec![0.0; n]);
    let mut r1 = stream(seed, 0, Purpose::Sgd);
    let mut r2 = stream(seed, 0, Purpose::Sgd);
    let l1 = batched_gradient(
        &q,
        &t,
        beta,
        est,
        samples,
        &mut r1,
        &mut Batch::default(),
        &mut g1,
    )?;
    let target = cfg.build_target();
    let mut ws = annealvi::objective::McWorkspace::default();
    let l2 = annealvi::objective::mc_gradient(
        &q, &target, beta, est, samples, &mut r2, &mut ws, &mut g2,
    );
    Ok((
        l1,
        PyArray1::from_vec(py, g1),
        l2,
        PyArray1::from_vec(py, g2),
    ))
}
