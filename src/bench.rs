//! Throughput benchmark of the SGD workload behind the sweeps.
//!
//! `annealvi bench gmm`: S independent runs (seeds) of plain SGD on the paper's problem
//! (bimodal target R = 3, w* = 0.8; 2-component student, fixed weights ½; η = 0.05;
//! σ(0) = 1; means ~ N(0, I_d); no annealing; full reparametrised estimator with B samples
//! per component), spread over a rayon pool. Reports run-steps per second = S·T / wall time.
//! `scripts/bench_torch.py` runs the same workload batched in PyTorch for comparison. The
//! `simulation` field selects the d-dimensional engine or the summary-statistics engine
//! ([`crate::statistics`]), whose cost per step does not depend on d.

use crate::config::{Config, Simulation};
use crate::run::Trainer;
use rayon::prelude::*;
use std::time::Instant;

/// Parameters of the GMM benchmark.
#[derive(Clone, Debug)]
pub struct GmmBench {
    /// Dimension d.
    pub d: usize,
    /// Number of independent runs S.
    pub seeds: usize,
    /// Samples per component B.
    pub samples: usize,
    /// SGD steps per run T.
    pub steps: usize,
    /// Worker threads (0 = all cores).
    pub threads: usize,
    /// The SGD engine (`vector`: d-dimensional samples; `statistics`: exact simulation in the
    /// summary statistics).
    pub simulation: Simulation,
}

/// What the benchmark measured.
#[derive(Clone, Debug)]
pub struct BenchResult {
    /// Wall time in seconds.
    pub seconds: f64,
    /// S·T / seconds.
    pub run_steps_per_sec: f64,
    /// Mean final KL(q‖π) proxy: mean light-mode mass (a sanity value).
    pub mean_light_mass: f64,
}

impl GmmBench {
    /// The configuration each run uses.
    pub fn config(&self) -> Config {
        let mut c = Config::default();
        c.target.d = self.d;
        c.objective.samples = self.samples;
        c.optim.steps = self.steps;
        c.record.every = 0;
        c.student.simulation = self.simulation;
        c
    }

    /// Runs the benchmark. Errors if the thread pool cannot be built.
    pub fn run(&self) -> crate::Result<BenchResult> {
        let cfg = self.config();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .build()
            .map_err(|e| {
                crate::Error::Invalid(format!("cannot start {} threads: {e}", self.threads))
            })?;
        let exp = cfg.compile()?;
        let start = Instant::now();
        let masses: Vec<f64> = pool.install(|| {
            (0..self.seeds as u64)
                .into_par_iter()
                .map(|run| {
                    Trainer::new(&exp)
                        .index(run)
                        .run()
                        .map(|r| r.light_mode_mass())
                })
                .collect::<crate::Result<_>>()
        })?;
        let seconds = start.elapsed().as_secs_f64();
        Ok(BenchResult {
            seconds,
            run_steps_per_sec: (self.seeds * self.steps) as f64 / seconds,
            mean_light_mass: masses.iter().sum::<f64>() / masses.len().max(1) as f64,
        })
    }
}

/// Parameters of the flow benchmark (`annealvi bench flow`): RealNVP with 8 couplings
/// (alternating halves), depth-4 ReLU MLPs of width h, s = tanh(·), every layer initialised
/// PyTorch-style (`last_init` = 1), base N(0, I); bimodal target R = 3, w* = 0.8, β = 1; full
/// reparametrised estimator; Adam lr 1e-3; batch B. `scripts/bench_flow_torch.py` is the same
/// model in PyTorch.
#[derive(Clone, Debug)]
pub struct FlowBench {
    /// Dimension d ≥ 2.
    pub d: usize,
    /// Hidden width h.
    pub width: usize,
    /// Batch B.
    pub batch: usize,
    /// Timed steps.
    pub steps: usize,
    /// Independent flows trained at once, one per thread (1 = a single flow).
    pub threads: usize,
    /// Batched-pass precision.
    pub precision: crate::family::realnvp::Precision,
}

/// What the flow benchmark measured.
#[derive(Clone, Debug)]
pub struct FlowBenchResult {
    /// Wall time of the timed steps (seconds).
    pub seconds: f64,
    /// Steps per second of one flow.
    pub steps_per_sec: f64,
    /// Steps per second summed over the concurrent flows.
    pub run_steps_per_sec: f64,
    /// Loss at the first and last timed step (flow 0).
    pub loss: (f64, f64),
}

impl FlowBench {
    /// The benchmark's flow architecture.
    pub fn arch(&self) -> crate::family::realnvp::FlowArch {
        crate::family::realnvp::FlowArch::benchmark(self.d, self.width)
    }

    fn one(&self, run: u64) -> crate::Result<(f64, f64, f64)> {
        use crate::family::{RealNvp, VariationalFamily};
        use crate::optim::{Adam, DEFAULT_DIVERGENCE_BOUND, GroupRates};
        use crate::seed::{Purpose, stream};
        let target = crate::target::IsotropicMixture::bimodal(self.d, 3.0, 0.8);
        let mut init = stream(0, run, Purpose::Init);
        let mut q = RealNvp::new(self.arch(), self.precision, &mut init)?;
        let rates = GroupRates {
            mean: 1.0,
            log_scale: 1.0,
            logit: 1.0,
            network: 1.0,
        };
        let mut opt = Adam::new(1e-3, rates, 0.9, 0.999, 1e-8);
        let groups = q.groups();
        let mut rng = stream(0, run, Purpose::Sgd);
        let mut grad = vec![0.0; q.params().len()];
        let mut eps = Vec::new();
        let est = crate::objective::Estimator::Full;
        // the training loop's step (train::Trainable): with f32 passes the gradient stays in the
        // engine and Adam runs fused with the f32 rounding of θ and the finiteness checks
        let mut step = |q: &mut RealNvp, opt: &mut Adam| {
            use crate::train::Trainable;
            let l = q.loss_and_grad_deferred(
                &target, 1.0, est, self.batch, &mut rng, &mut eps, &mut grad,
            );
            let ok = Trainable::update(q, opt, &mut grad, &groups, 1.0)
                && q.params_within(DEFAULT_DIVERGENCE_BOUND);
            if ok { l } else { f64::NAN }
        };
        for _ in 0..3 {
            step(&mut q, &mut opt);
        }
        let start = Instant::now();
        let first = step(&mut q, &mut opt);
        let mut last = first;
        for _ in 1..self.steps {
            last = step(&mut q, &mut opt);
        }
        Ok((start.elapsed().as_secs_f64(), first, last))
    }

    /// Runs the benchmark. Errors on an invalid architecture or if the threads cannot start.
    pub fn run(&self) -> crate::Result<FlowBenchResult> {
        let n = self.threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| crate::Error::Invalid(format!("cannot start {n} threads: {e}")))?;
        let start = Instant::now();
        let res: Vec<crate::Result<(f64, f64, f64)>> =
            pool.install(|| (0..n as u64).into_par_iter().map(|r| self.one(r)).collect());
        let wall = start.elapsed().as_secs_f64();
        let res = res.into_iter().collect::<crate::Result<Vec<_>>>()?;
        let per: f64 = res.iter().map(|r| self.steps as f64 / r.0).sum::<f64>() / n as f64;
        let _ = wall;
        Ok(FlowBenchResult {
            seconds: res[0].0,
            steps_per_sec: per,
            run_steps_per_sec: per * n as f64,
            loss: (res[0].1, res[0].2),
        })
    }
}
