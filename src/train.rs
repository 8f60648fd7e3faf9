//! The training loop: SGD on F_β(t) = KL(q_θ ‖ π_β(t)) with an observer.
//!
//! At step t = 0, 1, …, T−1: β = β(t); estimate ∇_θ F_β (Monte Carlo or exact); record if due;
//! apply the optimiser. The state after the last update is recorded as step T. A non-finite
//! loss, gradient or parameter ends the run with [`Outcome::Diverged`] at that step — never a
//! panic.
//!
//! The loop is generic over [`Student`], the training-side view of a variational family: the
//! Gaussian-mixture student ([`GmmStudent`]) and the RealNVP flow ([`RealNvp`]) run through the
//! same code (targets, schedules, optimisers, observers, outcomes).

use crate::config::{Config, LossScale};
use crate::family::gmm::Stats;
use crate::family::realnvp::FlowStats;
use crate::family::{GmmStudent, ParamGroup, RealNvp, VariationalFamily};
use crate::metrics::{Outcome, classify, light_mode_mass};
use crate::objective::{Estimator, ExactObjective, McWorkspace, mc_gradient};
use crate::optim::Optimizer;
use crate::schedule::Schedule;
use crate::seed::Stream;
use crate::target::{IsotropicMixture, LogDensity};
use rand::Rng;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};

/// One row of the trajectory (`St`: the student's summary statistics).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record<St = Stats> {
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
    pub stats: St,
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
    /// A trajectory record (Gaussian-mixture student).
    fn on_record(&mut self, _record: &Record) {}
    /// A trajectory record of a flow student.
    fn on_flow_record(&mut self, _record: &Record<FlowStats>) {}
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
    /// Flow trajectory records, in step order.
    pub flow_records: Vec<Record<FlowStats>>,
    /// Marginal snapshots, in step order.
    pub marginals: Vec<MarginalSnapshot>,
}

impl Observer for Recorder {
    fn on_record(&mut self, r: &Record) {
        self.records.push(r.clone());
    }
    fn on_flow_record(&mut self, r: &Record<FlowStats>) {
        self.flow_records.push(r.clone());
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
    /// Samples for Monte-Carlo outcomes (flows): light-mode mass, ESS, KL.
    pub outcome_samples: usize,
    /// A Monte-Carlo outcome is a collapse when a mode's estimated mass is below this.
    pub collapse_threshold: f64,
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
            outcome_samples: c.student.realnvp.eval_samples,
            collapse_threshold: c.student.realnvp.collapse_threshold,
        }
    }
}

/// The end of a run (`St`: the student's summary statistics).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RunResult<St = Stats> {
    /// How it ended.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// The last step reached (T, or the divergence step).
    pub final_step: usize,
    /// Student mass on the lighter mode.
    pub light_mode_mass: f64,
    /// Final summary statistics (relative to μ̂).
    pub stats: St,
}

impl<St> RunResult<St> {
    /// A run that diverged at `step` (light-mode mass NaN), with its last statistics.
    pub fn diverged(step: usize, stats: St) -> Self {
        RunResult {
            outcome: Outcome::Diverged { step },
            final_step: step,
            light_mode_mass: f64::NAN,
            stats,
        }
    }
}

