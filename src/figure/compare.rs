//! The comparison harness the schedule studies share (`figure schedules-flow`, `figure
//! adaptive`): a run configuration with another schedule, the one-parameter schedules, the
//! pilot's pick of β_i, and runs over a range of seeds with the metrics a study compares.
//!
//! Seeds are paired: run k of every schedule uses the streams (k, k) of
//! [`crate::run::Trainer::index`], so it starts from the same initial draw and sees the same
//! noise under every schedule; a pilot uses seeds from [`PILOT_SEED`] on, disjoint from the
//! evaluation seeds 0..n−1. The runs of a range are spread over the rayon pool and returned in
//! seed order, so the numbers do not depend on the thread count.

use crate::config::Config;
use crate::error::Result;
use crate::metrics::Outcome;
use crate::run::{AnyRun, Trainer};
use crate::schedule::{ScheduleConfig, ScheduleKind};
use crate::train::AnnealedAt;

/// Seeds of the pilot runs start here (the evaluation runs use 0..n−1).
pub(crate) const PILOT_SEED: usize = 1_000_000;

/// `run` with `schedule` and `steps` training steps, validated.
pub(crate) fn with_schedule(
    run: &Config,
    schedule: ScheduleConfig,
    steps: usize,
) -> Result<Config> {
    let mut run = run.clone();
    run.schedule = schedule;
    run.optim.steps = steps;
    run.validate()?;
    Ok(run)
}

/// The one-parameter schedule `kind` from β_i to 1 over `budget` steps.
pub(crate) fn one_parameter(kind: ScheduleKind, beta_i: f64, budget: f64) -> ScheduleConfig {
    ScheduleConfig {
        kind,
        beta_i,
        t0: budget,
        ..Default::default()
    }
}

/// The index of the best of `scores` (the lowest, or the highest when `lower_is_better` is
/// false), the first on ties; NaN scores are never best (index 0 when all are NaN).
pub(crate) fn best_index(scores: &[f64], lower_is_better: bool) -> usize {
    let mut best: Option<(usize, f64)> = None;
    for (i, &s) in scores.iter().enumerate() {
        if s.is_nan() {
            continue;
        }
        let better = match best {
            None => true,
            Some((_, b)) if lower_is_better => s < b,
            Some((_, b)) => s > b,
        };
        if better {
            best = Some((i, s));
        }
    }
    best.map_or(0, |b| b.0)
}

/// What one run reports to a comparison. The benchmark metrics are NaN where they do not
/// apply (a target that is not a benchmark, a diverged run).
#[derive(Clone, Debug, PartialEq)]
pub struct RunMetrics {
    /// The run collapsed ([`Outcome::Collapsed`]).
    pub collapsed: bool,
    /// The run diverged ([`Outcome::Diverged`]).
    pub diverged: bool,
    /// GMM40: modes with at least 1% of the samples (of 40).
    pub modes_covered: f64,
    /// GMM40: entropic mode coverage.
    pub emc: f64,
    /// Benchmark targets: |ln Ẑ − ln Z| of the final samples.
    pub log_z_error: f64,
    /// Benchmark targets: importance-sampling ESS / N of the final samples.
    pub reverse_ess: f64,
    /// Many Well: wells (2 per copy) holding at least `student.realnvp.collapse_threshold` of
    /// the samples.
    pub wells_covered: f64,
    /// Many Well: max over copies of |right-well mass − the target's|.
    pub well_mass_error: f64,
    /// The step at which an adaptive schedule reached β = 1.
    pub beta_one_at: Option<usize>,
    /// Wall time of the run (s), on one thread of the pool.
    pub seconds: f64,
}

impl RunMetrics {
    fn of(run: &AnyRun, cfg: &Config, beta_one_at: Option<usize>, seconds: f64) -> Self {
        let nan = f64::NAN;
        let mut m = Self {
            collapsed: matches!(run.outcome(), Outcome::Collapsed { .. }),
            diverged: matches!(run.outcome(), Outcome::Diverged { .. }),
            modes_covered: nan,
            emc: nan,
            log_z_error: nan,
            reverse_ess: nan,
            wells_covered: nan,
            well_mass_error: nan,
            beta_one_at,
            seconds,
        };
        if let AnyRun::Flow(_, r) = run
            && let Some(b) = &r.stats.benchmark
        {
            m.log_z_error = b.log_z_error;
            m.reverse_ess = b.reverse_ess;
            m.modes_covered = b.modes_covered.map_or(nan, |k| k as f64);
            m.emc = b.emc.unwrap_or(nan);
            m.well_mass_error = b.well_mass_error.unwrap_or(nan);
            if let Some(right) = &b.right_well_mass {
                let thr = cfg.student.realnvp.collapse_threshold;
                m.wells_covered = right
                    .iter()
                    .map(|r| usize::from(*r >= thr) + usize::from(1.0 - r >= thr))
                    .sum::<usize>() as f64;
            }
        }
        m
    }
}

/// The runs of `cfg` with seeds `first..first + n` (streams (k, k)), in seed order: the same
/// numbers whatever the thread count (only the wall times differ).
pub(crate) fn run_seeds(cfg: &Config, first: usize, n: usize) -> Result<Vec<RunMetrics>> {
    use rayon::prelude::*;
    let exp = cfg.compile()?;
    (first..first + n)
        .into_par_iter()
        .map(|k| {
            let start = std::time::Instant::now();
            let mut at = AnnealedAt::default();
            let r = Trainer::new(&exp).index(k as u64).observer(&mut at).run()?;
            Ok(RunMetrics::of(&r, cfg, at.0, start.elapsed().as_secs_f64()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::best_index;

    #[test]
    fn best_index_takes_the_first_best_and_skips_nan() {
        assert_eq!(best_index(&[3.0, 1.0, 1.0, 2.0], true), 1);
        assert_eq!(best_index(&[3.0, 1.0, 3.0, 2.0], false), 0);
        assert_eq!(best_index(&[f64::NAN, 5.0, 4.0], true), 2);
        assert_eq!(best_index(&[f64::NAN, 5.0, 4.0], false), 1);
        assert_eq!(best_index(&[f64::NAN, f64::NAN], true), 0);
        assert_eq!(best_index(&[], true), 0);
    }
}
