//! The paper's figures, each reproduced by one function (and one CLI command), one file per
//! figure: `fig1` … `fig5`, `dim` (P(collapse) against d), `schedules` (optimal against
//! exponential schedules, predicted and by SGD), `schedules_flow` (the optimal shape on a flow),
//! `adaptive` (the adaptive schedule against the alternatives on four problems) and `partial`
//! (Figure 4 from the finished runs of a sweep); `compare` holds what the schedule studies
//! share. They compose the study-level data (training runs, sweeps,
//! theory) with the generic charts of [`crate::plot`].
//!
//! This file holds what the figures share: the built-in sweep configurations and their runs,
//! the (β_i, t0) grid of a sweep's cells and its heat maps, the 0.5 isoline of P(collapse),
//! and [`reproduce`], which writes every figure and an index.

use crate::error::{Error, Result};
use crate::metrics::wilson_interval;
use crate::output;
use crate::plot::{Heatmap, LabeledLine};
use crate::sweep::{
    Cell, CellStats, Device, SweepConfig, SweepOptions, SweepReport, aggregate, read_runs,
    run_sweep,
};
use std::fmt::Write as _;
use std::path::Path;

mod adaptive;
mod compare;
mod dim;
mod fig1;
mod fig2;
mod fig3;
mod fig4;
mod fig5;
mod partial;
mod schedules;
mod schedules_flow;
pub use adaptive::{
    ADAPTIVE_CSV_HEADER, ADAPTIVE_SCHEDULES, AdaptiveProblem, AdaptiveReport, AdaptiveRow,
    AdaptiveSpec, GMM40_FLOW, Headline, MANY_WELL_FLOW, PilotRow, figure_adaptive,
    figure_adaptive_with,
};
pub use compare::RunMetrics;
pub use dim::{DimPoint, figure_dim};
pub use fig1::{
    FIG1_BETA_I, FIG1_PANEL_HEIGHT, FIG1_PANEL_WIDTH, FIG1_STEPS_NO_ANNEALING, FIG1_T0, Fig1Row,
    draw_fig1, figure1, figure1_configs,
};
pub use fig2::{figure2, theory_map};
pub use fig3::figure3;
pub use fig4::figure4;
pub use fig5::figure5;
pub use partial::{SweepProgress, figure4_from};
pub use schedules::{
    Crossing, DESIGN_LEVEL, SCHEDULE_SHAPES, ScheduleRow, SchedulesSpec, crossings,
    figure_schedules, figure_schedules_with, schedules_config,
};
pub use schedules_flow::{
    FlowScheduleRow, FlowSchedulesSpec, figure_schedules_flow, figure_schedules_flow_with,
    flow_schedules_config, gm_optimal_shape, rescale_shape,
};

/// The paper-scale Figure 2 sweep (configs/fig2.toml, embedded in the binary).
pub const FIG2_FULL: &str = include_str!("../../configs/fig2.toml");
/// The quick Figure 2 sweep (configs/fig2-quick.toml).
pub const FIG2_QUICK: &str = include_str!("../../configs/fig2-quick.toml");

/// The paper-scale Figure 4 sweep (configs/fig4.toml, RealNVP, meant for a cluster or GPU).
pub const FIG4_FULL: &str = include_str!("../../configs/fig4.toml");
/// The quick Figure 4 sweep (configs/fig4-quick.toml, RealNVP at d = 16).
pub const FIG4_QUICK: &str = include_str!("../../configs/fig4-quick.toml");

/// The quick or paper-scale Figure 2 sweep configuration.
fn fig2_config(quick: bool) -> Result<SweepConfig> {
    builtin_config(if quick { FIG2_QUICK } else { FIG2_FULL }, "Figure 2")
}

/// The quick or paper-scale Figure 4 (RealNVP) sweep configuration.
fn fig4_config(quick: bool) -> Result<SweepConfig> {
    builtin_config(if quick { FIG4_QUICK } else { FIG4_FULL }, "Figure 4")
}

