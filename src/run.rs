//! Runs from a configuration: [`Config::compile`] validates a configuration once and builds
//! what every run of it shares — the target (with the statistics engine's frame, or the
//! benchmark target), the schedule β(t), the student and optimiser settings and the loop's
//! [`TrainSettings`] — into an [`Experiment`]; one driver, [`Trainer`], draws a run's initial
//! student and noise from its random streams and trains it with [`crate::train`]'s loop, on
//! the simulation and family the configuration names (the one place that dispatches on them).
//! Sweeps, the CLI and the Python package start runs here.
//!
//! Random streams of a run with stream indices (init_run, noise_run): the initial student
//! from (seed, init_run, Init), the SGD noise from (seed, noise_run, Sgd), the Monte-Carlo
//! records and outcome from (seed, noise_run, Eval) (see [`crate::seed`]). A run with index
//! `run` uses (run, run); sweeps share the initialisation of seed i across cells (common
//! random numbers) with other noise indices.
//!
//! ```
//! use annealvi::prelude::*;
//!
//! // the paper's problem in d = 32, annealed from β_i = 0.05 over t0 = 300 steps
//! let cfg = Config::from_toml_str(
//!     "[target]\nd = 32\n[schedule]\nkind = \"exponential\"\nbeta_i = 0.05\nt0 = 300\n\
//!      [optim]\nsteps = 600\n[record]\nevery = 100",
//! )?;
//! let exp = cfg.compile()?;
//! let mut rec = Recorder::default();
//! let run = Trainer::new(&exp).index(0).observer(&mut rec).run()?;
//! assert_eq!(run.final_step(), 600);
//! assert!(matches!(run.outcome().kind(), OutcomeKind::Covered | OutcomeKind::Collapsed));
//! assert_eq!(rec.records.last().unwrap().beta, 1.0); // annealing is over
//! // the same experiment and run index give the same numbers
//! let (_, res) = run.into_mixture().unwrap();
//! let (_, again) = Trainer::new(&exp).index(0).run()?.into_mixture().unwrap();
//! assert_eq!(again.stats.m, res.stats.m);
//! # Ok::<(), annealvi::Error>(())
//! ```

use crate::config::{Config, FamilyKind, LossScale, Simulation, TargetConfig};
use crate::error::{Error, Result};
use crate::family::gmm::Stats;
use crate::family::realnvp::{FlowArch, FlowStats};
use crate::family::{GmmStudent, RealNvp};
use crate::metrics::Outcome;
use crate::objective::Estimator;
use crate::optim::Optimizer;
use crate::schedule::{Annealer, Schedule};
use crate::seed::{Purpose, Stream, stream};
use crate::statistics::{StatsStudent, TargetFrame};
use crate::target::{Benchmark, IsotropicMixture};
use crate::train::{
    External, ExternalTarget, NoObserver, Observer, RunResult, Student, TrainSettings, TrainTarget,
    train_with,
};
use rand::Rng;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

impl Config {
    /// Validates the configuration once and builds what its runs share: an [`Experiment`].
    /// Errors name the field and the valid range ([`Config::validate`]).
    pub fn compile(&self) -> Result<Experiment> {
        Experiment::new(self.clone())
    }
}

/// A validated configuration with what its runs share, built once: the target π (a mixture,
/// with the statistics engine's frame when `student.simulation = "statistics"`, or a benchmark
/// target), the schedule β(t), and the loop's settings. The optimiser holds per-run state
/// and is built for each run ([`Experiment::optimizer`]). Runs start with [`Trainer`].
///
/// Compiling is cheap after the first time in a thread for the same `[target]` section: the
/// built target and its frame (O(J² d) to build) are shared between the experiments of a
/// thread, so that a sweep can compile one per run and a statistics-engine run does no work
/// of size d.
#[derive(Clone)]
pub struct Experiment {
    config: Config,
    /// The mixture target (`None` for Many Well, which is not a mixture).
    target: Option<Arc<IsotropicMixture>>,
    /// The statistics engine's frame of the target.
    frame: Option<Arc<TargetFrame>>,
    /// The benchmark target (`target.kind = "gmm40"` or `"many_well"`).
    benchmark: Option<Arc<Benchmark>>,
    schedule: Arc<dyn Schedule>,
    settings: TrainSettings,
}

