//! Runs from a configuration: builds the target, schedule, optimiser and student a [`Config`]
//! describes, draws the initial student and the noise from the run's random streams, and trains
//! it with [`crate::train`]'s loop, on the engine and family the configuration names (the one
//! place that dispatches on them). Sweeps, the CLI and the Python package start runs here.

use crate::config::{Config, Engine, FamilyKind, TargetConfig};
use crate::family::realnvp::FlowStats;
use crate::family::{GmmStudent, RealNvp};
use crate::metrics::Outcome;
use crate::seed::{Purpose, Stream, stream};
use crate::statistics::{StatsStudent, TargetFrame};
use crate::target::{Benchmark, IsotropicMixture};
use crate::train::{
    External, Observer, RunResult, Student, TrainSettings, TrainTarget, train_with,
};
use rand::Rng;
use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// A complete single run from a configuration: builds everything, draws the initial student
/// from stream (seed, run, Init) and the noise from (seed, run, Sgd).
///
/// ```
/// use annealvi::prelude::*;
/// use annealvi::train::NoObserver;
///
/// // the paper's problem in d = 32, annealed from β_i = 0.05 over t0 = 300 steps
/// let cfg = Config::from_toml_str(
///     "[target]\nd = 32\n[schedule]\nkind = \"exponential\"\nbeta_i = 0.05\nt0 = 300\n\
///      [optim]\nsteps = 600\n[record]\nevery = 100",
/// )?;
/// let mut rec = Recorder::default();
/// let (_, res) = run_config(&cfg, 0, &mut rec);
/// assert_eq!(res.final_step, 600);
/// assert!(matches!(res.outcome.kind(), OutcomeKind::Covered | OutcomeKind::Collapsed));
/// assert_eq!(rec.records.last().unwrap().beta, 1.0); // annealing is over
/// // the same configuration and run index give the same numbers
/// let (_, again) = run_config(&cfg, 0, &mut NoObserver);
/// assert_eq!(again.stats.m, res.stats.m);
/// # Ok::<(), annealvi::Error>(())
/// ```
pub fn run_config(cfg: &Config, run: u64, observer: &mut dyn Observer) -> (GmmStudent, RunResult) {
    run_with_streams(cfg, (run, run), observer)
}

/// Like [`run_config`], with separate stream indices for the initialisation and for the SGD
/// noise (sweeps share the initialisation of seed i across cells: common random numbers).
///
/// With `objective.engine = "statistics"` the run is simulated in the summary statistics
/// ([`crate::statistics`]), random initial means are drawn directly as statistics (same law,
/// other numbers than the vector engine's), and the returned student is the final one in
/// frame coordinates (dimension p ≤ d, first axis μ̂): its statistics relative to e_1 are the
/// run's.
pub fn run_with_streams(
    cfg: &Config,
    streams: (u64, u64),
    observer: &mut dyn Observer,
) -> (GmmStudent, RunResult) {
    let never = AtomicBool::new(false);
    match run_with_streams_cancellable(cfg, streams, observer, &never) {
        Some(r) => r,
        None => unreachable!("a flag nobody sets cancels nothing"),
    }
}

/// [`run_with_streams`] that stops once `cancel` is set (`None`; see
/// [`train_cancellable`](crate::train::train_cancellable)).
pub fn run_with_streams_cancellable(
    cfg: &Config,
    (init_run, noise_run): (u64, u64),
    observer: &mut dyn Observer,
    cancel: &AtomicBool,
) -> Option<(GmmStudent, RunResult)> {
    let mut init: Stream = stream(cfg.seed, init_run, Purpose::Init);
    match cfg.objective.engine {
        Engine::Statistics => {
            let (target, frame) = shared_target(cfg);
            let mut s = initial_stats_student_in(cfg, &target, &frame, &mut init);
            let res = run_student_on(cfg, &target, &mut s, noise_run, observer, cancel)?;
            Some((s.frame_student().clone(), res))
        }
        Engine::Vector => {
            let mut q = cfg.init_student(&mut init);
            let res = run_student_cancellable(cfg, &mut q, noise_run, observer, cancel)?;
            Some((q, res))
        }
    }
}

/// The statistics engine's initial student: random means drawn directly in frame
/// coordinates (O(K²) draws, not O(K d)); explicit means projected on a frame built from them.
fn initial_stats_student<R: Rng + ?Sized>(cfg: &Config, init: &mut R) -> StatsStudent {
    let (target, frame) = shared_target(cfg);
    initial_stats_student_in(cfg, &target, &frame, init)
}