/// The training-side view of a variational family: what [`train`] needs besides the flat
/// parameter vector of [`VariationalFamily`].
pub trait Student: VariationalFamily + Sized {
    /// Reusable per-run state (buffers, exact objective).
    type Workspace;
    /// Summary statistics of records and results.
    type Stats: Clone + std::fmt::Debug + PartialEq + Serialize;
    /// A workspace for training against `target` with `settings`.
    fn workspace(&self, target: &IsotropicMixture, settings: &TrainSettings) -> Self::Workspace;
    /// The loss estimate E[ln q − β ln π] (nats; NaN when it cannot be computed) and its
    /// gradient w.r.t. θ into `grad`.
    ///
    /// With `want_loss` false the caller only needs to know whether the loss is finite: an
    /// implementation may then skip the work that only the loss's value needs and return 0
    /// in its place, or NaN where a per-sample term of the loss is not finite. The gradient
    /// is the same either way.
    #[allow(clippy::too_many_arguments)]
    fn loss_and_grad<R: Rng + ?Sized>(
        &mut self,
        ws: &mut Self::Workspace,
        target: &IsotropicMixture,
        beta: f64,
        settings: &TrainSettings,
        want_loss: bool,
        rng: &mut R,
        grad: &mut [f64],
    ) -> f64;
    /// Applies `opt` to θ with the gradient of the last [`Self::loss_and_grad`] call (left in
    /// `grad`), scaled by `scale`. Returns false, leaving θ untouched, when that gradient is
    /// not finite. The default checks `grad`, scales it and calls [`Optimizer::step`]; a
    /// family may keep its gradient elsewhere and fuse the passes (the f32 RealNVP engine).
    fn update(
        &mut self,
        opt: &mut dyn Optimizer,
        grad: &mut [f64],
        groups: &[ParamGroup],
        scale: f64,
    ) -> bool {
        plain_update(self, opt, grad, groups, scale)
    }
    /// Whether every parameter is finite.
    fn params_finite(&self) -> bool;
    /// A trajectory record, sent to `observer`.
    #[allow(clippy::too_many_arguments)]
    fn record<R: Rng + ?Sized>(
        &mut self,
        ws: &mut Self::Workspace,
        target: &IsotropicMixture,
        beta: f64,
        step: usize,
        loss: f64,
        settings: &TrainSettings,
        eval_rng: &mut R,
        observer: &mut dyn Observer,
    );
    /// Marginal densities along μ̂, where the family has them in closed form.
    fn marginal(
        &self,
        target: &IsotropicMixture,
        beta: f64,
        step: usize,
        grid: (f64, usize),
    ) -> Option<MarginalSnapshot>;
    /// The run's result after `step` steps (diverged or not).
    fn finish<R: Rng + ?Sized>(
        &mut self,
        target: &IsotropicMixture,
        step: usize,
        diverged: bool,
        settings: &TrainSettings,
        eval_rng: &mut R,
    ) -> RunResult<Self::Stats>;
}

/// [`Student::update`]'s default: refuse a non-finite gradient, scale it, [`Optimizer::step`].
fn plain_update<S: VariationalFamily>(
    q: &mut S,
    opt: &mut dyn Optimizer,
    grad: &mut [f64],
    groups: &[ParamGroup],
    scale: f64,
) -> bool {
    if grad.iter().any(|g| !g.is_finite()) {
        return false;
    }
    if scale != 1.0 {
        grad.iter_mut().for_each(|g| *g *= scale);
    }
    opt.step(q.params_mut(), grad, groups);
    true
}

/// Workspace of the Gaussian-mixture student.
pub struct GmmWorkspace {
    exact: Option<ExactObjective>,
    mc: McWorkspace,
}

impl Student for GmmStudent {
    type Workspace = GmmWorkspace;
    type Stats = Stats;

    fn workspace(&self, target: &IsotropicMixture, settings: &TrainSettings) -> GmmWorkspace {
        let exact = if settings.estimator == Estimator::Exact
            || (target.as_bimodal().is_some()
                && self.components() <= 2
                && settings.record_every > 0)
        {
            Some(ExactObjective::new(target.dim()))
        } else {
            None
        };
        GmmWorkspace {
            exact,
            mc: McWorkspace::default(),
        }
    }

    fn loss_and_grad<R: Rng + ?Sized>(
        &mut self,
        ws: &mut GmmWorkspace,
        target: &IsotropicMixture,
        beta: f64,
        settings: &TrainSettings,
        _want_loss: bool,
        rng: &mut R,
        grad: &mut [f64],
    ) -> f64 {
        match settings.estimator {
            Estimator::Exact => match ws.exact.as_ref().map(|e| e.evaluate(self, target, beta)) {
                Some(Ok(v)) => {
                    grad.copy_from_slice(&v.grad);
                    v.neg_elbo
                }
                _ => f64::NAN,
            },
            est => mc_gradient(
                self,
                target,
                beta,
                est,
                settings.samples,
                rng,
                &mut ws.mc,
                grad,
            ),
        }
    }

