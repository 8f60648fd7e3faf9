//! `annealvi figure adaptive`: the adaptive schedule (`schedule.kind = "adaptive"`,
//! docs/adaptive.md) against no annealing, the best exponential, the best
//! linear-in-temperature schedule and, where the theory has it, the optimal schedule, on four
//! problems at a few training-step budgets.
//!
//! The problems ([`AdaptiveSpec::full`]):
//!
//! * `bimodal_gmm`: the paper's bimodal target with the Gaussian-mixture student, statistics
//!   engine (configs/fig2.toml's run section: d = 512, R = 3, w* = 0.8, η = 0.05, B = 32,
//!   σ(0)² = 1/β(0)); metric P(collapse);
//! * `bimodal_flow`: the RealNVP setting of configs/fig4-quick.toml (d = 16; 500 steps at
//!   β = 1 after the annealing, the sweep's 1000 halved); P(collapse);
//! * `gmm40`: GMM40 with a RealNVP flow (Adam); modes covered (of 40), with EMC and the ln Z
//!   error beside it;
//! * `many_well`: Many Well (d = 32) with a RealNVP flow (Adam); the ln Z error, with the wells
//!   covered, the largest well-mass error and the reverse ESS beside it.
//!
//! At each annealing budget T (every run lasts T + the problem's `extra_steps` steps, the x
//! axis of the figure; no annealing runs as many steps at β = 1) each of the one-parameter
//! schedules — exponential, linear-in-temperature, adaptive (ρ, k, B of the problem's
//! `[schedule]`, by default 0.99, 10, 256, with t0 = T as its budget) — gets its own β_i: the
//! value of the problem's grid with the best headline metric over `pilot_seeds` pilot runs
//! (seeds from 10⁶ on, disjoint from the evaluation seeds; the first β_i on ties). The
//! evaluation then runs seeds 0..seeds−1 of every schedule; seed k starts from the same draw and
//! sees the same noise under every schedule (the initial state also depends on σ(0)² = 1/β(0)),
//! so every schedule is compared with the exponential one on paired seeds: McNemar's exact test
//! for P(collapse), the Wilcoxon signed-rank test (exact up to 500 pairs) for a continuous
//! metric. Intervals: Wilson 95% for P(collapse), Student-t 95% for means. With `optimal`
//! the problem also runs the optimal schedule of the sharp formula
//! ([`crate::design::optimal::optimise_verified`]: the formula's optimum, warm-started from
//! the previous budget's, checked against the other candidates by the table ODE over `ics`
//! initial conditions, as `design --shape optimal`), which needs no pilot.
//!
//! Writes `adaptive.csv` (one row per problem, budget and schedule), `adaptive_pilot.csv` (the
//! pilot's rows, with the β_i chosen) and `fig_adaptive.{png,svg}` (one panel per problem: the
//! headline metric against the number of training steps, 95% intervals as error bars).

use super::compare::{PILOT_SEED, RunMetrics, best_index, one_parameter, run_seeds, with_schedule};
use super::{FIG2_FULL, FIG4_QUICK, builtin_config};
use crate::config::FamilyKind;
use crate::design::Predictor;
use crate::design::optimal::optimise_verified;
use crate::error::{Error, Result};
use crate::metrics::{mcnemar_exact, mean_interval, wilcoxon_signed_rank, wilson_interval};
use crate::plot::{ErrorBarChart, ErrorBarSeries, errorbar_grid};
use crate::schedule::{ScheduleConfig, ScheduleKind};
use crate::sweep::SweepConfig;
use crate::theory::formula::FormulaModel;
use std::fmt::Write as _;
use std::path::Path;

/// The schedules of the study, in the order of the rows of a budget.
pub const ADAPTIVE_SCHEDULES: [&str; 5] = [
    "none",
    "exponential",
    "linear_temperature",
    "adaptive",
    "optimal",
];

/// The schedules whose β_i the pilot picks, with their kinds.
const PILOTED: [(&str, ScheduleKind); 3] = [
    ("exponential", ScheduleKind::Exponential),
    ("linear_temperature", ScheduleKind::LinearTemperature),
    ("adaptive", ScheduleKind::Adaptive),
];

/// GMM40 with a RealNVP flow (full study): 6 couplings, MLPs of depth 3 and width 32, base
/// σ0² = 1/β(0), scale bound 3, Adam 1e-3, B = 128; 500 steps at β = 1 after the annealing.
pub const GMM40_FLOW: &str = "\
[grid]
extra_steps = 500