impl std::fmt::Debug for Experiment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Experiment")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Experiment {
    /// [`Config::compile`].
    pub fn new(config: Config) -> Result<Self> {
        config.validate()?;
        let benchmark = config.target.benchmark().map(Arc::new);
        let mixture = !matches!(benchmark.as_deref(), Some(Benchmark::ManyWell(_)));
        let statistics = config.student.simulation == Simulation::Statistics;
        let (target, frame) = if mixture {
            let (t, f) = shared_target(&config.target, statistics);
            (Some(t), f)
        } else {
            (None, None)
        };
        let schedule: Arc<dyn Schedule> = Arc::from(config.build_schedule());
        let settings = settings(&config);
        Ok(Self {
            config,
            target,
            frame,
            benchmark,
            schedule,
            settings,
        })
    }

    /// The configuration (validated).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The mixture target π; `None` for `target.kind = "many_well"` (see
    /// [`Self::benchmark`]).
    pub fn target(&self) -> Option<&IsotropicMixture> {
        self.target.as_deref()
    }

    /// The benchmark target for `target.kind = "gmm40"` or `"many_well"`, else `None`.
    pub fn benchmark(&self) -> Option<&Benchmark> {
        self.benchmark.as_deref()
    }

    /// The schedule β(t).
    pub fn schedule(&self) -> &dyn Schedule {
        &*self.schedule
    }

    /// The loop's settings (steps, estimator, samples, recording, divergence bound, …).
    pub fn settings(&self) -> &TrainSettings {
        &self.settings
    }

    /// A fresh optimiser (its state is per run), with group rates κ_mean = 1, κ_σ = c_σ/d,
    /// κ_logit = c_w.
    pub fn optimizer(&self) -> Box<dyn Optimizer> {
        self.config.build_optimizer()
    }

    /// The flow architecture, with σ0 resolved ("schedule": σ0 = 1/√β(0)).
    pub fn flow_arch(&self) -> FlowArch {
        self.config
            .student
            .flow_arch(self.config.target.d, self.schedule())
    }

    /// The initial RealNVP student (weights drawn from `rng`).
    pub fn init_flow<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<RealNvp> {
        self.flow_arch().init(rng)
    }

    /// The initial d-dimensional Gaussian-mixture student, drawing random means from `rng`
    /// (μ_k ~ N(0, s² I_d)) unless explicit means are given.
    pub fn init_student<R: Rng + ?Sized>(&self, rng: &mut R) -> GmmStudent {
        self.config
            .student
            .build(self.config.target.d, self.schedule(), rng)
    }

    /// The statistics engine's initial student: random means drawn directly in frame
    /// coordinates (O(K²) draws, not O(K d)); explicit means projected on a frame built from
    /// them.
    fn init_stats_student<R: Rng + ?Sized>(&self, init: &mut R) -> Result<StatsStudent> {
        let (Some(target), Some(frame)) = (self.target(), self.frame.as_deref()) else {
            return Err(not_statistics());
        };
        Ok(match self.config.init_scale() {
            Some(scale) => {
                let shape = self.config.student.init_shape(self.schedule());
                StatsStudent::random_in(frame, &shape, scale, init)
            }
            None => StatsStudent::from_student(&self.init_student(init), target),
        })
    }

    /// The initial Gaussian-mixture student of run `init_run` as its engine draws it, with
    /// the unit axis μ̂ in the student's coordinates: d-dimensional (axis = the target's) for
    /// the vector engine, frame coordinates (axis e_1) for the statistics engine. Their
    /// statistics have the same law; the theory pairs its initial conditions with a sweep's
    /// seeds through this. Errors for a flow student or a target that is not a mixture.
    pub fn initial_student(&self, init_run: u64) -> Result<(GmmStudent, Vec<f64>)> {
        let mut init: Stream = stream(self.config.seed, init_run, Purpose::Init);
        let target = self.mixture_student_target()?;
        Ok(match self.config.student.simulation {
            Simulation::Statistics => {
                let s = self.init_stats_student(&mut init)?;
                let mut axis = vec![0.0; s.frame_dim()];
                axis[0] = 1.0;
                (s.frame_student().clone(), axis)
            }
            Simulation::Vector => (self.init_student(&mut init), target.axis().to_vec()),
        })
    }

    fn mixture_student_target(&self) -> Result<&IsotropicMixture> {
        match (self.config.student.family, self.target()) {
            (FamilyKind::Gmm, Some(t)) => Ok(t),
            _ => Err(Error::config(
                "student.family",
                "\"realnvp\"",
                "\"gmm\" (the Gaussian-mixture student's initial means)",
            )),
        }
    }
}

