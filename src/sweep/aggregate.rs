//! Aggregation of a sweep's runs per cell (counts of each outcome, mean light-mode mass and
//! flow statistics) and DIR/cells.csv with Wilson 95% intervals.

use super::{Cell, RunLine, key_of};
use crate::error::Result;
use crate::metrics::{OutcomeKind, wilson_interval};
use crate::output;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;

/// Aggregated outcomes of one cell.
#[derive(Clone, Debug, PartialEq)]
pub struct CellStats {
    /// The cell.
    pub cell: Cell,
    /// Runs.
    pub n: usize,
    /// Collapsed runs.
    pub collapsed: usize,
    /// Diverged runs.
    pub diverged: usize,
    /// Covered runs.
    pub covered: usize,
    /// Mean light-mode mass over non-diverged runs.
    pub mean_light_mass: f64,
    /// Flow students: mean |light-mode mass − (1 − w*)| (NaN for the Gaussian mixture).
    pub mean_mode_weight_error: f64,
    /// Flow students: mean importance-sampling ESS / N (NaN for the Gaussian mixture).
    pub mean_ess_fraction: f64,
    /// Flow students: mean Monte-Carlo KL(q‖π) in nats (NaN for the Gaussian mixture).
    pub mean_kl: f64,
    /// Benchmark targets: means of their metrics (NaN elsewhere).
    pub benchmark: BenchmarkMeans,
}

/// Means over a cell's finished runs of the benchmark targets' metrics
/// ([`BenchmarkMetrics`](crate::target::BenchmarkMetrics)); NaN where no run has the metric.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BenchmarkMeans {
    /// Mean |ln Ẑ − ln Z| (nats), ln Ẑ the importance-sampling estimate from q's samples.
    pub log_z_error: f64,
    /// GMM40: mean number of modes holding ≥ 1% of the samples.
    pub modes_covered: f64,
    /// GMM40: mean entropic mode coverage (entropy of the sample-to-nearest-mode histogram /
    /// ln 40), in [0, 1].
    pub emc: f64,
}

impl Default for BenchmarkMeans {
    fn default() -> Self {
        BenchmarkMeans {
            log_z_error: f64::NAN,
            modes_covered: f64::NAN,
            emc: f64::NAN,
        }
    }
}

impl CellStats {
    /// Runs that ended `partial` (covering some but not all modes of a target with more than
    /// two): n − collapsed − diverged − covered.
    pub fn partial(&self) -> usize {
        self.n
            .saturating_sub(self.collapsed + self.diverged + self.covered)
    }

    /// P(collapse) = collapsed / n.
    pub fn p_collapse(&self) -> f64 {
        self.collapsed as f64 / self.n.max(1) as f64
    }
}

/// Aggregates runs per cell, ordered by (β_i, t0). A run key (β_i, t0, seed) that occurs more
/// than once counts once (its first occurrence).
pub fn aggregate(runs: &[RunLine]) -> Vec<CellStats> {
    // a canonical order, so that floating-point sums do not depend on the order in which
    // runs finished (thread count, interruptions)
    let mut seen = HashSet::new();
    let mut sorted: Vec<&RunLine> = runs.iter().filter(|r| seen.insert(key_of(r))).collect();
    sorted.sort_by_key(|r| key_of(r));
    let mut map: BTreeMap<(u64, u64), CellStats> = BTreeMap::new();
    // sums and counts of light-mode mass, mode-weight error, ESS fraction, KL, then the
    // benchmark metrics: ln Z error, modes covered, EMC
    let mut means: BTreeMap<(u64, u64), [(f64, usize); 7]> = BTreeMap::new();
    for r in sorted {
        // order keys: β_i then t0 (both positive: bit order = numeric order)
        let k = (r.beta_i.to_bits(), r.t0.to_bits());
        let e = map.entry(k).or_insert(CellStats {
            cell: Cell {
                beta_i: r.beta_i,
                t0: r.t0,
            },
            n: 0,
            collapsed: 0,
            diverged: 0,
            covered: 0,
            mean_light_mass: 0.0,
            mean_mode_weight_error: f64::NAN,
            mean_ess_fraction: f64::NAN,
            mean_kl: f64::NAN,
            benchmark: BenchmarkMeans::default(),
        });
        e.n += 1;
        match r.outcome {
            OutcomeKind::Collapsed => e.collapsed += 1,
            OutcomeKind::Diverged => e.diverged += 1,
            OutcomeKind::Covered => e.covered += 1,
            OutcomeKind::Partial => {}
        }
        let me = means.entry(k).or_insert([(0.0, 0); 7]);
        for (acc, v) in me.iter_mut().zip([
            r.light_mode_mass,
            r.mode_weight_error,
            r.ess_fraction,
            r.kl,
            r.log_z_error,
            r.modes_covered.map(|n| n as f64),
            r.emc,
        ]) {
            if let Some(v) = v {
                acc.0 += v;
                acc.1 += 1;
            }
        }
    }
    let mean = |(s, n): (f64, usize)| if n > 0 { s / n as f64 } else { f64::NAN };
    map.into_iter()
        .map(|(k, mut c)| {
            if let Some(m) = means.get(&k) {
                c.mean_light_mass = mean(m[0]);
                c.mean_mode_weight_error = mean(m[1]);
                c.mean_ess_fraction = mean(m[2]);
                c.mean_kl = mean(m[3]);
                c.benchmark = BenchmarkMeans {
                    log_z_error: mean(m[4]),
                    modes_covered: mean(m[5]),
                    emc: mean(m[6]),
                };
            } else {
                c.mean_light_mass = f64::NAN;
            }
            c
        })
        .collect()
}