[run]
seed = 2026

[run.target]
kind = \"gmm40\"
d = 2

[run.student]
family = \"realnvp\"

[run.student.realnvp]
layers = 6
depth = 3
width = 32
sigma0 = \"schedule\"
scale_bound = 3.0
eval_samples = 4000

[run.objective]
estimator = \"full\"
samples = 128

[run.optim]
kind = \"adam\"
lr = 0.001
";

/// Many Well (d = 32) with a RealNVP flow (full study): 6 couplings, MLPs of depth 3 and width
/// 32, base σ0² = 1/β(0), scale bound 3, Adam 1e-3, B = 128; 500 steps at β = 1 after the
/// annealing.
pub const MANY_WELL_FLOW: &str = "\
[grid]
extra_steps = 500

[run]
seed = 2026

[run.target]
kind = \"many_well\"
d = 32

[run.student]
family = \"realnvp\"

[run.student.realnvp]
layers = 6
depth = 3
width = 32
sigma0 = \"schedule\"
scale_bound = 3.0
eval_samples = 4000

[run.objective]
estimator = \"full\"
samples = 128

[run.optim]
kind = \"adam\"
lr = 0.001
";

/// The headline metric of a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Headline {
    /// P(collapse): Wilson 95% interval, McNemar's exact test.
    Collapse,
    /// GMM40's modes covered (of 40), higher is better: mean, t interval, Wilcoxon.
    ModesCovered,
    /// The ln Z error of a benchmark target, lower is better: mean, t interval, Wilcoxon.
    LogZError,
}

impl Headline {
    /// The metric's name in adaptive.csv.
    pub fn name(self) -> &'static str {
        match self {
            Headline::Collapse => "p_collapse",
            Headline::ModesCovered => "modes_covered",
            Headline::LogZError => "log_z_error",
        }
    }

    fn lower_is_better(self) -> bool {
        !matches!(self, Headline::ModesCovered)
    }

    fn binary(self) -> bool {
        matches!(self, Headline::Collapse)
    }

    /// The per-run value (1/0 for a collapse; NaN where undefined).
    fn value(self, m: &RunMetrics) -> f64 {
        match self {
            Headline::Collapse => f64::from(u8::from(m.collapsed)),
            Headline::ModesCovered => m.modes_covered,
            Headline::LogZError => m.log_z_error,
        }
    }

    /// The score over runs: P(collapse), or the mean over the finite values.
    fn score(self, runs: &[RunMetrics]) -> f64 {
        finite_mean(runs.iter().map(|m| self.value(m)))
    }
}

fn finite_mean(xs: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = xs.filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// One problem of the study.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveProblem {
    /// Short name (a column of adaptive.csv).
    pub name: String,
    /// Panel title.
    pub title: String,
    /// The run settings (`run`; the schedule is replaced) and `grid.extra_steps`, the steps
    /// at β = 1 after the annealing; the rest of the grid is not used.
    pub config: SweepConfig,
    /// Annealing budgets T (steps).
    pub budgets: Vec<f64>,
    /// Evaluation seeds per schedule (0..seeds−1).
    pub seeds: usize,
    /// Pilot seeds per (schedule, β_i) (from 10⁶ on).
    pub pilot_seeds: usize,
    /// The β_i the pilot tries, for each one-parameter schedule.
    pub beta_i: Vec<f64>,
    /// The headline metric (the pilot's criterion, the figure's y axis, the test's subject).
    pub headline: Headline,
    /// Also run the optimal schedule of the sharp formula (a bimodal target and the
    /// two-component Gaussian-mixture student with fixed weights ½).
    pub optimal: bool,
}

/// The size of the study.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveSpec {
    /// The problems, one panel each.
    pub problems: Vec<AdaptiveProblem>,
    /// Equal time slices of the optimal schedule.
    pub segments: usize,
    /// Initial conditions of the table-ODE check that picks the optimal schedule among the
    /// optimiser's candidates ([`crate::design::optimal::optimise_verified`]).
    pub ics: usize,
}

fn parse(text: &str, name: &str) -> Result<SweepConfig> {
    builtin_config(text, name)
}