/// Runs (or resumes, or reuses) the Figure 2 sweep in `out`; returns its cells.
pub fn fig2_sweep(out: &Path, quick: bool) -> Result<Vec<CellStats>> {
    builtin_sweep(fig2_config(quick)?, "Figure 2", out, Device::Cpu)
}

/// Runs (or resumes, or reuses) the Figure 4 (RealNVP) sweep in `out` on `engine`; returns
/// its cells.
pub fn fig4_sweep(out: &Path, quick: bool, engine: Device) -> Result<Vec<CellStats>> {
    builtin_sweep(fig4_config(quick)?, "Figure 4", out, engine)
}

/// Parses a built-in sweep configuration (`name` appears in a parse error).
fn builtin_config(text: &str, name: &str) -> Result<SweepConfig> {
    let cfg: SweepConfig = toml::from_str(text).map_err(|e| Error::Parse {
        source_name: format!("built-in {name} configuration"),
        message: e.to_string(),
    })?;
    cfg.validate()?;
    Ok(cfg)
}

/// Runs a built-in sweep in `out` on `engine` (resuming whatever is there) and aggregates its
/// runs.
fn builtin_sweep(
    mut cfg: SweepConfig,
    name: &str,
    out: &Path,
    engine: Device,
) -> Result<Vec<CellStats>> {
    cfg.grid.device = engine;
    cfg.validate()?;
    let rep = resume_sweep(&cfg, out)?;
    crate::progress::note(&format!(
        "{name} sweep: {} runs ({} already done, {} run now in {:.1} s) -> {}",
        rep.planned,
        rep.skipped,
        rep.ran,
        rep.seconds,
        out.join("runs.jsonl").display()
    ));
    cells_in(out)
}

/// Runs the sweep `cfg` in `out` (on the caller's rayon pool), resuming whatever is there.
fn resume_sweep(cfg: &SweepConfig, out: &Path) -> Result<SweepReport> {
    let opts = SweepOptions {
        resume: true,
        ..SweepOptions::new(out)
    };
    run_sweep(cfg, &opts)
}

/// The cells of the runs in `dir/runs.jsonl`.
fn cells_in(dir: &Path) -> Result<Vec<CellStats>> {
    Ok(aggregate(&read_runs(&dir.join("runs.jsonl"), false)?))
}

/// The no-annealing cell of a sweep, if it has one.
fn no_annealing(cells: &[CellStats]) -> Option<&CellStats> {
    cells.iter().find(|c| c.cell.t0 == 0.0)
}

/// P(collapse) of a cell with its Wilson 95% interval, e.g. `0.42 [0.35, 0.49]`.
fn p_with_interval(c: &CellStats) -> String {
    let (lo, hi) = wilson_interval(c.collapsed, c.n);
    format!("{:.2} [{lo:.2}, {hi:.2}]", c.p_collapse())
}

/// The (β_i, t0) grid of a sweep's annealed cells: the distinct β_i (x) and t0 (y), ascending.
struct Grid {
    xs: Vec<f64>,
    ys: Vec<f64>,
}

