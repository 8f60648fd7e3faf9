//! `annealvi figure schedules-flow`: the Gaussian-mixture theory's optimal schedule shape carried
//! to a RealNVP flow (docs/theory.md §10, "Carried to flows").
//!
//! The optimal schedule of the mixture model (configs/fig2.toml's run section; `design --shape
//! optimal`: Nelder–Mead on the sharp formula at an annealing budget T_gm) is a list of knots
//! (t_j, β_j), piecewise linear in ln β. Its *shape* is the knots in normalised time,
//! (t_j/T_gm, β_j); rescaled to a flow budget T it is the schedule with knots (t_j T/T_gm, β_j).
//! For each flow budget T it is compared with the exponential and the linear-in-temperature
//! schedules from β_i to 1 in T steps, each followed by the sweep's `extra_steps` at β = 1,
//! on the flow model of configs/fig4-quick.toml (d = 16, RealNVP with 4 couplings, Adam).
//!
//! The one-parameter shapes get the flow's own best β_i: a pilot of `pilot_runs` runs at each
//! β_i of `pilot_beta_i` (seeds disjoint from the main runs'), the fewest collapses winning (the
//! smallest β_i on ties). The main comparison then runs seeds 0..runs−1 of each of the three
//! schedules. The flow's initial state depends on β(0) (σ0² = 1/β(0)), so runs of two schedules
//! share a seed but not an initial state: the schedules are compared as independent samples, by
//! the two-sided Fisher exact test ([`crate::metrics::fisher_exact`]).
//!
//! Writes `schedules_flow.csv` (one row per budget and schedule, and the pilot's rows),
//! `schedules_flow_shape.csv` (the mixture's optimal knots in normalised time) and
//! `fig_schedules_flow.{png,svg}` (P(collapse) against T with Wilson 95% intervals).

use super::compare::{PILOT_SEED, best_index, one_parameter, with_schedule};
use super::{FIG2_FULL, FIG4_QUICK, builtin_config};
use crate::config::Config;
use crate::design::optimal::optimise;
use crate::error::{Error, Result};
use crate::metrics::{Outcome, fisher_exact, wilson_interval};
use crate::plot::{ErrorBarSeries, errorbar_chart};
use crate::schedule::{ScheduleConfig, ScheduleKind};
use crate::sweep::SweepConfig;
use crate::theory::formula::FormulaModel;
use std::fmt::Write as _;
use std::path::Path;

/// The size of the flow study.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowSchedulesSpec {
    /// Flow annealing budgets T (Adam steps).
    pub budgets: Vec<f64>,
    /// Runs per schedule in the main comparison (seeds 0..runs−1).
    pub runs: usize,
    /// Runs per β_i in the pilot that picks the best β_i of the one-parameter shapes.
    pub pilot_runs: usize,
    /// β_i tried by the pilot.
    pub pilot_beta_i: Vec<f64>,
    /// Budget T_gm (SGD steps) at which the mixture's optimal shape is designed.
    pub gm_budget: f64,
    /// Equal time slices of the mixture's optimal schedule.
    pub segments: usize,
}

impl FlowSchedulesSpec {
    /// The quick study: T = 150, 16 runs per schedule, a pilot of 8 runs at β_i ∈ {0.1, 0.3}.
    pub fn quick() -> Self {
        Self {
            budgets: vec![150.0],
            runs: 16,
            pilot_runs: 8,
            pilot_beta_i: vec![0.1, 0.3],
            gm_budget: 1000.0,
            segments: 10,
        }
    }