impl AdaptiveSpec {
    /// The full study (its time: the guide's results page): `bimodal_gmm` at T = 1000, 2000, 4000
    /// (+500), 1000 seeds, pilot 200 seeds over β_i ∈ {0.01, 0.03, 0.1, 0.3}; `bimodal_flow`
    /// at T = 150, 300, 1000 (+500), 64 runs, pilot 12 over {0.03, 0.1, 0.3}; `gmm40`
    /// ([`GMM40_FLOW`]) at T = 500, 1000, 2000 (+500), 24 runs, pilot 6 over
    /// {0.003, 0.01, 0.03}; `many_well` ([`MANY_WELL_FLOW`]) at T = 500, 1500 (+500), 16
    /// runs, pilot 4 over {0.03, 0.1, 0.3}.
    pub fn full() -> Result<Self> {
        let mut gm = parse(FIG2_FULL, "adaptive study (bimodal_gmm)")?;
        gm.run.record.every = 0;
        let mut flow = parse(FIG4_QUICK, "adaptive study (bimodal_flow)")?;
        flow.run.record.every = 0;
        flow.grid.extra_steps = 500;
        let mut gmm40 = parse(GMM40_FLOW, "adaptive study (gmm40)")?;
        gmm40.run.record.every = 0;
        let mut mw = parse(MANY_WELL_FLOW, "adaptive study (many_well)")?;
        mw.run.record.every = 0;
        Ok(Self {
            problems: vec![
                AdaptiveProblem {
                    name: "bimodal_gmm".into(),
                    title: "(a) bimodal d = 512, Gaussian mixture".into(),
                    config: gm,
                    budgets: vec![1000.0, 2000.0, 4000.0],
                    seeds: 1000,
                    pilot_seeds: 200,
                    beta_i: vec![0.01, 0.03, 0.1, 0.3],
                    headline: Headline::Collapse,
                    optimal: true,
                },
                AdaptiveProblem {
                    name: "bimodal_flow".into(),
                    title: "(b) bimodal d = 16, RealNVP".into(),
                    config: flow,
                    budgets: vec![150.0, 300.0, 1000.0],
                    seeds: 64,
                    pilot_seeds: 12,
                    beta_i: vec![0.03, 0.1, 0.3],
                    headline: Headline::Collapse,
                    optimal: false,
                },
                AdaptiveProblem {
                    name: "gmm40".into(),
                    title: "(c) GMM40, RealNVP".into(),
                    config: gmm40,
                    budgets: vec![500.0, 1000.0, 2000.0],
                    seeds: 24,
                    pilot_seeds: 6,
                    beta_i: vec![0.003, 0.01, 0.03],
                    headline: Headline::ModesCovered,
                    optimal: false,
                },
                AdaptiveProblem {
                    name: "many_well".into(),
                    title: "(d) Many Well d = 32, RealNVP".into(),
                    config: mw,
                    budgets: vec![500.0, 1500.0],
                    seeds: 16,
                    pilot_seeds: 4,
                    beta_i: vec![0.03, 0.1, 0.3],
                    headline: Headline::LogZError,
                    optimal: false,
                },
            ],
            segments: 10,
            ics: 10_000,
        })
    }

    /// The quick study (about a minute): one budget per problem, fewer seeds, and
    /// smaller flows with fewer steps: `bimodal_gmm` T = 1000 (+500), 100 seeds, pilot 40 over
    /// {0.03, 0.1, 0.3}; `bimodal_flow` T = 300 (+300), 12 runs, pilot 6 over {0.1, 0.3};
    /// `gmm40` with 4 couplings, T = 400 (+200), 8 runs, pilot 4 over {0.01, 0.1};
    /// `many_well` with 4 couplings, T = 300 (+100), 8 runs, pilot 4 over {0.1, 0.3}.
    pub fn quick() -> Result<Self> {
        let mut s = Self::full()?;
        for p in &mut s.problems {
            match p.name.as_str() {
                "bimodal_gmm" => {
                    p.budgets = vec![1000.0];
                    p.seeds = 100;
                    p.pilot_seeds = 40;
                    p.beta_i = vec![0.03, 0.1, 0.3];
                }
                "bimodal_flow" => {
                    p.budgets = vec![300.0];
                    p.config.grid.extra_steps = 300;
                    p.seeds = 12;
                    p.pilot_seeds = 6;
                    p.beta_i = vec![0.1, 0.3];
                }
                "gmm40" => {
                    p.budgets = vec![400.0];
                    p.config.grid.extra_steps = 200;
                    p.config.run.student.realnvp.layers = 4;
                    p.seeds = 8;
                    p.pilot_seeds = 4;
                    p.beta_i = vec![0.01, 0.1];
                }
                _ => {
                    p.budgets = vec![300.0];
                    p.config.grid.extra_steps = 100;
                    p.config.run.student.realnvp.layers = 4;
                    p.seeds = 8;
                    p.pilot_seeds = 4;
                    p.beta_i = vec![0.1, 0.3];
                }
            }
        }
        s.ics = 2000;
        Ok(s)
    }

