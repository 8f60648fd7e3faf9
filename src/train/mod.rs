//! The training loop: SGD on F_β(t) = KL(q_θ ‖ π_β(t)) with an observer.
//!
//! At step t = 0, 1, …, T−1: β = β(t); estimate ∇_θ F_β (Monte Carlo or exact); record if due;
//! apply the optimiser. The state after the last update is recorded as step T.
//!
//! **Divergence.** A run ends with [`Outcome::Diverged`] (never a panic, never a collapse or a
//! coverage) at step t when the loss or the gradient of step t is not finite, and at step t + 1
//! when the update of step t leaves the student *out of bounds*: a parameter not finite, or
//! larger than [`TrainSettings::divergence_bound`] (`optim.divergence_bound`, default 10⁶) — for
//! the Gaussian-mixture student a mean's norm ‖μ_k‖ (the same rule in both engines, as the
//! norm does not depend on the basis), for the flow a parameter's magnitude |θ_i|.
//!
//! The loop ([`train_with`]) is generic over [`Student`], the training-side view of a
//! variational family, and over where the target's values come from ([`TrainTarget`]): the
//! Gaussian-mixture student ([`GmmStudent`](crate::family::GmmStudent)), the RealNVP flow
//! ([`RealNvp`](crate::family::RealNvp)) and the statistics engine run through the same code
//! (schedules, optimisers, observers, outcomes, random streams) against the built-in mixtures
//! ([`IsotropicMixture`]) or against a target evaluated outside the library ([`External`],
//! e.g. a Python callable).
//!
//! Files: this one holds the loop, its traits and its records; `builtin` the students against
//! the built-in mixtures; `external` the students against an external target.

mod builtin;
mod external;

pub use builtin::{FlowWorkspace, GmmWorkspace, marginal_snapshot, mc_kl};
pub(crate) use builtin::{exact_kl, gmm_result, marginal_along};
pub use external::{External, ExternalTarget};

use crate::family::gmm::Stats;
use crate::family::realnvp::FlowStats;
use crate::family::{ParamGroup, VariationalFamily};
use crate::metrics::Outcome;
use crate::objective::Estimator;
use crate::optim::Optimizer;
use crate::schedule::Annealer;
use crate::seed::Stream;
use crate::target::IsotropicMixture;
use rand::Rng;
use serde::Serialize;
use std::any::Any;
use std::sync::atomic::{AtomicBool, Ordering};

/// One row of the trajectory (`St`: the student's summary statistics).
///
/// Observers receive it as `Record<dyn RecordStats>` (whatever the family), with
/// [`Record::columns`] as flat named columns and [`Record::typed`] to get the family's own
/// record back.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Record<St: ?Sized = Stats> {
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

/// The summary statistics a family's records carry, as flat named columns (one number per
/// column, the same names and order at every step of a run): what an observer needs to store
/// or print a record without knowing the family.
///
/// Names: the Gaussian-mixture student's [`Stats`] give `m_k` = μ_k·μ̂, `q_kl` = μ_k·μ_l
/// (k ≤ l), `sigma_k`, `w_k` (k, l = 1…K); the flow's [`FlowStats`] give `light_mode_mass`,
/// `mode_weight_error`, `ess_fraction` and `mode_mass_j` (j = 1…J, the target's modes).
pub trait RecordStats: Any + std::fmt::Debug {
    /// The columns (name, value), in a fixed order.
    fn columns(&self) -> Vec<(String, f64)>;
}

impl RecordStats for Stats {
    fn columns(&self) -> Vec<(String, f64)> {
        let k = self.m.len();
        let mut out = Vec::with_capacity(k * (k + 7) / 2);
        for (i, m) in self.m.iter().enumerate() {
            out.push((format!("m_{}", i + 1), *m));
        }
        let mut q = self.q.iter();
        for i in 1..=k {
            for j in i..=k {
                out.push((format!("q_{i}{j}"), q.next().copied().unwrap_or(f64::NAN)));
            }
        }
        for (i, s) in self.sigma.iter().enumerate() {
            out.push((format!("sigma_{}", i + 1), *s));
        }
        for (i, w) in self.w.iter().enumerate() {
            out.push((format!("w_{}", i + 1), *w));
        }
        out
    }
}

