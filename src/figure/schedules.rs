//! `annealvi figure schedules`: the optimal annealing schedule against the best exponential and
//! the best linear-in-temperature schedule at equal budgets, predicted and verified by SGD
//! (docs/theory.md §10).
//!
//! For each annealing budget T the optimal schedule (`design --shape optimal`: Nelder–Mead on
//! the sharp formula) and the two one-parameter shapes with their best β_i (Brent on the same
//! formula) are built by [`crate::design::optimal::at_budget`]; each gets its predicted
//! P(collapse) from the table ODE Monte Carlo and its SGD P(collapse) over seeds 0..N−1 with the
//! statistics engine (exact SGD in the summary statistics, docs/theory.md §11). The seeds are
//! paired: seed k starts from the same initial means and draws the same noise under every
//! schedule, so optimal and exponential are compared by McNemar's exact test on the discordant
//! seeds. The model is the paper's (configs/fig2.toml's run section: d = 512, R = 3, w* = 0.8,
//! η = 0.05, B = 32, 500 steps at β = 1 after the annealing).
//!
//! Writes `schedules.csv` (one row per budget and shape), `schedules_knots.csv` (the optimal
//! β(t) of each budget), `schedules_p05.csv` (the budget at which each shape's SGD P(collapse)
//! reaches 0.05, [`crossings`]), `fig_schedules.{png,svg}` (min P against T: predicted dashed, SGD
//! points with Wilson 95% intervals) and `fig_schedules_beta.{png,svg}` (the optimal β(t)).

use super::{FIG2_FULL, builtin_config};
use crate::config::Config;
use crate::design::Predictor;
use crate::design::optimal::{AtBudget, Shape, at_budget, outcomes_config};
use crate::error::{Error, Result};
use crate::metrics::{mcnemar_exact, wilson_interval};
use crate::plot::{ErrorBarChart, ErrorBarSeries, SeriesPanel, errorbar_panels, line_figure};
use crate::schedule::{ScheduleConfig, ScheduleKind};
use crate::sweep::SweepConfig;
use crate::theory::formula::FormulaModel;
use std::fmt::Write as _;
use std::path::Path;

/// The shapes of the study, in the order of the rows of a budget.
pub const SCHEDULE_SHAPES: [&str; 3] = ["optimal", "exponential", "linear_temperature"];

/// The size of the study.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulesSpec {
    /// Annealing budgets T (steps).
    pub budgets: Vec<f64>,
    /// SGD seeds per schedule (seeds 0..seeds−1, the same for every schedule).
    pub seeds: usize,
    /// Initial conditions of the table ODE Monte Carlo.
    pub ics: usize,
    /// Equal time slices of the optimal schedule.
    pub segments: usize,
}

impl SchedulesSpec {
    /// The quick study (T = 500, 1000, 2000; 100 seeds; 2000 initial conditions; 10 slices).
    pub fn quick() -> Self {
        Self {
            budgets: vec![500.0, 1000.0, 2000.0],
            seeds: 100,
            ics: 2000,
            segments: 10,
        }
    }

    /// The full study (T = 1000, 1250, 1500, 1750, 2000, 2500, 3000, 3500, 4000, 8000: the
    /// budgets where the shapes cross P = 0.05 are resolved; 2000 seeds; 10⁴ initial
    /// conditions; 10 slices).
    pub fn full() -> Self {
        Self {
            budgets: vec![
                1000.0, 1250.0, 1500.0, 1750.0, 2000.0, 2500.0, 3000.0, 3500.0, 4000.0, 8000.0,
            ],
            seeds: 2000,
            ics: 10_000,
            segments: 10,
        }
    }
}

/// One schedule at one budget.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleRow {
    /// Annealing budget T (steps).
    pub budget: f64,
    /// One of [`SCHEDULE_SHAPES`].
    pub shape: &'static str,
    /// β(0) (β_i of the one-parameter shapes).
    pub beta0: f64,
    /// Predicted P(collapse) (table ODE Monte Carlo).
    pub p_pred: f64,
    /// SGD seeds.
    pub n: usize,
    /// Collapsed SGD seeds.
    pub collapsed: usize,
    /// Seeds collapsed under this schedule but not under the exponential one.
    pub only_this: usize,
    /// Seeds collapsed under the exponential schedule but not under this one.
    pub only_exponential: usize,
}

impl ScheduleRow {
    /// SGD P(collapse).
    pub fn p_sgd(&self) -> f64 {
        self.collapsed as f64 / self.n.max(1) as f64
    }

    /// Two-sided exact McNemar p-value against the exponential schedule (None for it).
    pub fn mcnemar_p(&self) -> Option<f64> {
        (self.shape != "exponential").then(|| mcnemar_exact(self.only_this, self.only_exponential))
    }
}