    /// Sets the evaluation seeds of every problem (`--seeds`).
    pub fn with_seeds(mut self, seeds: usize) -> Self {
        for p in &mut self.problems {
            p.seeds = seeds;
        }
        self
    }

    /// Checks the spec; errors name the field.
    pub fn validate(&self) -> Result<()> {
        if self.problems.is_empty() {
            return Err(Error::config("problems", "[]", "at least one problem"));
        }
        if self.segments == 0 {
            return Err(Error::config("segments", 0, "at least 1"));
        }
        if self.ics == 0 && self.problems.iter().any(|p| p.optimal) {
            return Err(Error::config(
                "ics",
                0,
                "at least 1 (a problem runs the optimal schedule)",
            ));
        }
        for p in &self.problems {
            let f = |k: &str| format!("{}.{k}", p.name);
            if p.budgets.is_empty() || p.budgets.iter().any(|t| !(*t >= 1.0 && t.is_finite())) {
                return Err(Error::config(
                    &f("budgets"),
                    format!("{:?}", p.budgets),
                    "at least one finite budget ≥ 1 step",
                ));
            }
            if p.seeds == 0 {
                return Err(Error::config(&f("seeds"), 0, "at least 1"));
            }
            if p.pilot_seeds == 0 {
                return Err(Error::config(&f("pilot_seeds"), 0, "at least 1"));
            }
            if p.beta_i.is_empty() || p.beta_i.iter().any(|b| !(*b > 0.0 && *b < 1.0)) {
                return Err(Error::config(
                    &f("beta_i"),
                    format!("{:?}", p.beta_i),
                    "at least one value in (0, 1)",
                ));
            }
            let mixture = p.config.run.student.family == FamilyKind::Gmm;
            if p.optimal && (!mixture || FormulaModel::from_sweep(&p.config).is_none()) {
                return Err(Error::config(
                    &f("optimal"),
                    "true",
                    "false (the optimal schedule needs the sharp formula's model: a bimodal \
                     target, the Gaussian-mixture student with two components of fixed weights \
                     ½)",
                ));
            }
            p.config.run.validate()?;
        }
        Ok(())
    }
}

/// One schedule at one budget of one problem.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveRow {
    /// The problem's name.
    pub problem: String,
    /// Training steps of every run (T + extra steps).
    pub steps: usize,
    /// Annealing budget T.
    pub budget: f64,
    /// One of [`ADAPTIVE_SCHEDULES`].
    pub schedule: &'static str,
    /// β(0) (1 without annealing).
    pub beta0: f64,
    /// The headline metric.
    pub headline: Headline,
    /// Runs with a finite headline value.
    pub n: usize,
    /// The headline value: P(collapse) or a mean.
    pub value: f64,
    /// Its 95% interval (Wilson or Student t).
    pub low: f64,
    /// Its 95% interval's upper end.
    pub high: f64,
    /// Two-sided p of the paired test against the exponential schedule (None for it).
    pub p_vs_exponential: Option<f64>,
    /// Seeds better than under the exponential schedule (survived where it collapsed).
    pub better: usize,
    /// Seeds worse than under the exponential schedule.
    pub worse: usize,
    /// Diverged runs.
    pub diverged: usize,
    /// Mean modes covered (GMM40), t interval.
    pub modes_covered: (f64, f64, f64),
    /// Mean EMC (GMM40), t interval.
    pub emc: (f64, f64, f64),
    /// Mean ln Z error (benchmark targets), t interval.
    pub log_z_error: (f64, f64, f64),
    /// Mean wells covered (Many Well, of 2 per copy).
    pub wells_covered: f64,
    /// Mean of the largest well-mass error (Many Well).
    pub well_mass_error: f64,
    /// Mean reverse ESS fraction (benchmark targets).
    pub reverse_ess: f64,
    /// Adaptive: the median step at which β reached 1.
    pub beta_one_median: Option<f64>,
    /// Extra evaluations of ln π per step (B/k for adaptive, else 0).
    pub extra_evals_per_step: f64,
    /// Summed wall time of the runs (s).
    pub seconds: f64,
    /// The pilot's summed wall time of this schedule over the β_i grid against the
    /// exponential's (the same β_i and seeds, so the same initial states; a piloted schedule
    /// only).
    pub pilot_time_vs_exponential: Option<f64>,
}