impl RecordStats for FlowStats {
    fn columns(&self) -> Vec<(String, f64)> {
        let mut out = vec![
            ("light_mode_mass".to_string(), self.light_mode_mass),
            ("mode_weight_error".to_string(), self.mode_weight_error),
            ("ess_fraction".to_string(), self.ess_fraction),
        ];
        for (j, m) in self.mode_masses.iter().enumerate() {
            out.push((format!("mode_mass_{}", j + 1), *m));
        }
        out
    }
}

impl Record<dyn RecordStats> {
    /// The record as flat named columns: `step`, `beta`, `loss`, `kl`, `neg_elbo`, then the
    /// statistics' [`RecordStats::columns`].
    pub fn columns(&self) -> Vec<(String, f64)> {
        let mut out = vec![
            ("step".to_string(), self.step as f64),
            ("beta".to_string(), self.beta),
            ("loss".to_string(), self.loss),
            ("kl".to_string(), self.kl),
            ("neg_elbo".to_string(), self.neg_elbo),
        ];
        out.extend(self.stats.columns());
        out
    }

    /// The record with its statistics of type `St` (a copy), or `None` when the run's family
    /// records another type (e.g. `St = Stats` in a flow run).
    pub fn typed<St: RecordStats + Clone>(&self) -> Option<Record<St>> {
        let stats: &dyn Any = &self.stats;
        stats.downcast_ref::<St>().map(|st| Record {
            step: self.step,
            beta: self.beta,
            loss: self.loss,
            kl: self.kl,
            neg_elbo: self.neg_elbo,
            stats: st.clone(),
        })
    }
}

/// Receives what the loop observes. One method per kind of event, whatever the family: a
/// family's records arrive as `Record<dyn RecordStats>` (flat columns, or the typed record
/// through [`Record::typed`]), so adding a family changes no observer.
pub trait Observer {
    /// A trajectory record.
    fn on_record(&mut self, _record: &Record<dyn RecordStats>) {}
    /// A marginal snapshot.
    fn on_marginal(&mut self, _snapshot: &MarginalSnapshot) {}
    /// An adaptive schedule ([`crate::schedule::Adaptive`]) reached β = 1 at SGD step `step`
    /// (sent once; never for a schedule β(t), whose end is known beforehand).
    fn on_annealed(&mut self, _step: usize) {}
}

/// The step at which an adaptive schedule reached β = 1 (`None` until it does, and for a
/// schedule β(t)): an observer to pair with others, e.g. `(recorder, AnnealedAt::default())`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnnealedAt(pub Option<usize>);

impl Observer for AnnealedAt {
    fn on_annealed(&mut self, step: usize) {
        self.0 = Some(step);
    }
}

/// An observer that ignores everything.
pub struct NoObserver;
impl Observer for NoObserver {}

impl<O: Observer + ?Sized> Observer for &mut O {
    fn on_record(&mut self, r: &Record<dyn RecordStats>) {
        (**self).on_record(r);
    }
    fn on_marginal(&mut self, s: &MarginalSnapshot) {
        (**self).on_marginal(s);
    }
    fn on_annealed(&mut self, step: usize) {
        (**self).on_annealed(step);
    }
}

/// Both observers see every event (the first, then the second): e.g. a [`Recorder`] of each
/// family when the family is not known beforehand.
impl<A: Observer, B: Observer> Observer for (A, B) {
    fn on_record(&mut self, r: &Record<dyn RecordStats>) {
        self.0.on_record(r);
        self.1.on_record(r);
    }
    fn on_marginal(&mut self, s: &MarginalSnapshot) {
        self.0.on_marginal(s);
        self.1.on_marginal(s);
    }
    fn on_annealed(&mut self, step: usize) {
        self.0.on_annealed(step);
        self.1.on_annealed(step);
    }
}

/// An observer that keeps in memory the records whose statistics are of type `St` (records
/// of other families are counted in `other_records`, not kept) and every marginal snapshot:
/// [`Recorder`] for the Gaussian-mixture student, [`FlowRecorder`] for flows.
#[derive(Debug)]
pub struct TypedRecorder<St> {
    /// Trajectory records, in step order.
    pub records: Vec<Record<St>>,
    /// Marginal snapshots, in step order.
    pub marginals: Vec<MarginalSnapshot>,
    /// Records of another statistics type, not kept.
    pub other_records: usize,
}

/// The Gaussian-mixture student's [`TypedRecorder`] (either engine).
pub type Recorder = TypedRecorder<Stats>;

/// The RealNVP flow's [`TypedRecorder`].
pub type FlowRecorder = TypedRecorder<FlowStats>;

impl<St> Default for TypedRecorder<St> {
    fn default() -> Self {
        Self {
            records: Vec::new(),
            marginals: Vec::new(),
            other_records: 0,
        }
    }
}