fn not_statistics() -> Error {
    Error::config(
        "student.simulation",
        "\"vector\"",
        "\"statistics\" (this needs the statistics engine's frame)",
    )
}

/// The loop's settings from a configuration: loss scale 1 or 1/d (`objective.loss_scale`),
/// and the flows' Monte-Carlo outcome settings from `[student.realnvp]`.
fn settings(c: &Config) -> TrainSettings {
    TrainSettings {
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
        divergence_bound: c.optim.divergence_bound,
    }
}

/// The target of a `[target]` section and (with `frame`) its statistics-engine frame, built
/// once per thread and section: the experiments of a sweep or a benchmark share them.
fn shared_target(
    target: &TargetConfig,
    frame: bool,
) -> (Arc<IsotropicMixture>, Option<Arc<TargetFrame>>) {
    type Cached = (
        TargetConfig,
        Arc<IsotropicMixture>,
        Option<Arc<TargetFrame>>,
    );
    thread_local! {
        static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let (t, f) = match c.as_ref() {
            Some((key, t, f)) if key == target => (t.clone(), f.clone()),
            _ => (Arc::new(target.build()), None),
        };
        let f = match (f, frame) {
            (Some(f), _) => Some(f),
            (None, true) => Some(Arc::new(TargetFrame::new(&t))),
            (None, false) => None,
        };
        *c = Some((target.clone(), t.clone(), f.clone()));
        (t, if frame { f } else { None })
    })
}

/// A finished run of the student family a configuration names (`student.family`); `M`: the
/// result statistics of the Gaussian-mixture student (its summary statistics [`Stats`]
/// against the built-in targets, the masses of q on the modes against an external target,
/// see [`Trainer::run_on`]).
// one value per run, moved once: the size difference costs nothing worth a second box
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum AnyRun<M = Stats> {
    /// The Gaussian-mixture student (either simulation). With the statistics engine the
    /// student is the final one in frame coordinates (dimension p ≤ d, first axis μ̂): its
    /// statistics relative to e_1 are the run's.
    Mixture(GmmStudent, RunResult<M>),
    /// The RealNVP flow (boxed: a flow holds its engine's buffers).
    Flow(Box<RealNvp>, RunResult<FlowStats>),
}

impl<M> AnyRun<M> {
    /// How the run ended.
    pub fn outcome(&self) -> &Outcome {
        match self {
            AnyRun::Mixture(_, r) => &r.outcome,
            AnyRun::Flow(_, r) => &r.outcome,
        }
    }

    /// The last step reached (T, or the divergence step).
    pub fn final_step(&self) -> usize {
        match self {
            AnyRun::Mixture(_, r) => r.final_step,
            AnyRun::Flow(_, r) => r.final_step,
        }
    }

    /// The student's mass on the lighter mode.
    pub fn light_mode_mass(&self) -> f64 {
        match self {
            AnyRun::Mixture(_, r) => r.light_mode_mass,
            AnyRun::Flow(_, r) => r.light_mode_mass,
        }
    }

    /// The Gaussian-mixture student and its result, or `None` for a flow.
    pub fn into_mixture(self) -> Option<(GmmStudent, RunResult<M>)> {
        match self {
            AnyRun::Mixture(q, r) => Some((q, r)),
            AnyRun::Flow(..) => None,
        }
    }