    /// The full study: T = 150 and 300, 64 runs per schedule, a pilot of 16 runs at
    /// β_i ∈ {0.05, 0.15, 0.4}.
    pub fn full() -> Self {
        Self {
            budgets: vec![150.0, 300.0],
            runs: 64,
            pilot_runs: 16,
            pilot_beta_i: vec![0.05, 0.15, 0.4],
            gm_budget: 1000.0,
            segments: 10,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.budgets.is_empty() || self.budgets.iter().any(|t| !(*t >= 1.0 && t.is_finite())) {
            return Err(Error::config(
                "budgets",
                format!("{:?}", self.budgets),
                "at least one finite budget ≥ 1 step",
            ));
        }
        if self.runs == 0 || self.pilot_runs == 0 {
            return Err(Error::config(
                "runs",
                format!("{} (pilot {})", self.runs, self.pilot_runs),
                "at least 1",
            ));
        }
        if self.pilot_beta_i.is_empty() || self.pilot_beta_i.iter().any(|b| !(*b > 0.0 && *b < 1.0))
        {
            return Err(Error::config(
                "pilot_beta_i",
                format!("{:?}", self.pilot_beta_i),
                "at least one value in (0, 1)",
            ));
        }
        Ok(())
    }
}

/// One schedule at one flow budget (or one pilot cell).
#[derive(Clone, Debug, PartialEq)]
pub struct FlowScheduleRow {
    /// Flow annealing budget T (steps).
    pub budget: f64,
    /// "optimal_gm", "exponential" or "linear_temperature".
    pub shape: &'static str,
    /// β(0).
    pub beta0: f64,
    /// Whether this is a pilot cell (seeds from 10⁶ on) rather than the main comparison.
    pub pilot: bool,
    /// Runs.
    pub n: usize,
    /// Collapsed runs.
    pub collapsed: usize,
    /// Two-sided Fisher exact p against the exponential schedule of the same budget (main rows
    /// other than the exponential).
    pub fisher_vs_exponential: Option<f64>,
    /// Two-sided Fisher exact p against the linear-in-temperature schedule (optimal_gm only).
    pub fisher_vs_linear: Option<f64>,
}

impl FlowScheduleRow {
    /// P(collapse) measured.
    pub fn p(&self) -> f64 {
        self.collapsed as f64 / self.n.max(1) as f64
    }
}

/// The flow model of the study: configs/fig4-quick.toml.
pub fn flow_schedules_config() -> Result<SweepConfig> {
    builtin_config(FIG4_QUICK, "flow schedules study")
}

/// The mixture's optimal schedule at `gm_budget` with `segments` slices, on the model of `gm`
/// (a bimodal target, 2 components, fixed weights ½), as knots in normalised time (t/T_gm, β).
pub fn gm_optimal_shape(
    gm: &SweepConfig,
    gm_budget: f64,
    segments: usize,
) -> Result<Vec<(f64, f64)>> {
    let model = FormulaModel::from_sweep(gm).ok_or_else(|| {
        Error::Invalid("the mixture's optimal shape needs the sharp formula's model".into())
    })?;
    let o = optimise(&model, gm_budget.round(), segments, &[])?;
    Ok(o.knots.iter().map(|&(t, b)| (t / o.budget, b)).collect())
}

/// The knots of `shape` (normalised time) rescaled to `budget` steps: whole steps, strictly
/// increasing (a knot that would land on the step of its predecessor is dropped, β(T) = 1 kept).
pub fn rescale_shape(shape: &[(f64, f64)], budget: f64) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(shape.len());
    for (j, &(u, b)) in shape.iter().enumerate() {
        let t = (u * budget).round();
        match out.last_mut() {
            Some(last) if t <= last.0 => {
                if j + 1 == shape.len() {
                    *last = (last.0, b);
                }
            }
            _ => out.push((t, b)),
        }
    }
    out
}

/// The flow's training configuration of one schedule.
fn flow_config(flow: &SweepConfig, schedule: ScheduleConfig, budget: f64) -> Result<Config> {
    with_schedule(&flow.run, schedule, budget as usize + flow.grid.extra_steps)
}

/// Whether each flow run of seeds `first..first + n` collapses (streams (k, k) as a sweep's
/// seed k), in seed order: the same numbers whatever the thread count.
fn flow_outcomes(cfg: &Config, first: usize, n: usize) -> Result<Vec<bool>> {
    use rayon::prelude::*;
    let exp = cfg.compile()?;
    (first..first + n)
        .into_par_iter()
        .map(|k| {
            let r = crate::run::Trainer::new(&exp).index(k as u64).run()?;
            Ok(matches!(r.outcome(), Outcome::Collapsed { .. }))
        })
        .collect()
}

/// `annealvi figure schedules-flow [--quick]`: the study on configs/fig4-quick.toml with the
/// shape designed on configs/fig2.toml, written to `out`.
pub fn figure_schedules_flow(
    out: &Path,
    quick: bool,
    runs: Option<usize>,
) -> Result<Vec<FlowScheduleRow>> {
    let mut spec = if quick {
        FlowSchedulesSpec::quick()
    } else {
        FlowSchedulesSpec::full()
    };
    if let Some(n) = runs {
        spec.runs = n;
    }
    spec.validate()?;
    let start = std::time::Instant::now();
    let gm = builtin_config(FIG2_FULL, "flow schedules study")?;
    let shape = gm_optimal_shape(&gm, spec.gm_budget, spec.segments)?;
    crate::progress::note(&format!(
        "mixture's optimal shape at T_gm = {:.0}: β(0) = {:.4} ({:.1} s)",
        spec.gm_budget,
        shape[0].1,
        start.elapsed().as_secs_f64()
    ));
    figure_schedules_flow_with(out, &flow_schedules_config()?, &shape, &spec)
}