impl<St: RecordStats + Clone> Observer for TypedRecorder<St> {
    fn on_record(&mut self, r: &Record<dyn RecordStats>) {
        match r.typed::<St>() {
            Some(r) => self.records.push(r),
            None => self.other_records += 1,
        }
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
    /// Out-of-bounds size of the student (module docs, "Divergence"): a mean's norm for the
    /// mixture, a parameter's magnitude for the flow; `inf` = only non-finite values diverge.
    pub divergence_bound: f64,
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

/// Where the loop's target takes its values from: the built-in mixtures, which cannot fail,
/// or a target evaluated outside the library ([`External`]), whose evaluations can. A
/// [`Student`] that evaluates a target keeps its first failure in the target; the loop takes
/// it after every call that may have evaluated the target and ends the run with it.
pub trait TrainTarget {
    /// Why an evaluation failed.
    type Error;
    /// `Err` with the first failure since the last call, if there was one.
    fn take_error(&self) -> Result<(), Self::Error>;
}

impl TrainTarget for IsotropicMixture {
    type Error = std::convert::Infallible;
    #[inline(always)]
    fn take_error(&self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The target-independent part of a student's SGD step.
pub trait Trainable: VariationalFamily + Sized {
    /// Applies `opt` to θ with the gradient of the last [`Student::loss_and_grad`] call (left
    /// in `grad`), scaled by `scale`. Returns false, leaving θ untouched, when that gradient is
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
    /// Whether the student is within bounds: every parameter finite, and its size (a mean's
    /// norm for mixtures, a parameter's magnitude for flows; module docs) at most `bound`.
    fn params_within(&self, bound: f64) -> bool;
}

/// The training-side view of a variational family against targets of type `T`: what
/// [`train_with`] needs besides the flat parameter vector of [`VariationalFamily`] and the
/// update of [`Trainable`]. A method that evaluates `T` and fails leaves its failure in the
/// target (see [`TrainTarget`]) and returns a placeholder (NaN, or nothing).
pub trait Student<T: ?Sized = IsotropicMixture>: Trainable {
    /// Reusable per-run state (buffers, exact objective).
    type Workspace;
    /// Summary statistics of results.
    type Stats: Clone + std::fmt::Debug + PartialEq + Serialize;
    /// A workspace for training against `target` with `settings`.
    fn workspace(&self, target: &T, settings: &TrainSettings) -> Self::Workspace;
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
        target: &T,
        beta: f64,
        settings: &TrainSettings,
        want_loss: bool,
        rng: &mut R,
        grad: &mut [f64],
    ) -> f64;
    /// A trajectory record, sent to `observer`.
    #[allow(clippy::too_many_arguments)]
    fn record<R: Rng + ?Sized>(
        &mut self,
        ws: &mut Self::Workspace,
        target: &T,
        beta: f64,
        step: usize,
        loss: f64,
        settings: &TrainSettings,
        eval_rng: &mut R,
        observer: &mut dyn Observer,
    );
    /// ℓ_i = ln π(x_i) (untempered, up to a constant shared by all points) at `n` points
    /// x_i ~ q drawn from `rng`, into `out` (resized to n): the samples of the adaptive
    /// schedule ([`crate::schedule::Annealer`]). A failed evaluation leaves its failure in the
    /// target (see [`TrainTarget`]).
    fn log_target_at_samples<R: Rng + ?Sized>(
        &mut self,
        target: &T,
        n: usize,
        rng: &mut R,
        out: &mut Vec<f64>,
    );
    /// Marginal densities along μ̂, where the family has them in closed form (by default it
    /// has not).
    fn marginal(
        &self,
        _target: &T,
        _beta: f64,
        _step: usize,
        _grid: (f64, usize),
    ) -> Option<MarginalSnapshot> {
        None
    }
    /// The run's result after `step` steps (diverged or not).
    fn finish<R: Rng + ?Sized>(
        &mut self,
        target: &T,
        step: usize,
        diverged: bool,
        settings: &TrainSettings,
        eval_rng: &mut R,
    ) -> RunResult<Self::Stats>;
}

/// [`Trainable::update`]'s default: refuse a non-finite gradient, scale it, [`Optimizer::step`].
pub(crate) fn plain_update<S: VariationalFamily>(
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

/// The stream of the records' Monte-Carlo estimates in [`train_with`]: seeded from a copy of
/// `eval_rng` (which is not advanced), so that recording changes neither the training
/// trajectory nor the final evaluation.
pub fn record_stream<R: Rng + Clone>(eval_rng: &R) -> Stream {
    use rand::SeedableRng;
    Stream::seed_from_u64(eval_rng.clone().next_u64() ^ 0x7265_636f_7264_7321)
}

/// The training loop, for any student and target (see the module docs): runs SGD from the
/// student's current state. `rng` supplies the reparametrisation noise and `eval_rng` the
/// Monte-Carlo estimate of the outcome; records draw from a stream seeded from a copy of
/// `eval_rng` ([`record_stream`]; all kept apart, so that recording changes neither the
/// training trajectory nor the final evaluation). Whatever the target, the random numbers are
/// drawn in the same order from the same streams.
///
/// β comes from `annealer`: a schedule β(t), or the adaptive rule, which before each update
/// step draws its samples of q from its own stream ([`Student::log_target_at_samples`]) and
/// announces the step at which β reached 1 ([`Observer::on_annealed`]).
///
/// `cancel` is read before every step and before the final evaluation: a stopped run returns
/// `Ok(None)`, leaving the student at its last update; without cancellation the result is the
/// same bit for bit. `Err` carries the first failure of the target's evaluations (the run
/// ends there). Runs from a configuration go through [`crate::run::Trainer`], which builds the
/// schedule, optimiser, settings and streams.
#[allow(clippy::too_many_arguments)]
pub fn train_with<T, S, R>(
    q: &mut S,
    target: &T,
    annealer: &mut Annealer<'_>,
    opt: &mut dyn Optimizer,
    settings: &TrainSettings,
    rng: &mut R,
    eval_rng: &mut R,
    observer: &mut dyn Observer,
    cancel: &AtomicBool,
) -> Result<Option<RunResult<S::Stats>>, T::Error>
where
    T: TrainTarget + ?Sized,
    S: Student<T>,
    R: Rng + Clone,
{
    let mut ws = q.workspace(target, settings);
    let mut record_rng = record_stream(eval_rng);
    let groups = q.groups();
    let mut grad = vec![0.0; q.params().len()];
    let t_end = settings.steps;
    let mut ell = Vec::new();
    let mut annealed = false;
    for step in 0..=t_end {
        if cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
        if let Some((n, anneal_rng)) = annealer.due(step) {
            q.log_target_at_samples(target, n, anneal_rng, &mut ell);
            target.take_error()?;
            annealer.update(step, &ell);
        }
        let beta = annealer.beta(step);
        if !annealed && annealer.reached_one().is_some() {
            annealed = true;
            observer.on_annealed(annealer.reached_one().unwrap_or(step));
        }
        if settings.marginal_steps.contains(&step)
            && let Some(m) = q.marginal(target, beta, step, settings.marginal_grid)
        {
            observer.on_marginal(&m);
        }
        let due = settings.record_every > 0 && (step % settings.record_every == 0 || step == t_end);
        // the last record's loss: estimated once more at the final state, with the records'
        // own stream (the training noise and the final evaluation are not touched); the
        // gradient computed with it is discarded
        let final_loss = if step == t_end && due {
            let l = q.loss_and_grad(
                &mut ws,
                target,
                beta,
                settings,
                true,
                &mut record_rng,
                &mut grad,
            );
            target.take_error()?;
            l
        } else {
            f64::NAN
        };
        let mut record = |q: &mut S, ws: &mut S::Workspace, loss: f64| {
            q.record(
                ws,
                target,
                beta,
                step,
                loss,
                settings,
                &mut record_rng,
                observer,
            );
            target.take_error()
        };
        if step == t_end {
            if due {
                record(q, &mut ws, final_loss)?;
            }
            break;
        }
        let loss = q.loss_and_grad(&mut ws, target, beta, settings, due, rng, &mut grad);
        target.take_error()?;
        if due {
            record(q, &mut ws, loss)?;
        }
        let diverged_at =
            if !loss.is_finite() || !q.update(opt, &mut grad, &groups, settings.loss_scale) {
                Some(step)
            } else if !q.params_within(settings.divergence_bound) {
                Some(step + 1)
            } else {
                None
            };
        if let Some(at) = diverged_at {
            let res = q.finish(target, at, true, settings, eval_rng);
            target.take_error()?;
            return Ok(Some(res));
        }
    }
    if cancel.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let res = q.finish(target, t_end, false, settings, eval_rng);
    target.take_error()?;
    Ok(Some(res))
}
