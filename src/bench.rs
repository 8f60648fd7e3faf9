//! Throughput benchmark of the SGD workload behind the sweeps.
//!
//! `annealvi bench gmm`: S independent runs (seeds) of plain SGD on the paper's problem
//! (bimodal target R = 3, w* = 0.8; 2-component student, fixed weights ½; η = 0.05;
//! σ(0) = 1; means ~ N(0, I_d); no annealing; full reparametrised estimator with B samples
//! per component), spread over a rayon pool. Reports run-steps per second = S·T / wall time.
//! `scripts/bench_torch.py` runs the same workload batched in PyTorch for comparison.

use crate::config::Config;
use crate::train::{NoObserver, run_config};
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
        let start = Instant::now();
        let masses: Vec<f64> = pool.install(|| {
            (0..self.seeds as u64)
                .into_par_iter()
                .map(|run| run_config(&cfg, run, &mut NoObserver).1.light_mode_mass)
                .collect()
        });
        let seconds = start.elapsed().as_secs_f64();
        Ok(BenchResult {
            seconds,
            run_steps_per_sec: (self.seeds * self.steps) as f64 / seconds,
            mean_light_mass: masses.iter().sum::<f64>() / masses.len().max(1) as f64,
        })
    }
}