    fn params_finite(&self) -> bool {
        self.is_finite()
    }

    fn record<R: Rng + ?Sized>(
        &mut self,
        ws: &mut GmmWorkspace,
        target: &IsotropicMixture,
        beta: f64,
        step: usize,
        loss: f64,
        settings: &TrainSettings,
        eval_rng: &mut R,
        observer: &mut dyn Observer,
    ) {
        let rec = record(
            self,
            target,
            beta,
            step,
            loss,
            ws.exact.as_ref(),
            settings.kl_samples,
            eval_rng,
        );
        observer.on_record(&rec);
    }

    fn marginal(
        &self,
        target: &IsotropicMixture,
        beta: f64,
        step: usize,
        grid: (f64, usize),
    ) -> Option<MarginalSnapshot> {
        Some(marginal_snapshot(self, target, beta, step, grid))
    }

    fn finish<R: Rng + ?Sized>(
        &mut self,
        target: &IsotropicMixture,
        step: usize,
        diverged: bool,
        _settings: &TrainSettings,
        _eval_rng: &mut R,
    ) -> RunResult {
        finish(self, target, step, diverged)
    }
}

/// Workspace of the flow student: the noise buffer.
pub struct FlowWorkspace {
    eps: Vec<f64>,
}

impl Student for RealNvp {
    type Workspace = FlowWorkspace;
    type Stats = FlowStats;

    fn workspace(&self, _target: &IsotropicMixture, _settings: &TrainSettings) -> FlowWorkspace {
        FlowWorkspace { eps: Vec::new() }
    }

    fn loss_and_grad<R: Rng + ?Sized>(
        &mut self,
        ws: &mut FlowWorkspace,
        target: &IsotropicMixture,
        beta: f64,
        settings: &TrainSettings,
        _want_loss: bool,
        rng: &mut R,
        grad: &mut [f64],
    ) -> f64 {
        self.loss_and_grad_deferred(
            target,
            beta,
            settings.estimator,
            settings.samples,
            rng,
            &mut ws.eps,
            grad,
        )
    }

    fn update(
        &mut self,
        opt: &mut dyn Optimizer,
        grad: &mut [f64],
        groups: &[ParamGroup],
        scale: f64,
    ) -> bool {
        self.fused_update(opt, groups, scale)
            .unwrap_or_else(|| plain_update(self, opt, grad, groups, scale))
    }

    fn params_finite(&self) -> bool {
        self.is_finite()
    }

    fn record<R: Rng + ?Sized>(
        &mut self,
        _ws: &mut FlowWorkspace,
        target: &IsotropicMixture,
        beta: f64,
        step: usize,
        loss: f64,
        settings: &TrainSettings,
        eval_rng: &mut R,
        observer: &mut dyn Observer,
    ) {
        let st = self.evaluate(
            target,
            beta,
            settings.kl_samples,
            settings.collapse_threshold,
            eval_rng,
        );
        observer.on_flow_record(&Record {
            step,
            beta,
            loss,
            kl: st.kl,
            neg_elbo: st.neg_elbo,
            stats: st,
        });
    }

    fn marginal(
        &self,
        _target: &IsotropicMixture,
        _beta: f64,
        _step: usize,
        _grid: (f64, usize),
    ) -> Option<MarginalSnapshot> {
        None
    }

    fn finish<R: Rng + ?Sized>(
        &mut self,
        target: &IsotropicMixture,
        step: usize,
        diverged: bool,
        settings: &TrainSettings,
        eval_rng: &mut R,
    ) -> RunResult<FlowStats> {
        if diverged || !self.is_finite() {
            return RunResult::diverged(step, FlowStats::nan());
        }
        let st = self.evaluate(
            target,
            1.0,
            settings.outcome_samples,
            settings.collapse_threshold,
            eval_rng,
        );
        RunResult {
            outcome: st.outcome(target),
            final_step: step,
            light_mode_mass: st.light_mode_mass,
            stats: st,
        }
    }
}

