//! `annealvi figure dim`: P(collapse) against the dimension d, SGD at finite d against the
//! summary-statistics ODE (the d → ∞ dynamics) from the same initial conditions.
//!
//! For each d ∈ {64, 256, 1024, 4096, 16384, 10⁵} a sweep of the cells (β_i = 0.03; t0 = 500,
//! 1000, 2000 SGD steps) and no annealing is run with the statistics engine (exact SGD in the
//! summary statistics, docs/theory.md §11: its cost does not grow with d), B = 32 samples per
//! component, η = 0.05, σ(0)² = 1/β_i, means ~ N(0, I_d); the quasi-static ODE is integrated
//! from the same seeds' initial statistics (`theory`'s paired method). Each d's sweep lives in
//! `OUT/d<d>/` and is resumed if present. Writes `dim.csv` and `fig_dim.{png,svg}`.

use super::{builtin_config, cells_in, resume_sweep};
use crate::error::{Error, Result};
use crate::metrics::wilson_interval;
use crate::plot::{ErrorBarSeries, errorbar_chart};
use crate::sweep::SweepConfig;
use crate::theory::grid::{IcMethod, theory_grid};
use std::fmt::Write as _;
use std::path::Path;

/// The dimensions of the study.
pub const DIMS: [usize; 6] = [64, 256, 1024, 4096, 16384, 100_000];

/// The sweep configuration of one dimension (seeds per cell: 200 quick, 1000 full).
pub fn dim_config(d: usize, quick: bool) -> Result<SweepConfig> {
    let seeds = if quick { 200 } else { 1000 };
    let text = format!(
        r#"
[grid]
beta_i = [0.03]
t0 = [500, 1000, 2000]
no_annealing = true
seeds = {seeds}
extra_steps = 500

[run]
seed = 2026

[run.target]
d = {d}
r = 3.0
w_star = 0.8

[run.student]
sigma0 = "schedule"

[run.objective]
engine = "statistics"
estimator = "full"
samples = 32

[run.optim]
lr = 0.05
"#
    );
    builtin_config(&text, "dimension-study")
}

/// One point of the study.
#[derive(Clone, Debug, PartialEq)]
pub struct DimPoint {
    /// Dimension d.
    pub d: usize,
    /// β_i (1 for no annealing).
    pub beta_i: f64,
    /// t0 in SGD steps (0 for no annealing).
    pub t0: f64,
    /// SGD runs and collapses.
    pub n: usize,
    /// Collapsed runs.
    pub collapsed: usize,
    /// ODE initial conditions and collapses (failed integrations count in n).
    pub n_ode: usize,
    /// Collapses predicted by the ODE.
    pub collapsed_ode: usize,
}

/// Runs (or resumes) the study in `out` and draws it.
pub fn figure_dim(out: &Path, quick: bool) -> Result<Vec<DimPoint>> {
    let mut points = Vec::new();
    for d in DIMS {
        let cfg = dim_config(d, quick)?;
        let dir = out.join(format!("d{d}"));
        let rep = resume_sweep(&cfg, &dir)?;
        let cells = cells_in(&dir)?;
        let theory = theory_grid(&cfg, cfg.grid.seeds, IcMethod::Paired)?;
        crate::progress::note(&format!(
            "d = {d}: {} runs ({} run now in {:.1} s)",
            rep.planned, rep.ran, rep.seconds
        ));
        for c in &cells {
            let th = theory
                .iter()
                .find(|t| t.cell == c.cell)
                .ok_or_else(|| Error::Invalid(format!("no ODE cell for {:?}", c.cell)))?;
            points.push(DimPoint {
                d,
                beta_i: c.cell.beta_i,
                t0: c.cell.t0,
                n: c.n,
                collapsed: c.collapsed,
                n_ode: th.n,
                collapsed_ode: th.collapsed,
            });
        }
    }
    write_dim(out, &points)?;
    draw_dim(out, &points, quick)?;
    Ok(points)
}

fn cell_label(beta_i: f64, t0: f64) -> String {
    if t0 == 0.0 {
        "no annealing".into()
    } else {
        format!("β_i = {beta_i}, t0 = {t0}")
    }
}

fn write_dim(out: &Path, points: &[DimPoint]) -> Result<()> {
    let mut s = String::from(
        "d,beta_i,t0,n,collapsed,p_collapse,ci_low,ci_high,n_ode,collapsed_ode,p_ode,ode_ci_low,ode_ci_high\n",
    );
    for p in points {
        let (lo, hi) = wilson_interval(p.collapsed, p.n);
        let (olo, ohi) = wilson_interval(p.collapsed_ode, p.n_ode);
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{},{}",
            p.d,
            p.beta_i,
            p.t0,
            p.n,
            p.collapsed,
            p.collapsed as f64 / p.n.max(1) as f64,
            lo,
            hi,
            p.n_ode,
            p.collapsed_ode,
            p.collapsed_ode as f64 / p.n_ode.max(1) as f64,
            olo,
            ohi
        );
    }
    crate::output::write_text(&out.join("dim.csv"), &s)
}

fn draw_dim(out: &Path, points: &[DimPoint], quick: bool) -> Result<()> {
    let mut cells: Vec<(f64, f64)> = Vec::new();
    for p in points {
        if !cells.contains(&(p.beta_i, p.t0)) {
            cells.push((p.beta_i, p.t0));
        }
    }
    let mut series = Vec::new();
    let mut lines = Vec::new();
    for &(b, t0) in &cells {
        let pts: Vec<&DimPoint> = points
            .iter()
            .filter(|p| p.beta_i == b && p.t0 == t0)
            .collect();
        series.push(ErrorBarSeries {
            label: format!("SGD, {}", cell_label(b, t0)),
            points: pts
                .iter()
                .map(|p| {
                    let (lo, hi) = wilson_interval(p.collapsed, p.n);
                    (p.d as f64, p.collapsed as f64 / p.n.max(1) as f64, lo, hi)
                })
                .collect(),
        });
        lines.push((
            format!("ODE, {}", cell_label(b, t0)),
            pts.iter()
                .map(|p| (p.d as f64, p.collapsed_ode as f64 / p.n_ode.max(1) as f64))
                .collect(),
        ));
    }
    let seeds = points.first().map_or(0, |p| p.n);
    errorbar_chart(
        &format!(
            "P(collapse) vs d: SGD (B = 32, {seeds} seeds{}) and ODE (dashed)",
            if quick { ", quick" } else { "" }
        ),
        "dimension d",
        "P(collapse)",
        true,
        &series,
        &lines,
        out,
        "fig_dim",
    )?;
    crate::progress::note(&format!("wrote {}", out.join("fig_dim.png").display()));
    Ok(())
}
