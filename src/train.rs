//! The training loop: SGD on F_β(t) = KL(q_θ ‖ π_β(t)) with an observer.
//!
//! At step t = 0, 1, …, T−1: β = β(t); estimate ∇_θ F_β (Monte Carlo or exact); record if due;
//! apply the optimiser. The state after the last update is recorded as step T. A non-finite
//! loss, gradient or parameter ends the run with [`Outcome::Diverged`] at that step — never a
//! panic.

use crate::config::{Config, LossScale};
use crate::family::gmm::Stats;
use crate::family::{GmmStudent, VariationalFamily};
use crate::metrics::{Outcome, classify, light_mode_mass};
use crate::objective::{Estimator, ExactObjective, McWorkspace, mc_gradient};
use crate::optim::Optimizer;
use crate::schedule::Schedule;
use crate::seed::{Purpose, Stream, stream};
use crate::target::{IsotropicMixture, LogDensity};
use rand::Rng;
use serde::Serialize;

/// One row of the trajectory.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record {
    /// SGD step.
    pub step: usize,
    /// β(step).
    pub beta: f64,
    /// The training loss estimate at this step: Σ_k w_k E_k[ln q − β ln π] (nats).
    pub loss: f64,
    /// KL(q ‖ π) against the untempered target (exact where available, else Monte Carlo).
    pub kl: f64,
    /// −ELBO against the unnormalised tempered target: E_q[ln q − β ln π] = F_β − ln Z_β.
    pub neg_elbo: f64,
    /// Summary statistics.
    pub stats: Stats,
}

/// Densities along μ̂ at one step.
#[derive(Clone, Debug, PartialEq)]
pub struct MarginalSnapshot {
    /// SGD step.
    pub step: usize,
    /// β(step).
    pub beta: f64,
    /// Grid s = x·μ̂.
    pub s: Vec<f64>,
    /// Student marginal.
    pub q: Vec<f64>,
    /// Target marginal.
    pub target: Vec<f64>,
    /// Tempered target marginal (normalised), where computable.
    pub target_tempered: Option<Vec<f64>>,
}

/// Receives what the loop observes.
pub trait Observer {
    /// A trajectory record.
    fn on_record(&mut self, _record: &Record) {}
    /// A marginal snapshot.
    fn on_marginal(&mut self, _snapshot: &MarginalSnapshot) {}
}

/// An observer that ignores everything.
pub struct NoObserver;
impl Observer for NoObserver {}

/// An observer that keeps everything in memory.
#[derive(Default, Debug)]
pub struct Recorder {
    /// Trajectory records, in step order.
    pub records: Vec<Record>,
    /// Marginal snapshots, in step order.
    pub marginals: Vec<MarginalSnapshot>,
}

impl Observer for Recorder {
    fn on_record(&mut self, r: &Record) {
        self.records.push(r.clone());
    }
    fn on_marginal(&mut self, s: &MarginalSnapshot) {
        self.marginals.push(s.clone());
    }
}

/// What the loop needs beyond target, student, schedule and optimiser.
#[derive(Clone, Debug)]
pub struct TrainSettings {
    /// Number of SGD steps T.
    pub steps: usize,
    /// Gradient estimator.
    pub estimator: Estimator,
    /// Samples per component B.
    pub samples: usize,
    /// Multiplier on loss and gradient (1, or 1/d for `per_dim`).
    pub loss_scale: f64,
    /// Record every this many steps (0 = never, only the outcome).
    pub record_every: usize,
    /// Steps at which to snapshot marginals.
    pub marginal_steps: Vec<usize>,
    /// Marginal grid half-width and number of points.
    pub marginal_grid: (f64, usize),
    /// Monte-Carlo samples per component for KL estimates without an exact value.
    pub kl_samples: usize,
}