/// The stream of the records' Monte-Carlo estimates in [`train`]: seeded from a copy of
/// `eval_rng` (which is not advanced), so that recording changes neither the training
/// trajectory nor the final evaluation. For loops that mirror [`train`] with other targets.
pub fn record_stream<R: Rng + Clone>(eval_rng: &R) -> Stream {
    use rand::SeedableRng;
    Stream::seed_from_u64(eval_rng.clone().next_u64() ^ 0x7265_636f_7264_7321)
}

/// Runs SGD from the student's current state. `rng` supplies the reparametrisation noise and
/// `eval_rng` the Monte-Carlo estimate of the outcome; records draw from a stream seeded from
/// a copy of `eval_rng` (all kept apart, so that recording changes neither the training
/// trajectory nor the final evaluation).
#[allow(clippy::too_many_arguments)]
pub fn train<S: Student, R: Rng + Clone>(
    q: &mut S,
    target: &IsotropicMixture,
    schedule: &dyn Schedule,
    opt: &mut dyn Optimizer,
    settings: &TrainSettings,
    rng: &mut R,
    eval_rng: &mut R,
    observer: &mut dyn Observer,
) -> RunResult<S::Stats> {
    let never = AtomicBool::new(false);
    match train_cancellable(
        q, target, schedule, opt, settings, rng, eval_rng, observer, &never,
    ) {
        Some(r) => r,
        None => unreachable!("a flag nobody sets cancels nothing"),
    }
}

/// [`train`] that stops once `cancel` is set (e.g. from another thread on Ctrl-C): the flag
/// is read before every step and before the final evaluation; a stopped run returns `None`,
/// leaving the student at its last update. Without cancellation the result is [`train`]'s,
/// bit for bit.
#[allow(clippy::too_many_arguments)]
pub fn train_cancellable<S: Student, R: Rng + Clone>(
    q: &mut S,
    target: &IsotropicMixture,
    schedule: &dyn Schedule,
    opt: &mut dyn Optimizer,
    settings: &TrainSettings,
    rng: &mut R,
    eval_rng: &mut R,
    observer: &mut dyn Observer,
    cancel: &AtomicBool,
) -> Option<RunResult<S::Stats>> {
    let mut ws = q.workspace(target, settings);
    let mut record_rng = record_stream(eval_rng);
    let groups = q.groups();
    let mut grad = vec![0.0; q.params().len()];
    let t_end = settings.steps;
    for step in 0..=t_end {
        if cancel.load(Ordering::Relaxed) {
            return None;
        }
        let beta = schedule.beta(step as f64);
        if settings.marginal_steps.contains(&step)
            && let Some(m) = q.marginal(target, beta, step, settings.marginal_grid)
        {
            observer.on_marginal(&m);
        }
        let due = settings.record_every > 0 && (step % settings.record_every == 0 || step == t_end);
        if step == t_end {
            if due {
                q.record(
                    &mut ws,
                    target,
                    beta,
                    step,
                    f64::NAN,
                    settings,
                    &mut record_rng,
                    observer,
                );
            }
            break;
        }
        let loss = q.loss_and_grad(&mut ws, target, beta, settings, due, rng, &mut grad);
        if due {
            q.record(
                &mut ws,
                target,
                beta,
                step,
                loss,
                settings,
                &mut record_rng,
                observer,
            );
        }
        if !loss.is_finite() || !q.update(opt, &mut grad, &groups, settings.loss_scale) {
            return Some(q.finish(target, step, true, settings, eval_rng));
        }
        if !q.params_finite() {
            return Some(q.finish(target, step + 1, true, settings, eval_rng));
        }
    }
    if cancel.load(Ordering::Relaxed) {
        return None;
    }
    Some(q.finish(target, t_end, false, settings, eval_rng))
}

fn finish(q: &GmmStudent, target: &IsotropicMixture, step: usize, diverged: bool) -> RunResult {
    let stats = q.stats(target.axis());
    if diverged {
        RunResult::diverged(step, stats)
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