/// One pilot cell: a schedule at one β_i.
#[derive(Clone, Debug, PartialEq)]
pub struct PilotRow {
    /// The problem's name.
    pub problem: String,
    /// Annealing budget T.
    pub budget: f64,
    /// "exponential", "linear_temperature" or "adaptive".
    pub schedule: &'static str,
    /// β_i.
    pub beta_i: f64,
    /// Pilot runs.
    pub n: usize,
    /// The headline score (P(collapse) or mean).
    pub score: f64,
    /// Whether this β_i was chosen.
    pub chosen: bool,
    /// Summed wall time of the runs (s).
    pub seconds: f64,
}

/// The rows of the study.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveReport {
    /// One per problem, budget and schedule.
    pub rows: Vec<AdaptiveRow>,
    /// The pilot's cells.
    pub pilot: Vec<PilotRow>,
}

/// `annealvi figure adaptive [--quick] [--seeds N]`: the study written to `out`.
pub fn figure_adaptive(out: &Path, quick: bool, seeds: Option<usize>) -> Result<AdaptiveReport> {
    let mut spec = if quick {
        AdaptiveSpec::quick()?
    } else {
        AdaptiveSpec::full()?
    };
    if let Some(n) = seeds {
        if n == 0 {
            return Err(Error::config("--seeds", 0, "at least 1"));
        }
        spec = spec.with_seeds(n);
    }
    figure_adaptive_with(out, &spec)
}

/// The schedule section of a one-parameter or adaptive schedule from β_i over `budget`; the
/// adaptive rule's ρ, k and B come from the problem's `[schedule]`.
fn schedule_of(
    p: &AdaptiveProblem,
    kind: ScheduleKind,
    beta_i: f64,
    budget: f64,
) -> ScheduleConfig {
    let base = &p.config.run.schedule;
    ScheduleConfig {
        rho: base.rho,
        every: base.every,
        samples: base.samples,
        ..one_parameter(kind, beta_i, budget)
    }
}