impl TrainSettings {
    /// Settings from a configuration.
    pub fn from_config(c: &Config) -> Self {
        Self {
            steps: c.optim.steps,
            estimator: c.objective.estimator,
            samples: c.objective.samples,
            loss_scale: match c.objective.loss_scale {
                LossScale::None => 1.0,
                LossScale::PerDim => 1.0 / c.target.d as f64,
            },
            record_every: c.record.every,
            marginal_steps: c.record.marginal_steps.clone(),
            marginal_grid: (c.record.marginal_range, c.record.marginal_points),
            kl_samples: c.record.kl_samples,
        }
    }
}

/// The end of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunResult {
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The last step reached (T, or the divergence step).
    pub final_step: usize,
    /// Student mass on the lighter mode.
    pub light_mode_mass: f64,
    /// Final summary statistics (relative to μ̂).
    pub stats: Stats,
}

/// Runs SGD from the student's current state. `rng` supplies the reparametrisation noise and
/// `eval_rng` the Monte-Carlo KL estimates of records (kept apart so that recording never
/// changes the training trajectory).
#[allow(clippy::too_many_arguments)]
pub fn train<R: Rng + ?Sized>(
    q: &mut GmmStudent,
    target: &IsotropicMixture,
    schedule: &dyn Schedule,
    opt: &mut dyn Optimizer,
    settings: &TrainSettings,
    rng: &mut R,
    eval_rng: &mut R,
    observer: &mut dyn Observer,
) -> RunResult {
    let exact = if settings.estimator == Estimator::Exact
        || (target.as_bimodal().is_some() && q.components() <= 2 && settings.record_every > 0)
    {
        Some(ExactObjective::new(target.dim()))
    } else {
        None
    };
    let groups = q.groups();
    let mut grad = vec![0.0; q.params().len()];
    let mut ws = McWorkspace::default();
    let t_end = settings.steps;
    for step in 0..=t_end {
        let beta = schedule.beta(step as f64);
        if settings.marginal_steps.contains(&step) {
            observer.on_marginal(&marginal_snapshot(
                q,
                target,
                beta,
                step,
                settings.marginal_grid,
            ));
        }
        let due = settings.record_every > 0 && (step % settings.record_every == 0 || step == t_end);
        if step == t_end {
            if due {
                let rec = record(
                    q,
                    target,
                    beta,
                    step,
                    f64::NAN,
                    exact.as_ref(),
                    settings.kl_samples,
                    eval_rng,
                );
                observer.on_record(&rec);
            }
            break;
        }
        let loss = match settings.estimator {
            Estimator::Exact => match exact.as_ref().map(|e| e.evaluate(q, target, beta)) {
                Some(Ok(v)) => {
                    grad.copy_from_slice(&v.grad);
                    v.neg_elbo
                }
                _ => f64::NAN,
            },
            est => mc_gradient(
                q,
                target,
                beta,
                est,
                settings.samples,
                rng,
                &mut ws,
                &mut grad,
            ),
        };
        if due {
            let rec = record(
                q,
                target,
                beta,
                step,
                loss,
                exact.as_ref(),
                settings.kl_samples,
                eval_rng,
            );
            observer.on_record(&rec);
        }
        if !loss.is_finite() || grad.iter().any(|g| !g.is_finite()) {
            return finish(q, target, step, true);
        }
        if settings.loss_scale != 1.0 {
            grad.iter_mut().for_each(|g| *g *= settings.loss_scale);
        }
        opt.step(q.params_mut(), &grad, &groups);
        if !q.is_finite() {
            return finish(q, target, step + 1, true);
        }
    }
    finish(q, target, t_end, false)
}