/// The study of `spec` on the flow model of `flow` with the mixture's optimal `shape`
/// (normalised knots, [`gm_optimal_shape`]), written to `out`.
pub fn figure_schedules_flow_with(
    out: &Path,
    flow: &SweepConfig,
    shape: &[(f64, f64)],
    spec: &FlowSchedulesSpec,
) -> Result<Vec<FlowScheduleRow>> {
    spec.validate()?;
    if shape.len() < 2 || shape.last().map(|k| k.1) != Some(1.0) {
        return Err(Error::config(
            "shape",
            format!("{shape:?}"),
            "at least two knots (t/T, β), the last at β = 1",
        ));
    }
    crate::output::ensure_dir(out)?;
    let start = std::time::Instant::now();
    let mut rows: Vec<FlowScheduleRow> = Vec::new();
    for &budget in &spec.budgets {
        let budget = budget.round();
        // pilot: the flow's best β_i of each one-parameter shape
        let mut best = Vec::new();
        for (name, kind) in [
            ("exponential", ScheduleKind::Exponential),
            ("linear_temperature", ScheduleKind::LinearTemperature),
        ] {
            let mut collapses = Vec::new();
            for &bi in &spec.pilot_beta_i {
                let c = flow_config(flow, one_parameter(kind, bi, budget), budget)?;
                let k = flow_outcomes(&c, PILOT_SEED, spec.pilot_runs)?
                    .iter()
                    .filter(|x| **x)
                    .count();
                rows.push(FlowScheduleRow {
                    budget,
                    shape: name,
                    beta0: bi,
                    pilot: true,
                    n: spec.pilot_runs,
                    collapsed: k,
                    fisher_vs_exponential: None,
                    fisher_vs_linear: None,
                });
                collapses.push(k as f64);
            }
            // the fewest collapses, the first β_i on ties
            let bi = spec.pilot_beta_i[best_index(&collapses, true)];
            best.push((name, kind, bi));
        }
        // the main comparison
        let knots = rescale_shape(shape, budget);
        let mut main: Vec<(&'static str, f64, usize)> = Vec::new();
        let opt = ScheduleConfig {
            kind: ScheduleKind::Points,
            points: knots.clone(),
            ..Default::default()
        };
        let c = flow_config(flow, opt, budget)?;
        let k = flow_outcomes(&c, 0, spec.runs)?
            .iter()
            .filter(|x| **x)
            .count();
        main.push(("optimal_gm", knots[0].1, k));
        for &(name, kind, bi) in &best {
            let c = flow_config(flow, one_parameter(kind, bi, budget), budget)?;
            let k = flow_outcomes(&c, 0, spec.runs)?
                .iter()
                .filter(|x| **x)
                .count();
            main.push((name, bi, k));
        }
        let n = spec.runs;
        let (k_exp, k_lin) = (main[1].2, main[2].2);
        for &(name, b0, k) in &main {
            rows.push(FlowScheduleRow {
                budget,
                shape: name,
                beta0: b0,
                pilot: false,
                n,
                collapsed: k,
                fisher_vs_exponential: (name != "exponential")
                    .then(|| fisher_exact(k, n, k_exp, n)),
                fisher_vs_linear: (name == "optimal_gm").then(|| fisher_exact(k, n, k_lin, n)),
            });
        }
        crate::progress::note(&format!(
            "T = {budget:.0}: {} ({:.1} s)",
            main.iter()
                .map(|(s, b, k)| format!("{s} (β0 {b:.3}) {k}/{n}"))
                .collect::<Vec<_>>()
                .join(", "),
            start.elapsed().as_secs_f64()
        ));
    }
    write_rows(out, &rows)?;
    let mut s = String::from("t_over_T,beta\n");
    for &(u, b) in shape {
        let _ = writeln!(s, "{u},{b}");
    }
    crate::output::write_text(&out.join("schedules_flow_shape.csv"), &s)?;
    draw(out, &rows, spec)?;
    crate::progress::note(&format!(
        "wrote {} ({:.1} s)",
        out.join("schedules_flow.csv").display(),
        start.elapsed().as_secs_f64()
    ));
    Ok(rows)
}

fn write_rows(out: &Path, rows: &[FlowScheduleRow]) -> Result<()> {
    let mut s = String::from(
        "T,shape,beta0,pilot,n,collapsed,p,ci_low,ci_high,fisher_vs_exponential,fisher_vs_linear\n",
    );
    let opt = |p: Option<f64>| p.map_or(String::new(), |p| p.to_string());
    for r in rows {
        let (lo, hi) = wilson_interval(r.collapsed, r.n);
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{}",
            r.budget,
            r.shape,
            r.beta0,
            r.pilot,
            r.n,
            r.collapsed,
            r.p(),
            lo,
            hi,
            opt(r.fisher_vs_exponential),
            opt(r.fisher_vs_linear)
        );
    }
    crate::output::write_text(&out.join("schedules_flow.csv"), &s)
}

fn draw(out: &Path, rows: &[FlowScheduleRow], spec: &FlowSchedulesSpec) -> Result<()> {
    let series: Vec<ErrorBarSeries> = ["optimal_gm", "exponential", "linear_temperature"]
        .iter()
        .map(|shape| ErrorBarSeries {
            label: (*shape).to_string(),
            points: rows
                .iter()
                .filter(|r| !r.pilot && r.shape == *shape)
                .map(|r| {
                    let (lo, hi) = wilson_interval(r.collapsed, r.n);
                    (r.budget, r.p(), lo, hi)
                })
                .collect(),
        })
        .collect();
    errorbar_chart(
        &format!(
            "RealNVP (d = 16): P(collapse) vs budget, {} runs per schedule",
            spec.runs
        ),
        "annealing budget T (Adam steps)",
        "P(collapse)",
        spec.budgets.len() > 1,
        &series,
        &[],
        out,
        "fig_schedules_flow",
    )?;
    Ok(())
}