/// The study of `spec`, written to `out`.
pub fn figure_adaptive_with(out: &Path, spec: &AdaptiveSpec) -> Result<AdaptiveReport> {
    spec.validate()?;
    crate::output::ensure_dir(out)?;
    let start = std::time::Instant::now();
    let mut report = AdaptiveReport {
        rows: Vec::new(),
        pilot: Vec::new(),
    };
    for p in &spec.problems {
        let model = if p.optimal {
            FormulaModel::from_sweep(&p.config)
                .map(|m| Predictor::from_sweep(&p.config, spec.ics).map(|pred| (m, pred)))
                .transpose()?
        } else {
            None
        };
        let mut warm: Vec<Vec<f64>> = Vec::new();
        for &budget in &p.budgets {
            let budget = budget.round();
            let steps = budget as usize + p.config.grid.extra_steps;
            let cfg = |s: ScheduleConfig| with_schedule(&p.config.run, s, steps);
            // the pilot: each one-parameter schedule's β_i
            let mut chosen = Vec::new();
            for (name, kind) in PILOTED {
                let (mut scores, mut seconds) = (Vec::new(), Vec::new());
                for &bi in &p.beta_i {
                    let c = cfg(schedule_of(p, kind, bi, budget))?;
                    let r = run_seeds(&c, PILOT_SEED, p.pilot_seeds)?;
                    scores.push(p.headline.score(&r));
                    seconds.push(r.iter().map(|m| m.seconds).sum::<f64>());
                }
                let best = best_index(&scores, p.headline.lower_is_better());
                for (j, &bi) in p.beta_i.iter().enumerate() {
                    report.pilot.push(PilotRow {
                        problem: p.name.clone(),
                        budget,
                        schedule: name,
                        beta_i: bi,
                        n: p.pilot_seeds,
                        score: scores[j],
                        chosen: j == best,
                        seconds: seconds[j],
                    });
                }
                chosen.push((name, kind, p.beta_i[best]));
            }
            // the evaluation, seeds 0..seeds−1 of every schedule
            let mut runs: Vec<(&'static str, f64, f64, Vec<RunMetrics>)> = Vec::new();
            let none = ScheduleConfig {
                kind: ScheduleKind::Constant,
                beta: 1.0,
                ..Default::default()
            };
            runs.push(("none", 1.0, 0.0, run_seeds(&cfg(none)?, 0, p.seeds)?));
            for &(name, kind, bi) in &chosen {
                let s = schedule_of(p, kind, bi, budget);
                let extra = if kind == ScheduleKind::Adaptive {
                    s.samples as f64 / s.every as f64
                } else {
                    0.0
                };
                runs.push((name, bi, extra, run_seeds(&cfg(s)?, 0, p.seeds)?));
            }
            if let Some((model, pred)) = &model {
                let (o, _) = optimise_verified(pred, model, budget, spec.segments, &warm)?;
                let s = ScheduleConfig {
                    kind: ScheduleKind::Points,
                    points: o.knots.clone(),
                    ..Default::default()
                };
                runs.push((
                    "optimal",
                    o.knots[0].1,
                    0.0,
                    run_seeds(&cfg(s)?, 0, p.seeds)?,
                ));
                warm = vec![o.theta];
            }
            let first = report.rows.len();
            let exp = runs
                .iter()
                .find(|r| r.0 == "exponential")
                .map(|r| r.3.clone())
                .unwrap_or_default();
            for (name, b0, extra, r) in &runs {
                let mut row = row_of(p, budget, steps, name, *b0, *extra, r, &exp);
                row.pilot_time_vs_exponential = pilot_time_ratio(&report.pilot, &row);
                report.rows.push(row);
            }
            crate::progress::note(&format!(
                "{} T = {budget:.0} ({steps} steps): {} ({:.1} s)",
                p.name,
                report.rows[first..]
                    .iter()
                    .map(|r| format!("{} (β0 {:.3}) {}", r.schedule, r.beta0, headline_text(r)))
                    .collect::<Vec<_>>()
                    .join(", "),
                start.elapsed().as_secs_f64()
            ));
        }
    }
    write_rows(out, &report.rows)?;
    write_pilot(out, &report.pilot)?;
    draw(out, spec, &report.rows)?;
    summary(&report.rows);
    crate::progress::note(&format!(
        "wrote {} ({:.1} s)",
        out.join("adaptive.csv").display(),
        start.elapsed().as_secs_f64()
    ));
    Ok(report)
}

/// The row of one schedule's runs `r`, compared with the exponential schedule's `exp` (the
/// same seeds).
#[allow(clippy::too_many_arguments)]
fn row_of(
    p: &AdaptiveProblem,
    budget: f64,
    steps: usize,
    schedule: &'static str,
    beta0: f64,
    extra: f64,
    r: &[RunMetrics],
    exp: &[RunMetrics],
) -> AdaptiveRow {
    let h = p.headline;
    let finite = |f: fn(&RunMetrics) -> f64| -> Vec<f64> {
        r.iter().map(f).filter(|x| x.is_finite()).collect()
    };
    let values: Vec<f64> = r
        .iter()
        .map(|m| h.value(m))
        .filter(|x| x.is_finite())
        .collect();
    let (n, value, low, high) = if h.binary() {
        let k = r.iter().filter(|m| m.collapsed).count();
        let (lo, hi) = wilson_interval(k, r.len());
        (r.len(), k as f64 / r.len().max(1) as f64, lo, hi)
    } else {
        let (m, lo, hi) = mean_interval(&values);
        (values.len(), m, lo, hi)
    };
    // paired comparison with the exponential schedule on the seeds where both are defined
    let is_exp = schedule == "exponential";
    let pairs: Vec<(f64, f64)> = r
        .iter()
        .zip(exp)
        .map(|(a, b)| (h.value(a), h.value(b)))
        .filter(|(a, b)| a.is_finite() && b.is_finite())
        .collect();
    let sign = if h.lower_is_better() { 1.0 } else { -1.0 };
    let better = pairs.iter().filter(|(a, b)| sign * (a - b) < 0.0).count();
    let worse = pairs.iter().filter(|(a, b)| sign * (a - b) > 0.0).count();
    let p_vs_exponential = (!is_exp && !exp.is_empty()).then(|| {
        if h.binary() {
            // discordant seeds: collapsed only here (worse), only under the exponential (better)
            mcnemar_exact(worse, better)
        } else {
            let d: Vec<f64> = pairs.iter().map(|(a, b)| a - b).collect();
            wilcoxon_signed_rank(&d)
        }
    });
    let beta_one_median = (schedule == "adaptive").then(|| {
        let mut s: Vec<f64> = r
            .iter()
            .map(|m| m.beta_one_at.map_or(budget, |t| t as f64))
            .collect();
        median(&mut s)
    });
    AdaptiveRow {
        problem: p.name.clone(),
        steps,
        budget,
        schedule,
        beta0,
        headline: h,
        n,
        value,
        low,
        high,
        p_vs_exponential,
        better: if is_exp { 0 } else { better },
        worse: if is_exp { 0 } else { worse },
        diverged: r.iter().filter(|m| m.diverged).count(),
        modes_covered: mean_interval(&finite(|m| m.modes_covered)),
        emc: mean_interval(&finite(|m| m.emc)),
        log_z_error: mean_interval(&finite(|m| m.log_z_error)),
        wells_covered: finite_mean(r.iter().map(|m| m.wells_covered)),
        well_mass_error: finite_mean(r.iter().map(|m| m.well_mass_error)),
        reverse_ess: finite_mean(r.iter().map(|m| m.reverse_ess)),
        beta_one_median,
        extra_evals_per_step: extra,
        seconds: r.iter().map(|m| m.seconds).sum(),
        pilot_time_vs_exponential: None,
    }
}

/// [`AdaptiveRow::pilot_time_vs_exponential`] from the pilot's cells.
fn pilot_time_ratio(pilot: &[PilotRow], row: &AdaptiveRow) -> Option<f64> {
    let total = |schedule: &str| -> f64 {
        pilot
            .iter()
            .filter(|c| {
                c.problem == row.problem && c.budget == row.budget && c.schedule == schedule
            })
            .map(|c| c.seconds)
            .sum()
    };
    PILOTED
        .iter()
        .any(|(s, _)| *s == row.schedule)
        .then(|| total(row.schedule) / total("exponential"))
}

/// The median of `xs` (NaN when empty); sorts `xs`.
fn median(xs: &mut [f64]) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        0.5 * (xs[n / 2 - 1] + xs[n / 2])
    }
}