fn finish(q: &GmmStudent, target: &IsotropicMixture, step: usize, diverged: bool) -> RunResult {
    let stats = q.stats(target.axis());
    if diverged {
        RunResult {
            outcome: Outcome::Diverged { step },
            final_step: step,
            light_mode_mass: f64::NAN,
            stats,
        }
    } else {
        RunResult {
            outcome: classify(q, target),
            final_step: step,
            light_mode_mass: light_mode_mass(q, target),
            stats,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn record<R: Rng + ?Sized>(
    q: &GmmStudent,
    target: &IsotropicMixture,
    beta: f64,
    step: usize,
    loss: f64,
    exact: Option<&ExactObjective>,
    kl_samples: usize,
    eval_rng: &mut R,
) -> Record {
    let stats = q.stats(target.axis());
    let (kl, neg_elbo) = match (exact, target.as_bimodal()) {
        (Some(e), Some(b)) if q.components() <= 2 && q.is_finite() => {
            match ExactObjective::reduce(q, target.axis()) {
                Ok(st) => {
                    let v = e.evaluate_reduced(&st, b, beta);
                    (v.entropy_term - v.cross_term, v.neg_elbo)
                }
                Err(_) => (f64::NAN, f64::NAN),
            }
        }
        _ => mc_kl(q, target, beta, kl_samples, eval_rng),
    };
    Record {
        step,
        beta,
        loss,
        kl,
        neg_elbo,
        stats,
    }
}

/// Monte-Carlo (KL(q‖π), E_q[ln q − β ln π]) with `n` samples per component (stratified).
pub fn mc_kl<R: Rng + ?Sized>(
    q: &GmmStudent,
    target: &IsotropicMixture,
    beta: f64,
    n: usize,
    rng: &mut R,
) -> (f64, f64) {
    let d = target.dim();
    let w = q.weights();
    let mut z = vec![0.0; d];
    let (mut kl, mut ne) = (0.0, 0.0);
    for k in 0..q.components() {
        let (mut a, mut b) = (0.0, 0.0);
        for _ in 0..n {
            crate::family::fill_standard_normal(rng, &mut z);
            let s = q.sigma(k);
            for (zi, mi) in z.iter_mut().zip(q.mean(k)) {
                *zi = mi + s * *zi;
            }
            let lq = q.log_density(&z);
            let lp = target.log_density(&z);
            a += lq - lp;
            b += lq - beta * lp;
        }
        kl += w[k] * a / n as f64;
        ne += w[k] * b / n as f64;
    }
    (kl, ne)
}

/// Marginals of q, π and π_β along μ̂ on the grid [−range, range].
pub fn marginal_snapshot(
    q: &GmmStudent,
    target: &IsotropicMixture,
    beta: f64,
    step: usize,
    (range, n): (f64, usize),
) -> MarginalSnapshot {
    let axis = target.axis();
    let s: Vec<f64> = (0..n)
        .map(|i| -range + 2.0 * range * i as f64 / (n - 1) as f64)
        .collect();
    MarginalSnapshot {
        step,
        beta,
        q: s.iter().map(|&x| q.axis_density(axis, x)).collect(),
        target: s.iter().map(|&x| target.axis_density(axis, x)).collect(),
        target_tempered: target
            .as_bimodal()
            .map(|b| b.tempered_axis_densities(beta, &s)),
        s,
    }
}

/// A complete single run from a configuration: builds everything, draws the initial student
/// from stream (seed, run, Init) and the noise from (seed, run, Sgd).
pub fn run_config(cfg: &Config, run: u64, observer: &mut dyn Observer) -> (GmmStudent, RunResult) {
    run_with_streams(cfg, (run, run), observer)
}

/// Like [`run_config`], with separate stream indices for the initialisation and for the SGD
/// noise (sweeps share the initialisation of seed i across cells: common random numbers).
pub fn run_with_streams(
    cfg: &Config,
    (init_run, noise_run): (u64, u64),
    observer: &mut dyn Observer,
) -> (GmmStudent, RunResult) {
    let target = cfg.build_target();
    let schedule = cfg.build_schedule();
    let mut opt = cfg.build_optimizer();
    let mut init: Stream = stream(cfg.seed, init_run, Purpose::Init);
    let mut q = cfg.init_student(&mut init);
    let mut rng = stream(cfg.seed, noise_run, Purpose::Sgd);
    let mut eval = stream(cfg.seed, noise_run, Purpose::Eval);
    let settings = TrainSettings::from_config(cfg);
    let res = train(
        &mut q,
        &target,
        schedule.as_ref(),
        opt.as_mut(),
        &settings,
        &mut rng,
        &mut eval,
        observer,
    );
    (q, res)
}