fn initial_stats_student_in<R: Rng + ?Sized>(
    cfg: &Config,
    target: &IsotropicMixture,
    frame: &TargetFrame,
    init: &mut R,
) -> StatsStudent {
    match cfg.init_scale() {
        Some(scale) => StatsStudent::random_in(frame, &cfg.init_student_shape(), scale, init),
        None => StatsStudent::from_student(&cfg.init_student(init), target),
    }
}

/// The target of `cfg` and its statistics-engine frame, built once per thread and target
/// configuration: the runs of a sweep or a benchmark share them, so that a statistics-engine
/// run does no work of size d (building them is O(J² d)).
fn shared_target(cfg: &Config) -> (Arc<IsotropicMixture>, Arc<TargetFrame>) {
    type Cached = (TargetConfig, Arc<IsotropicMixture>, Arc<TargetFrame>);
    thread_local! {
        static CACHE: RefCell<Option<Cached>> = const { RefCell::new(None) };
    }
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        if let Some((key, t, f)) = c.as_ref()
            && *key == cfg.target
        {
            return (t.clone(), f.clone());
        }
        let t = Arc::new(cfg.build_target());
        let f = Arc::new(TargetFrame::new(&t));
        *c = Some((cfg.target.clone(), t.clone(), f.clone()));
        (t, f)
    })
}

/// The initial student of run `init_run` as its engine draws it, with the unit axis μ̂ in the
/// student's coordinates: d-dimensional (axis = the target's) for the vector engine, frame
/// coordinates (axis e_1) for the statistics engine. Their statistics have the same law; the
/// theory pairs its initial conditions with a sweep's seeds through this.
pub fn initial_student(cfg: &Config, init_run: u64) -> (GmmStudent, Vec<f64>) {
    let mut init: Stream = stream(cfg.seed, init_run, Purpose::Init);
    match cfg.objective.engine {
        Engine::Statistics => {
            let s = initial_stats_student(cfg, &mut init);
            let mut axis = vec![0.0; s.frame_dim()];
            axis[0] = 1.0;
            (s.frame_student().clone(), axis)
        }
        Engine::Vector => (
            cfg.init_student(&mut init),
            cfg.build_target().axis().to_vec(),
        ),
    }
}

/// A complete single run of the RealNVP student (`student.family = "realnvp"`): weights drawn
/// from stream (seed, init_run, Init), noise from (seed, noise_run, Sgd), Monte-Carlo records
/// and outcome from (seed, noise_run, Eval). Errors only on an invalid flow architecture.
pub fn run_flow_with_streams(
    cfg: &Config,
    streams: (u64, u64),
    observer: &mut dyn Observer,
) -> crate::Result<(RealNvp, RunResult<FlowStats>)> {
    let never = AtomicBool::new(false);
    match run_flow_with_streams_cancellable(cfg, streams, observer, &never)? {
        Some(r) => Ok(r),
        None => unreachable!("a flag nobody sets cancels nothing"),
    }
}