/// `0.12 [0.08, 0.17]` (with the p-value against the exponential when there is one).
fn headline_text(r: &AdaptiveRow) -> String {
    let mut s = format!("{:.3} [{:.3}, {:.3}]", r.value, r.low, r.high);
    if let Some(p) = r.p_vs_exponential {
        let _ = write!(s, " p={p:.2e}");
    }
    s
}

/// A number for the CSV: empty when not finite.
fn num(x: f64) -> String {
    if x.is_finite() {
        x.to_string()
    } else {
        String::new()
    }
}

/// The header of adaptive.csv.
pub const ADAPTIVE_CSV_HEADER: &str = "problem,steps,budget,schedule,beta0,metric,n,value,ci_low,ci_high,interval,test,p_vs_exponential,better,worse,diverged,modes_covered,modes_covered_low,modes_covered_high,emc,emc_low,emc_high,log_z_error,log_z_error_low,log_z_error_high,wells_covered,well_mass_error,reverse_ess,beta_one_median,extra_evals_per_step,seconds,time_vs_exponential,pilot_time_vs_exponential";

fn write_rows(out: &Path, rows: &[AdaptiveRow]) -> Result<()> {
    let mut s = format!("{ADAPTIVE_CSV_HEADER}\n");
    for r in rows {
        let exp_seconds = rows
            .iter()
            .find(|e| e.problem == r.problem && e.budget == r.budget && e.schedule == "exponential")
            .map(|e| e.seconds);
        let (interval, test) = if r.headline.binary() {
            ("wilson", "mcnemar")
        } else {
            ("t", "wilcoxon")
        };
        let tri = |t: (f64, f64, f64)| format!("{},{},{}", num(t.0), num(t.1), num(t.2));
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.problem,
            r.steps,
            r.budget,
            r.schedule,
            r.beta0,
            r.headline.name(),
            r.n,
            num(r.value),
            num(r.low),
            num(r.high),
            interval,
            test,
            r.p_vs_exponential.map_or(String::new(), num),
            r.better,
            r.worse,
            r.diverged,
            tri(r.modes_covered),
            tri(r.emc),
            tri(r.log_z_error),
            num(r.wells_covered),
            num(r.well_mass_error),
            num(r.reverse_ess),
            r.beta_one_median.map_or(String::new(), num),
            r.extra_evals_per_step,
            r.seconds,
            exp_seconds.map_or(String::new(), |e| num(r.seconds / e)),
            r.pilot_time_vs_exponential.map_or(String::new(), num),
        );
    }
    crate::output::write_text(&out.join("adaptive.csv"), &s)
}