impl Grid {
    /// The grid of the annealed cells (t0 > 0) among `cells`.
    fn of<'a>(cells: impl IntoIterator<Item = &'a Cell>) -> Self {
        let (mut xs, mut ys): (Vec<f64>, Vec<f64>) = cells
            .into_iter()
            .filter(|c| c.t0 > 0.0)
            .map(|c| (c.beta_i, c.t0))
            .unzip();
        for v in [&mut xs, &mut ys] {
            v.sort_by(f64::total_cmp);
            v.dedup();
        }
        Self { xs, ys }
    }

    /// The grid of the annealed cells of `cells`.
    fn of_stats(cells: &[CellStats]) -> Self {
        Self::of(cells.iter().map(|c| &c.cell))
    }

    /// `values[iy][ix]`: `f` of the first of `cells` at (xs[ix], ys[iy]), NaN where none is.
    fn values(&self, cells: &[CellStats], f: impl Fn(&CellStats) -> f64) -> Vec<Vec<f64>> {
        self.ys
            .iter()
            .map(|&t| {
                self.xs
                    .iter()
                    .map(|&b| {
                        cells
                            .iter()
                            .find(|c| c.cell.beta_i == b && c.cell.t0 == t)
                            .map_or(f64::NAN, &f)
                    })
                    .collect()
            })
            .collect()
    }

    /// A heat map of `values` over the grid, both axes logarithmic; `steps` is the unit of t0
    /// (`"SGD steps"`, `"Adam steps"`).
    fn heatmap(
        &self,
        title: String,
        steps: &str,
        values: Vec<Vec<f64>>,
        isolines: Vec<LabeledLine>,
    ) -> Heatmap {
        Heatmap {
            title,
            x_label: "initial inverse temperature β_i".into(),
            y_label: format!("annealing time t0 ({steps})"),
            x_log: true,
            y_log: true,
            xs: self.xs.clone(),
            ys: self.ys.clone(),
            values,
            isolines,
        }
    }
}

/// The 0.5 isoline of P(collapse) over the (β_i, t0) grid: for each β_i, the t0 where P
/// crosses 0.5 (first crossing from above, interpolated linearly in ln t0).
pub fn isoline_t0(cells: &[CellStats], level: f64) -> Vec<(f64, f64)> {
    let betas = Grid::of_stats(cells).xs;
    let mut pts = Vec::new();
    for b in betas {
        let mut col: Vec<(f64, f64)> = cells
            .iter()
            .filter(|c| c.cell.beta_i == b && c.cell.t0 > 0.0)
            .map(|c| (c.cell.t0, c.p_collapse()))
            .collect();
        col.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in col.windows(2) {
            let ((t1, p1), (t2, p2)) = (w[0], w[1]);
            if p1 >= level && p2 < level {
                let f = (p1 - level) / (p1 - p2);
                pts.push((b, (t1.ln() + f * (t2.ln() - t1.ln())).exp()));
                break;
            }
        }
    }
    pts
}