/// The study's model: configs/fig2.toml (statistics engine).
pub fn schedules_config() -> Result<SweepConfig> {
    builtin_config(FIG2_FULL, "schedules study")
}

/// `annealvi figure schedules [--quick]`: the study on the paper's model, written to `out`.
pub fn figure_schedules(out: &Path, quick: bool) -> Result<Vec<ScheduleRow>> {
    let spec = if quick {
        SchedulesSpec::quick()
    } else {
        SchedulesSpec::full()
    };
    figure_schedules_with(out, &schedules_config()?, &spec)
}

/// The training configuration of one schedule at `budget`: the sweep's run settings with the
/// schedule and `optim.steps` = budget + extra steps.
fn training_config(cfg: &SweepConfig, at: &AtBudget, shape: &str, beta0: f64) -> Result<Config> {
    let budget = at.optimal.budget;
    let mut run = cfg.run.clone();
    run.schedule = match shape {
        "optimal" => ScheduleConfig {
            kind: ScheduleKind::Points,
            points: at.optimal.knots.clone(),
            ..Default::default()
        },
        "exponential" | "linear_temperature" => ScheduleConfig {
            kind: if shape == "exponential" {
                ScheduleKind::Exponential
            } else {
                ScheduleKind::LinearTemperature
            },
            beta_i: beta0,
            t0: budget,
            ..Default::default()
        },
        s => return Err(Error::Invalid(format!("unknown schedule shape {s}"))),
    };
    run.optim.steps = budget as usize + cfg.grid.extra_steps;
    run.validate()?;
    Ok(run)
}

/// The study of `spec` on the model of `cfg` (a bimodal target and a 2-component student with
/// fixed equal weights, as `design` needs), written to `out`.
pub fn figure_schedules_with(
    out: &Path,
    cfg: &SweepConfig,
    spec: &SchedulesSpec,
) -> Result<Vec<ScheduleRow>> {
    crate::output::ensure_dir(out)?;
    let start = std::time::Instant::now();
    let pred = Predictor::from_sweep(cfg, spec.ics)?;
    let model = FormulaModel::from_sweep(cfg).ok_or_else(|| {
        Error::Invalid("the schedules study needs the sharp formula's model".into())
    })?;
    let mut rows = Vec::new();
    let mut designs: Vec<AtBudget> = Vec::new();
    for &budget in &spec.budgets {
        let budget = budget.round();
        // warm start from the previous budget's optimum
        let warm: Vec<Vec<f64>> = designs
            .last()
            .map(|d| d.optimal.theta.clone())
            .into_iter()
            .collect();
        let at = at_budget(
            &pred,
            &model,
            budget,
            spec.segments,
            &[Shape::Exponential, Shape::LinearTemperature],
            &warm,
        )?;
        let mut outcomes = Vec::new();
        for v in &at.rows {
            let c = training_config(cfg, &at, v.shape, v.beta_i)?;
            outcomes.push((v, outcomes_config(&c, spec.seeds)?));
        }
        let exp = outcomes
            .iter()
            .find(|(v, _)| v.shape == "exponential")
            .map(|(_, o)| o.clone())
            .ok_or_else(|| Error::Invalid("no exponential schedule in the study".into()))?;
        for (v, o) in &outcomes {
            let shape = SCHEDULE_SHAPES
                .iter()
                .copied()
                .find(|s| *s == v.shape)
                .ok_or_else(|| Error::Invalid(format!("unknown schedule shape {}", v.shape)))?;
            let pairs = || o.iter().zip(&exp);
            rows.push(ScheduleRow {
                budget,
                shape,
                beta0: v.beta_i,
                p_pred: v.p_table,
                n: o.len(),
                collapsed: o.iter().filter(|c| **c).count(),
                only_this: pairs().filter(|(a, b)| **a && !**b).count(),
                only_exponential: pairs().filter(|(a, b)| !**a && **b).count(),
            });
        }
        crate::progress::note(&format!(
            "T = {budget:.0}: {} ({:.1} s)",
            rows[rows.len() - outcomes.len()..]
                .iter()
                .map(|r| format!("{} {}/{} (pred {:.3})", r.shape, r.collapsed, r.n, r.p_pred))
                .collect::<Vec<_>>()
                .join(", "),
            start.elapsed().as_secs_f64()
        ));
        designs.push(at);
    }
    write_rows(out, &rows)?;
    write_knots(out, &designs)?;
    write_crossings(out, &rows)?;
    draw(out, &rows, &designs, spec)?;
    crate::progress::note(&format!(
        "wrote {} ({:.1} s)",
        out.join("schedules.csv").display(),
        start.elapsed().as_secs_f64()
    ));
    Ok(rows)
}