    /// The flow and its result, or `None` for a Gaussian-mixture student.
    pub fn into_flow(self) -> Option<(RealNvp, RunResult<FlowStats>)> {
        match self {
            AnyRun::Flow(q, r) => Some((*q, r)),
            AnyRun::Mixture(..) => None,
        }
    }
}

/// The driver of a run of an [`Experiment`], set up by its builder methods and started by
/// one of its run methods:
///
/// * [`Trainer::run`]: the family the configuration names, its initial student drawn from the
///   init stream;
/// * [`Trainer::run_on`]: the same against a target evaluated outside the library;
/// * [`Trainer::train`]: an already initialised student of any family against the
///   experiment's target;
/// * [`Trainer::train_on`]: a student against another target, e.g. one evaluated outside the
///   library ([`External`]).
///
/// Defaults: stream indices (0, 0), no observer, no cancel flag.
pub struct Trainer<'a> {
    exp: &'a Experiment,
    streams: (u64, u64),
    observer: Option<&'a mut dyn Observer>,
    cancel: Option<&'a AtomicBool>,
}

impl<'a> Trainer<'a> {
    /// A driver for runs of `exp`.
    pub fn new(exp: &'a Experiment) -> Self {
        Self {
            exp,
            streams: (0, 0),
            observer: None,
            cancel: None,
        }
    }

    /// Run `run`: stream indices (run, run).
    pub fn index(self, run: u64) -> Self {
        self.streams(run, run)
    }

    /// Separate stream indices for the initialisation and for the SGD noise and evaluation.
    pub fn streams(mut self, init_run: u64, noise_run: u64) -> Self {
        self.streams = (init_run, noise_run);
        self
    }