/// Every figure, their data, and `out/index.md` showing them. `flow_quick`: the scale of the
/// RealNVP Figure 4 (and Figure 5's flow panel), `None` to leave it out.
pub fn reproduce(out: &Path, quick: bool, flow_quick: Option<bool>, engine: Device) -> Result<()> {
    output::ensure_dir(out)?;
    let start = std::time::Instant::now();
    figure1(&out.join("fig1"), quick, 0)?;
    figure3(&out.join("fig3"), quick, 0)?;
    let f2 = out.join("fig2");
    figure2(&f2, quick)?;
    let f4 = out.join("fig4");
    if let Some(fq) = flow_quick {
        figure4(&f4, fq, engine)?;
    }
    figure5(&f2, quick, flow_quick.map(|fq| (f4.as_path(), fq, engine)))?;
    figure_dim(&out.join("dim"), quick)?;
    figure_schedules(&out.join("schedules"), quick)?;
    figure_adaptive(&out.join("adaptive"), quick, None)?;
    let mut md = String::new();
    let mode = if quick { "quick" } else { "full" };
    let _ = writeln!(md, "# annealvi: reproduced figures ({mode})\n");
    let _ = writeln!(
        md,
        "Produced by `annealvi reproduce --{mode}` in {:.0} s. What each figure shows, the \
         command that makes it alone and the paper-scale numbers: the user guide, page \
         \"The paper's figures\" (`docs/figures.md` in the repository; `mdbook build docs`).\n",
        start.elapsed().as_secs_f64()
    );
    let _ = writeln!(md, "## Figure 1\n\n![Figure 1](fig1/fig1.png)\n");
    if let Ok(t) = std::fs::read_to_string(out.join("fig1/fig1_outcomes.csv")) {
        let _ = writeln!(
            md,
            "Collapse rates per row (`fig1/fig1_outcomes.csv`):\n\n```\n{t}```\n"
        );
    }
    let _ = writeln!(
        md,
        "## Figure 3\n\n![Figure 3](fig3/fig3.png)\n\nData: `fig3/fig3.csv` (SGD and ODE trajectories).\n"
    );
    let _ = writeln!(
        md,
        "## Figure 2\n\n![Figure 2](fig2/fig2.png)\n\nData: `fig2/cells.csv`, `fig2/runs.jsonl` (SGD); `fig2/theory.csv` (quasi-static ODE from the same initial means).\n"
    );
    if let Ok(t) = std::fs::read_to_string(f2.join("cells.csv")) {
        let _ = writeln!(md, "```\n{t}```\n");
    }
    if let Some(fq) = flow_quick {
        let scale = if fq {
            "quick preset, configs/fig4-quick.toml"
        } else {
            "paper scale, configs/fig4.toml"
        };
        let _ = writeln!(
            md,
            "## Figure 4 ({scale})\n\n![Figure 4](fig4/fig4.png)\n\n![Figure 4, light-mode mass](fig4/fig4_light_mass.png)\n\nData: `fig4/cells.csv` (with the flow metrics), `fig4/runs.jsonl`.\n"
        );
        if let Ok(t) = std::fs::read_to_string(f4.join("cells.csv")) {
            let _ = writeln!(md, "```\n{t}```\n");
        }
    }
    let _ = writeln!(
        md,
        "## Figure 5\n\n![Figure 5](fig2/fig5.png)\n\nData: `fig2/fig5.csv` (Gaussian mixture), `fig2/fig5_flow.csv` (RealNVP), `fig2/fig5_asymptote.csv`.\n"
    );
    let _ = writeln!(
        md,
        "## P(collapse) against the dimension d\n\n![P(collapse) vs d](dim/fig_dim.png)\n\nSGD simulated exactly in the summary statistics (statistics engine) against the quasi-static ODE from the same initial conditions. Data: `dim/dim.csv`, one sweep per d in `dim/d<d>/`.\n"
    );
    let _ = writeln!(
        md,
        "## Optimal schedules\n\n![min P(collapse) vs budget](schedules/fig_schedules.png)\n\n![optimal beta(t)](schedules/fig_schedules_beta.png)\n\nThe optimal annealing schedule (`design --shape optimal`) against the best exponential and the best linear-in-temperature schedule at equal annealing budgets: predicted (table ODE) and by SGD over paired seeds (statistics engine). Data: `schedules/schedules.csv`, `schedules/schedules_knots.csv`. Guide: \"Schedule design\" (`docs/design.md`) and the theory, section 10.\n"
    );
    if let Ok(t) = std::fs::read_to_string(out.join("schedules/schedules.csv")) {
        let _ = writeln!(md, "```\n{t}```\n");
    }
    if let Ok(t) = std::fs::read_to_string(out.join("schedules/schedules_p05.csv")) {
        let _ = writeln!(
            md,
            "Budget at which each shape's SGD P(collapse) reaches 0.05 (`schedules/schedules_p05.csv`):\n\n```\n{t}```\n"
        );
    }
    let _ = writeln!(
        md,
        "## Adaptive schedule\n\n![Adaptive schedule](adaptive/fig_adaptive.png)\n\nThe adaptive schedule against no annealing, the best exponential, the best linear-in-temperature and (Gaussian mixture) the optimal schedule on four problems; what it measures and the full-scale numbers: the guide page \"The adaptive schedule\" (`docs/adaptive.md`). Data: `adaptive/adaptive.csv` (one row per problem, budget and schedule), `adaptive/adaptive_pilot.csv` (the pilot that picks each β_i).\n"
    );
    if let Ok(t) = std::fs::read_to_string(out.join("adaptive/adaptive.csv")) {
        let _ = writeln!(md, "```\n{t}```\n");
    }
    output::write_text(&out.join("index.md"), &md)?;
    crate::progress::note(&format!(
        "wrote {} ({:.0} s)",
        out.join("index.md").display(),
        start.elapsed().as_secs_f64()
    ));
    Ok(())
}