/// The P(collapse) level of the design question: the budget at which each shape reaches it.
pub const DESIGN_LEVEL: f64 = 0.05;

/// Where one shape's SGD P(collapse) falls to a level, over the budgets of a study.
#[derive(Clone, Debug, PartialEq)]
pub struct Crossing {
    /// One of [`SCHEDULE_SHAPES`].
    pub shape: &'static str,
    /// The budget at which P̂ first falls to the level, interpolated linearly in ln T between
    /// the two budgets that bracket it (None: not within the study's budgets).
    pub at: Option<f64>,
    /// The same for the lower Wilson bound (the earliest budget the data allow).
    pub earliest: Option<f64>,
    /// The same for the upper Wilson bound (the latest budget the data allow).
    pub latest: Option<f64>,
}

/// The [`Crossing`] of each shape at `level` (rows of any order).
pub fn crossings(rows: &[ScheduleRow], level: f64) -> Vec<Crossing> {
    SCHEDULE_SHAPES
        .iter()
        .map(|&shape| {
            let mut pts: Vec<(f64, f64, f64, f64)> = rows
                .iter()
                .filter(|r| r.shape == shape)
                .map(|r| {
                    let (lo, hi) = wilson_interval(r.collapsed, r.n);
                    (r.budget, r.p_sgd(), lo, hi)
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let cross = |y: fn(&(f64, f64, f64, f64)) -> f64| -> Option<f64> {
                if let Some(first) = pts.first()
                    && y(first) <= level
                {
                    // already at the level on the shortest budget: no crossing measured
                    return None;
                }
                pts.windows(2).find_map(|w| {
                    let (a, b) = (&w[0], &w[1]);
                    (y(a) > level && y(b) <= level).then(|| {
                        let f = (y(a) - level) / (y(a) - y(b));
                        (a.0.ln() + f * (b.0.ln() - a.0.ln())).exp()
                    })
                })
            };
            Crossing {
                shape,
                at: cross(|p| p.1),
                earliest: cross(|p| p.2),
                latest: cross(|p| p.3),
            }
        })
        .collect()
}

/// `schedules_p05.csv`: the budget at which each shape's SGD P(collapse) reaches
/// [`DESIGN_LEVEL`], and its ratio to the exponential schedule's.
fn write_crossings(out: &Path, rows: &[ScheduleRow]) -> Result<()> {
    let c = crossings(rows, DESIGN_LEVEL);
    let exp = c.iter().find(|x| x.shape == "exponential").cloned();
    let opt = |x: Option<f64>| x.map(|v| format!("{v:.0}")).unwrap_or_default();
    let mut s = String::from("shape,level,T_at,T_earliest,T_latest,ratio_to_exponential\n");
    for x in &c {
        let ratio = match (x.at, exp.as_ref().and_then(|e| e.at)) {
            (Some(a), Some(e)) => format!("{:.3}", a / e),
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            "{},{DESIGN_LEVEL},{},{},{},{ratio}",
            x.shape,
            opt(x.at),
            opt(x.earliest),
            opt(x.latest)
        );
    }
    if let (Some(o), Some(e)) = (c.iter().find(|x| x.shape == "optimal"), exp) {
        // a budget, or where it lies relative to the study's budgets
        let at =
            |x: Option<f64>| x.map_or("not within the budgets".to_string(), |v| format!("{v:.0}"));
        let ratio = match (o.at, e.at) {
            (Some(a), Some(b)) => {
                let r = |a: Option<f64>, b: Option<f64>| {
                    a.zip(b)
                        .map_or("–".to_string(), |(a, b)| format!("{:.2}", a / b))
                };
                format!(
                    "; ratio {:.2} (range {}–{})",
                    a / b,
                    r(o.earliest, e.latest),
                    r(o.latest, e.earliest)
                )
            }
            _ => String::new(),
        };
        crate::progress::note(&format!(
            "P(collapse) <= {DESIGN_LEVEL} by SGD: optimal at T = {} (Wilson: {} to {}), \
             exponential at T = {} ({} to {}){ratio}",
            at(o.at),
            at(o.earliest),
            at(o.latest),
            at(e.at),
            at(e.earliest),
            at(e.latest),
        ));
    }
    crate::output::write_text(&out.join("schedules_p05.csv"), &s)
}

fn write_rows(out: &Path, rows: &[ScheduleRow]) -> Result<()> {
    let mut s = String::from(
        "T,shape,beta0,p_pred,n,collapsed,p_sgd,ci_low,ci_high,only_this,only_exponential,mcnemar_p\n",
    );
    for r in rows {
        let (lo, hi) = wilson_interval(r.collapsed, r.n);
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            r.budget,
            r.shape,
            r.beta0,
            r.p_pred,
            r.n,
            r.collapsed,
            r.p_sgd(),
            lo,
            hi,
            r.only_this,
            r.only_exponential,
            r.mcnemar_p().map_or(String::new(), |p| format!("{p:e}"))
        );
    }
    crate::output::write_text(&out.join("schedules.csv"), &s)
}

fn write_knots(out: &Path, designs: &[AtBudget]) -> Result<()> {
    let mut s = String::from("T,step,beta\n");
    for d in designs {
        for &(t, b) in &d.optimal.knots {
            let _ = writeln!(s, "{},{t},{b}", d.optimal.budget);
        }
    }
    crate::output::write_text(&out.join("schedules_knots.csv"), &s)
}

fn draw(
    out: &Path,
    rows: &[ScheduleRow],
    designs: &[AtBudget],
    spec: &SchedulesSpec,
) -> Result<()> {
    let mut series = Vec::new();
    let mut lines = Vec::new();
    for shape in SCHEDULE_SHAPES {
        let mine: Vec<&ScheduleRow> = rows.iter().filter(|r| r.shape == shape).collect();
        series.push(ErrorBarSeries {
            label: format!("SGD, {shape}"),
            points: mine
                .iter()
                .map(|r| {
                    let (lo, hi) = wilson_interval(r.collapsed, r.n);
                    (r.budget, r.p_sgd(), lo, hi)
                })
                .collect(),
        });
        // unlabelled: the title says that the dashed lines are the predictions
        lines.push((
            String::new(),
            mine.iter().map(|r| (r.budget, r.p_pred)).collect(),
        ));
    }
    // each prediction in its shape's colour; the P = 0.05 level of the design question
    let mut extra_colors: Vec<usize> = (0..lines.len()).collect();
    let (lo, hi) = rows.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), r| {
        (lo.min(r.budget), hi.max(r.budget))
    });
    if lo <= hi {
        lines.push(("P = 0.05".into(), vec![(lo, 0.05), (hi, 0.05)]));
        extra_colors.push(SCHEDULE_SHAPES.len() + 1);
    }
    let chart = ErrorBarChart {
        title: format!(
            "min P(collapse) vs budget: SGD ({} paired seeds), table ODE dashed",
            spec.seeds
        ),
        x_label: "annealing budget T (SGD steps)".into(),
        y_label: "P(collapse)".into(),
        x_log: true,
        y_log: false,
        series,
        extra_lines: lines,
        extra_colors,
    };
    errorbar_panels(&[chart], out, "fig_schedules")?;
    let panel = SeriesPanel {
        title: "optimal schedules β(t)".into(),
        x_label: "t / T".into(),
        y_label: "β".into(),
        log_y: true,
        series: designs
            .iter()
            .map(|d| {
                let t = d.optimal.budget;
                (
                    format!("T = {t:.0}"),
                    d.optimal.knots.iter().map(|&(s, b)| (s / t, b)).collect(),
                )
            })
            .collect(),
        styles: Vec::new(),
    };
    line_figure(&panel, out, "fig_schedules_beta")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(budget: f64, shape: &'static str, collapsed: usize) -> ScheduleRow {
        ScheduleRow {
            budget,
            shape,
            beta0: 0.1,
            p_pred: 0.0,
            n: 1000,
            collapsed,
            only_this: 0,
            only_exponential: 0,
        }
    }

    #[test]
    fn crossing_interpolates_in_log_budget_and_brackets_it_by_the_intervals() {
        // P̂ = 0.10 at T = 1000, 0.025 at 4000: 0.05 is 2/3 of the way, T = 1000·4^(2/3)
        let rows = vec![
            row(4000.0, "optimal", 25),
            row(1000.0, "optimal", 100),
            row(1000.0, "exponential", 300),
            row(4000.0, "exponential", 200),
            row(1000.0, "linear_temperature", 40),
        ];
        let c = crossings(&rows, 0.05);
        let o = &c[0];
        assert_eq!(o.shape, "optimal");
        let at = o.at.unwrap();
        assert!((at - 1000.0 * 4f64.powf(2.0 / 3.0)).abs() < 1e-6, "{at}");
        let (lo, hi) = (o.earliest.unwrap(), o.latest.unwrap());
        assert!(lo < at && at < hi, "{lo} {at} {hi}");
        // never below the level within the budgets: no crossing
        assert_eq!(c[1].at, None);
        // already below it at the shortest budget: no crossing measured either
        assert_eq!(c[2].at, None);
    }
}