    /// Sends the records and marginal snapshots to `observer`.
    pub fn observer(mut self, observer: &'a mut dyn Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Stops once `cancel` is set (e.g. from another thread on Ctrl-C): the flag is read
    /// before every step and before the final evaluation; a run that stopped returns
    /// [`Error::Interrupted`] (`Ok(None)` from [`Self::train_on`]). Without cancellation the
    /// result is the same bit for bit.
    pub fn cancel(mut self, cancel: &'a AtomicBool) -> Self {
        self.cancel = Some(cancel);
        self
    }

    /// A complete run of the family the configuration names: initial student from stream
    /// (seed, init_run, Init), noise from (seed, noise_run, Sgd), Monte-Carlo records and
    /// outcome from (seed, noise_run, Eval).
    ///
    /// With `student.simulation = "statistics"` the mixture run is simulated in the summary
    /// statistics ([`crate::statistics`]): random initial means are drawn directly as
    /// statistics (same law, other numbers than the vector engine's), and the returned student
    /// is the final one in frame coordinates. A flow against a benchmark target has its
    /// [`BenchmarkMetrics`](crate::target::BenchmarkMetrics) in `stats.benchmark`.
    ///
    /// Errors: [`Error::Interrupted`] when cancelled; an invalid flow architecture.
    pub fn run(self) -> Result<AnyRun> {
        let exp = self.exp;
        let cfg = &exp.config;
        let mut init: Stream = stream(cfg.seed, self.streams.0, Purpose::Init);
        match (cfg.student.family, cfg.student.simulation) {
            (FamilyKind::Realnvp, _) => {
                let mut q = exp.init_flow(&mut init)?;
                let noise_run = self.streams.1;
                let res = match (exp.benchmark(), exp.target()) {
                    // not a mixture: trained through the batched path of external targets
                    (Some(Benchmark::ManyWell(mw)), _) => {
                        let ext = External::new(mw);
                        infallible(self.train_on(&ext, &mut q))?
                    }
                    (_, Some(t)) => infallible(self.train_on(t, &mut q))?,
                    (_, None) => unreachable_target()?,
                };
                let res = match exp.benchmark() {
                    Some(b) => with_benchmark(exp, b, &mut q, noise_run, res),
                    None => res,
                };
                Ok(AnyRun::Flow(Box::new(q), res))
            }
            (FamilyKind::Gmm, Simulation::Statistics) => {
                let mut s = exp.init_stats_student(&mut init)?;
                let res = self.train(&mut s)?;
                Ok(AnyRun::Mixture(s.frame_student().clone(), res))
            }
            (FamilyKind::Gmm, Simulation::Vector) => {
                let mut q = exp.init_student(&mut init);
                let res = self.train(&mut q)?;
                Ok(AnyRun::Mixture(q, res))
            }
        }
    }

    /// A complete run of the family the configuration names against a target evaluated
    /// outside the library (e.g. a Python callable), with the streams of [`Self::run`]: the
    /// Gaussian-mixture student (d-dimensional, batched reference estimator; its result
    /// statistics are the masses of q on the target's modes, from
    /// `student.realnvp.eval_samples` draws) or the flow (its batched passes). Against an
    /// external copy of a built-in target it reproduces the built-in run (the flow bit for
    /// bit; the mixture up to the kernel's rounding). Errors: the target's dimension is not
    /// `target.d`, `objective.estimator = "exact"` (exact gradients exist only for the
    /// built-in targets), an invalid flow architecture, [`Error::Interrupted`], or the
    /// target's first failure.
    pub fn run_on<X>(self, target: &X) -> std::result::Result<AnyRun<Vec<f64>>, RunError<X::Error>>
    where
        X: ExternalTarget + ?Sized,
    {
        let exp = self.exp;
        let cfg = &exp.config;
        if target.dim() != cfg.target.d {
            return Err(RunError::Run(Error::config(
                "target.d",
                cfg.target.d,
                &format!("the external target's dimension, {}", target.dim()),
            )));
        }
        if exp.settings.estimator == Estimator::Exact {
            return Err(RunError::Run(Error::config(
                "objective.estimator",
                "\"exact\"",
                "\"full\" or \"stl\" with an external target (exact gradients exist only for \
                 the built-in targets)",
            )));
        }
        fn done<R, E>(r: std::result::Result<Option<R>, E>) -> std::result::Result<R, RunError<E>> {
            match r {
                Ok(Some(r)) => Ok(r),
                Ok(None) => Err(RunError::Run(Error::Interrupted)),
                Err(e) => Err(RunError::Target(e)),
            }
        }
        let mut init: Stream = stream(cfg.seed, self.streams.0, Purpose::Init);
        let ext = External::new(target);
        match cfg.student.family {
            FamilyKind::Realnvp => {
                let mut q = exp.init_flow(&mut init).map_err(RunError::Run)?;
                let res = done(self.train_on(&ext, &mut q))?;
                Ok(AnyRun::Flow(Box::new(q), res))
            }
            FamilyKind::Gmm => {
                let mut q = exp.init_student(&mut init);
                let res = done(self.train_on(&ext, &mut q))?;
                Ok(AnyRun::Mixture(q, res))
            }
        }
    }

    /// Trains an already initialised student `q` (from its current state) against the
    /// experiment's mixture target, with the noise streams of `noise_run`. Errors:
    /// [`Error::Interrupted`] when cancelled, or a target that is not a mixture (Many Well:
    /// use [`Self::train_on`]).
    pub fn train<S: Student>(self, q: &mut S) -> Result<RunResult<S::Stats>> {
        let exp = self.exp;
        let Some(target) = exp.target() else {
            return Err(Error::config(
                "target.kind",
                "\"many_well\"",
                "a mixture target here (Many Well is not a mixture: train against it with \
                 Trainer::train_on and train::External)",
            ));
        };
        infallible(self.train_on(target, q))
    }

    /// Trains `q` against any [`TrainTarget`] (a built-in mixture, or a target evaluated
    /// outside the library, [`External`]) with the experiment's schedule, a fresh optimiser,
    /// its settings and the noise streams of `noise_run`: the loop [`train_with`]. An
    /// adaptive schedule draws its samples from the stream (seed, noise_run, Anneal). `Ok(None)`
    /// when cancelled, `Err` with the target's first failed evaluation.
    pub fn train_on<T, S>(
        self,
        target: &T,
        q: &mut S,
    ) -> std::result::Result<Option<RunResult<S::Stats>>, T::Error>
    where
        T: TrainTarget + ?Sized,
        S: Student<T>,
    {
        let exp = self.exp;
        let noise_run = self.streams.1;
        let mut opt = exp.optimizer();
        let mut rng = stream(exp.config.seed, noise_run, Purpose::Sgd);
        let mut eval = stream(exp.config.seed, noise_run, Purpose::Eval);
        let mut annealer = match exp.config.schedule.adaptive() {
            Some(rule) => {
                Annealer::adaptive(rule, stream(exp.config.seed, noise_run, Purpose::Anneal))
            }
            None => Annealer::fixed(exp.schedule()),
        };
        let never = AtomicBool::new(false);
        let mut none = NoObserver;
        train_with(
            q,
            target,
            &mut annealer,
            opt.as_mut(),
            &exp.settings,
            &mut rng,
            &mut eval,
            self.observer.unwrap_or(&mut none),
            self.cancel.unwrap_or(&never),
        )
    }
}

/// Why a run against an external target ([`Trainer::run_on`]) stopped early: the library's
/// error (invalid configuration for such a run, [`Error::Interrupted`]) or the target's
/// first failed evaluation.
#[derive(Debug)]
pub enum RunError<E> {
    /// The library's error.
    Run(Error),
    /// The target's error (e.g. a Python exception).
    Target(E),
}

/// The result of a run against a target that cannot fail: `Err(Interrupted)` when cancelled.
fn infallible<R>(r: std::result::Result<Option<R>, std::convert::Infallible>) -> Result<R> {
    match r {
        Ok(Some(r)) => Ok(r),
        Ok(None) => Err(Error::Interrupted),
        Err(never) => match never {},
    }
}

/// A flow experiment without a mixture has Many Well as its benchmark (see
/// [`Experiment::new`]); reported as an error rather than assumed.
fn unreachable_target<R>() -> Result<R> {
    Err(Error::config(
        "target.kind",
        "\"many_well\"",
        "a target the flow can train against",
    ))
}

/// A finished flow run against a benchmark target, with its [`BenchmarkMetrics`](crate::target::BenchmarkMetrics)
/// (`stats.benchmark`) from the samples of the final evaluation (drawn again from a fresh
/// copy of its stream (seed, noise_run, Eval), so the same points). For Many Well, whose
/// batched evaluation knows neither its normaliser nor its modes, the statistics are
/// completed from them: `kl`, the masses of the wells (left, right) of each copy as
/// `mode_masses`, the smallest left-well mass as the light-mode mass, the largest well-mass
/// error as `mode_weight_error`, and the outcome over the wells (a well is covered when its
/// mass is at least the collapse threshold). A diverged run is returned as it is.
fn with_benchmark(
    exp: &Experiment,
    bench: &Benchmark,
    q: &mut RealNvp,
    noise_run: u64,
    mut res: RunResult<FlowStats>,
) -> RunResult<FlowStats> {
    if matches!(res.outcome, Outcome::Diverged { .. }) {
        return res;
    }
    let cfg = &exp.config;
    let mut eval = stream(cfg.seed, noise_run, Purpose::Eval);
    let (x, lq) = q.sample_with_log_q(cfg.student.realnvp.eval_samples, &mut eval);
    let m = bench.metrics(&x, &lq);
    if let (Benchmark::ManyWell(_), Some(right)) = (bench, &m.right_well_mass) {
        let st = &mut res.stats;
        st.kl = m.kl;
        st.mode_masses = right.iter().flat_map(|r| [1.0 - r, *r]).collect();
        st.light_mode_mass = right.iter().map(|r| 1.0 - r).fold(f64::INFINITY, f64::min);
        st.mode_weight_error = m.well_mass_error.unwrap_or(f64::NAN);
        res.light_mode_mass = st.light_mode_mass;
        res.outcome = st.outcome_named(|j| {
            let side = if j % 2 == 0 { "left" } else { "right" };
            format!("copy {} {side} well", j / 2)
        });
    }
    res.stats.benchmark = Some(m);
    res
}