/// The header of cells.csv.
pub const CELLS_HEADER: &str =
    "beta_i,t0,rate,n,collapsed,diverged,covered,partial,p_collapse,ci_low,ci_high,mean_light_mass";

/// The extra columns of cells.csv for flow students (means over the cell's finished runs).
pub const FLOW_CELLS_COLUMNS: &str = "mean_mode_weight_error,mean_ess_fraction,mean_kl";

/// The extra column of cells.csv for runs against a benchmark target (`target.kind =
/// "gmm40"` or `"many_well"`).
pub const LOG_Z_CELLS_COLUMNS: &str = "mean_log_z_error";

/// The extra columns of cells.csv for runs against the 40-mode mixture (`target.kind =
/// "gmm40"`).
pub const MODE_CELLS_COLUMNS: &str = "mean_modes_covered,mean_emc";

/// Writes DIR/cells.csv: [`CELLS_HEADER`], plus [`FLOW_CELLS_COLUMNS`] when the runs are
/// flow runs, [`LOG_Z_CELLS_COLUMNS`] when some runs carry a ln Z error (benchmark targets)
/// and [`MODE_CELLS_COLUMNS`] when some carry mode counts (GMM40).
pub fn write_cells(dir: &Path, runs: &[RunLine]) -> Result<Vec<CellStats>> {
    let stats = aggregate(runs);
    let flow = runs.iter().any(|r| r.mode_weight_error.is_some());
    let log_z = runs.iter().any(|r| r.log_z_error.is_some());
    let modes = runs.iter().any(|r| r.modes_covered.is_some());
    let mut s = String::from(CELLS_HEADER);
    for (on, cols) in [
        (flow, FLOW_CELLS_COLUMNS),
        (log_z, LOG_Z_CELLS_COLUMNS),
        (modes, MODE_CELLS_COLUMNS),
    ] {
        if on {
            s.push(',');
            s.push_str(cols);
        }
    }
    s.push('\n');
    for c in &stats {
        let (lo, hi) = wilson_interval(c.collapsed, c.n);
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            output::num(c.cell.beta_i),
            output::num(c.cell.t0),
            output::num(c.cell.rate()),
            c.n,
            c.collapsed,
            c.diverged,
            c.covered,
            c.partial(),
            c.p_collapse(),
            lo,
            hi,
            c.mean_light_mass
        );
        let b = &c.benchmark;
        for (on, values) in [
            (
                flow,
                &[c.mean_mode_weight_error, c.mean_ess_fraction, c.mean_kl][..],
            ),
            (log_z, &[b.log_z_error][..]),
            (modes, &[b.modes_covered, b.emc][..]),
        ] {
            if on {
                s.pop();
                for v in values {
                    let _ = write!(s, ",{v}");
                }
                s.push('\n');
            }
        }
    }
    output::write_text(&dir.join("cells.csv"), &s)?;
    Ok(stats)
}