/// [`run_flow_with_streams`] that stops once `cancel` is set (`Ok(None)`; see
/// [`train_cancellable`](crate::train::train_cancellable)).
pub fn run_flow_with_streams_cancellable(
    cfg: &Config,
    (init_run, noise_run): (u64, u64),
    observer: &mut dyn Observer,
    cancel: &AtomicBool,
) -> crate::Result<Option<(RealNvp, RunResult<FlowStats>)>> {
    let mut init: Stream = stream(cfg.seed, init_run, Purpose::Init);
    let mut q = cfg.init_flow(&mut init)?;
    let bench = cfg.target.benchmark();
    let res = match &bench {
        // not a mixture: trained through the batched path of external targets
        Some(Benchmark::ManyWell(mw)) => {
            let ext = External::new(mw);
            match run_student_with(cfg, &ext, &mut q, noise_run, observer, cancel) {
                Ok(r) => r,
                Err(never) => match never {},
            }
        }
        _ => run_student_cancellable(cfg, &mut q, noise_run, observer, cancel),
    };
    Ok(res.map(|r| {
        let r = match &bench {
            Some(b) => with_benchmark(cfg, b, &mut q, noise_run, r),
            None => r,
        };
        (q, r)
    }))
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
    cfg: &Config,
    bench: &Benchmark,
    q: &mut RealNvp,
    noise_run: u64,
    mut res: RunResult<FlowStats>,
) -> RunResult<FlowStats> {
    if matches!(res.outcome, Outcome::Diverged { .. }) {
        return res;
    }
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

/// A finished run of the student family a configuration names (`student.family`).
#[derive(Clone, Debug)]
pub enum AnyRun {
    /// The Gaussian-mixture student (either engine), as [`run_with_streams`] returns it.
    Mixture(GmmStudent, RunResult),
    /// The RealNVP flow, as [`run_flow_with_streams`] returns it (boxed: a flow holds its
    /// engine's buffers).
    Flow(Box<RealNvp>, RunResult<FlowStats>),
}

/// A run of whichever student family `cfg` names, with the streams (init_run, noise_run):
/// [`run_with_streams`] for the Gaussian mixture, [`run_flow_with_streams`] for the flow.
/// Errors only on an invalid flow architecture.
pub fn run_any(
    cfg: &Config,
    streams: (u64, u64),
    observer: &mut dyn Observer,
) -> crate::Result<AnyRun> {
    let never = AtomicBool::new(false);
    match run_any_cancellable(cfg, streams, observer, &never)? {
        Some(r) => Ok(r),
        None => unreachable!("a flag nobody sets cancels nothing"),
    }
}

/// [`run_any`] that stops once `cancel` is set (`Ok(None)`; see
/// [`train_cancellable`](crate::train::train_cancellable)).
pub fn run_any_cancellable(
    cfg: &Config,
    streams: (u64, u64),
    observer: &mut dyn Observer,
    cancel: &AtomicBool,
) -> crate::Result<Option<AnyRun>> {
    Ok(match cfg.student.family {
        FamilyKind::Realnvp => run_flow_with_streams_cancellable(cfg, streams, observer, cancel)?
            .map(|(q, r)| AnyRun::Flow(Box::new(q), r)),
        FamilyKind::Gmm => run_with_streams_cancellable(cfg, streams, observer, cancel)
            .map(|(q, r)| AnyRun::Mixture(q, r)),
    })
}

/// Trains an already initialised student with the configured target, schedule, optimiser and
/// the noise streams of `noise_run`.
pub fn run_student<S: Student>(
    cfg: &Config,
    q: &mut S,
    noise_run: u64,
    observer: &mut dyn Observer,
) -> RunResult<S::Stats> {
    let never = AtomicBool::new(false);
    match run_student_cancellable(cfg, q, noise_run, observer, &never) {
        Some(r) => r,
        None => unreachable!("a flag nobody sets cancels nothing"),
    }
}

/// [`run_student`] that stops once `cancel` is set (`None`; see
/// [`train_cancellable`](crate::train::train_cancellable)).
pub fn run_student_cancellable<S: Student>(
    cfg: &Config,
    q: &mut S,
    noise_run: u64,
    observer: &mut dyn Observer,
    cancel: &AtomicBool,
) -> Option<RunResult<S::Stats>> {
    run_student_on(cfg, &cfg.build_target(), q, noise_run, observer, cancel)
}

/// [`run_student_cancellable`] against `target`, built beforehand from `cfg`
/// (`cfg.build_target()`).
pub fn run_student_on<S: Student>(
    cfg: &Config,
    target: &IsotropicMixture,
    q: &mut S,
    noise_run: u64,
    observer: &mut dyn Observer,
    cancel: &AtomicBool,
) -> Option<RunResult<S::Stats>> {
    match run_student_with(cfg, target, q, noise_run, observer, cancel) {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

/// Trains `q` against any [`TrainTarget`] (a built-in mixture, or a target evaluated outside
/// the library, [`crate::train::External`]) with the configured schedule, optimiser and
/// settings and the noise streams of `noise_run`: `Ok(None)` when `cancel` was set, `Err`
/// with the target's first failed evaluation (see [`train_with`]).
pub fn run_student_with<T, S>(
    cfg: &Config,
    target: &T,
    q: &mut S,
    noise_run: u64,
    observer: &mut dyn Observer,
    cancel: &AtomicBool,
) -> Result<Option<RunResult<S::Stats>>, T::Error>
where
    T: TrainTarget + ?Sized,
    S: Student<T>,
{
    let schedule = cfg.build_schedule();
    let mut opt = cfg.build_optimizer();
    let mut rng = stream(cfg.seed, noise_run, Purpose::Sgd);
    let mut eval = stream(cfg.seed, noise_run, Purpose::Eval);
    let settings = TrainSettings::from_config(cfg);
    train_with(
        q,
        target,
        schedule.as_ref(),
        opt.as_mut(),
        &settings,
        &mut rng,
        &mut eval,
        observer,
        cancel,
    )
}