fn write_pilot(out: &Path, rows: &[PilotRow]) -> Result<()> {
    let mut s = String::from("problem,budget,schedule,beta_i,n,score,chosen,seconds\n");
    for r in rows {
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{}",
            r.problem,
            r.budget,
            r.schedule,
            r.beta_i,
            r.n,
            num(r.score),
            r.chosen,
            r.seconds
        );
    }
    crate::output::write_text(&out.join("adaptive_pilot.csv"), &s)
}

fn draw(out: &Path, spec: &AdaptiveSpec, rows: &[AdaptiveRow]) -> Result<()> {
    let charts: Vec<ErrorBarChart> = spec
        .problems
        .iter()
        .map(|p| {
            let mine: Vec<&AdaptiveRow> = rows.iter().filter(|r| r.problem == p.name).collect();
            let series = ADAPTIVE_SCHEDULES
                .iter()
                .enumerate()
                .filter(|(_, s)| mine.iter().any(|r| r.schedule == **s))
                .map(|(i, s)| ErrorBarSeries {
                    label: (*s).to_string(),
                    // offset each schedule slightly in x so that the bars do not overlap
                    points: mine
                        .iter()
                        .filter(|r| r.schedule == *s)
                        .map(|r| {
                            let x = r.steps as f64 * (1.0 + 0.012 * (i as f64 - 2.0));
                            (x, r.value, r.low, r.high)
                        })
                        .collect(),
                })
                .collect();
            let y_label = match p.headline {
                Headline::Collapse => "P(collapse), Wilson 95%",
                Headline::ModesCovered => "modes covered of 40, mean ± t 95%",
                Headline::LogZError => "ln Z error, mean ± t 95%",
            };
            // an invisible line (no label, y undefined) widens the x range beyond the offsets
            let xs = mine.iter().map(|r| r.steps as f64);
            let (lo, hi) = (
                xs.clone().fold(f64::INFINITY, f64::min),
                xs.fold(0.0, f64::max),
            );
            let pad = (
                String::new(),
                vec![(lo / 1.3, f64::NAN), (hi * 1.3, f64::NAN)],
            );
            ErrorBarChart {
                title: format!("{}: {} seeds", p.title, p.seeds),
                x_label: "training steps".into(),
                y_label: y_label.into(),
                x_log: p.budgets.len() > 1,
                y_log: false,
                series,
                extra_lines: vec![pad],
                extra_colors: Vec::new(),
            }
        })
        .collect();
    errorbar_grid(&charts, 2, out, "fig_adaptive")?;
    Ok(())
}

/// The summary on the progress channel: per problem and budget, each schedule's headline
/// against the exponential's, and adaptive's cost.
fn summary(rows: &[AdaptiveRow]) {
    for r in rows.iter().filter(|r| r.schedule == "adaptive") {
        let Some(e) = rows.iter().find(|e| {
            e.problem == r.problem && e.budget == r.budget && e.schedule == "exponential"
        }) else {
            continue;
        };
        let verdict = match r.p_vs_exponential {
            Some(p) if p < 0.05 && r.better > r.worse => "adaptive better",
            Some(p) if p < 0.05 => "adaptive worse",
            _ => "no significant difference",
        };
        crate::progress::note(&format!(
            "{} at {} steps: {} adaptive {} vs exponential {}: {verdict}; β = 1 at step {:.0} \
             (median); {:.1} extra ln π evaluations per step, wall time {:.2}× the exponential's \
             ({:.2}× over the pilot's β_i grid)",
            r.problem,
            r.steps,
            r.headline.name(),
            headline_text(r),
            headline_text(e),
            r.beta_one_median.unwrap_or(f64::NAN),
            r.extra_evals_per_step,
            r.seconds / e.seconds,
            r.pilot_time_vs_exponential.unwrap_or(f64::NAN)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }
}
