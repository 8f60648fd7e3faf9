//! Figure 5: P(collapse) against the annealing rate ln r = ln(1/β_i)/t0, one error-bar series
//! per β_i: the Gaussian-mixture student (the Figure 2 sweep) with the analytical formula's
//! β_i → 0 asymptote, and optionally the RealNVP student (the Figure 4 sweep) in a second
//! panel with its own x axis.

use super::{Grid, fig2_config, fig2_sweep, fig4_config, fig4_sweep, no_annealing};
use crate::error::Result;
use crate::metrics::wilson_interval;
use crate::output;
use crate::plot::{ErrorBarChart, ErrorBarSeries, LabeledLine, errorbar_panels};
use crate::sweep::{CellStats, Device};
use std::fmt::Write as _;
use std::path::Path;

/// Header of the CSV files behind the panels.
const RATE_CSV_HEADER: &str = "beta_i,t0,log_rate,p_collapse,ci_low,ci_high,n\n";

/// P(collapse) against ln r, one error-bar series per β_i of `cells` (annealed cells), with
/// their rows appended to `csv` (`beta_i,t0,log_rate,p_collapse,ci_low,ci_high,n`).
fn rate_series(cells: &[CellStats], csv: &mut String) -> Vec<ErrorBarSeries> {
    Grid::of_stats(cells)
        .xs
        .iter()
        .map(|&b| {
            let mut pts: Vec<(f64, f64, f64, f64)> = cells
                .iter()
                .filter(|c| c.cell.beta_i == b && c.cell.t0 > 0.0)
                .map(|c| {
                    let (lo, hi) = wilson_interval(c.collapsed, c.n);
                    let x = c.cell.rate().ln();
                    let _ = writeln!(
                        csv,
                        "{b},{},{x},{},{lo},{hi},{}",
                        c.cell.t0,
                        c.p_collapse(),
                        c.n
                    );
                    (x, c.p_collapse(), lo, hi)
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            ErrorBarSeries {
                label: format!("β_i = {b:.3}"),
                points: pts,
            }
        })
        .collect()
}

/// The x range of a set of series.
fn x_range(series: &[ErrorBarSeries]) -> (f64, f64) {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        })
}

/// A flat dashed line at the no-annealing cell's P(collapse), across the series' x range.
fn no_annealing_line(cells: &[CellStats], series: &[ErrorBarSeries]) -> Option<LabeledLine> {
    let c = no_annealing(cells)?;
    let (lo, hi) = x_range(series);
    lo.is_finite().then(|| {
        (
            format!("no annealing ({:.2})", c.p_collapse()),
            vec![(lo, c.p_collapse()), (hi, c.p_collapse())],
        )
    })
}

/// One panel: P(collapse) of `cells` against ln r per `step` (the unit of t0, `"SGD step"`,
/// `"Adam step"`), with the no-annealing level as a dashed line; its data go to `csv_path`.
fn rate_chart(
    cells: &[CellStats],
    title: String,
    step: &str,
    csv_path: &Path,
) -> Result<ErrorBarChart> {
    let mut csv = String::from(RATE_CSV_HEADER);
    let series = rate_series(cells, &mut csv);
    let extra_lines = no_annealing_line(cells, &series).into_iter().collect();
    output::write_text(csv_path, &csv)?;
    Ok(ErrorBarChart {
        title,
        x_label: format!("annealing rate ln r = ln(1/β_i)/t0 (per {step})"),
        y_label: "P(collapse)".into(),
        x_log: true,
        y_log: false,
        series,
        extra_lines,
        extra_colors: Vec::new(),
    })
}

/// Figure 5: P(collapse) against the annealing rate ln r = ln(1/β_i)/t0 (per step), one series
/// per β_i. Left panel: the Gaussian-mixture student (the Figure 2 sweep in `out`) with the
/// formula's β_i → 0 asymptote; right panel (when `flow = Some((dir, flow_quick, engine))`):
/// the RealNVP student (the quick or full Figure 4 sweep in `dir`, run or resumed there). The
/// panels have their own x axes: a step is an SGD step of η = 0.05 for the mixture and an
/// Adam step for the flow.
/// Writes fig5.png/svg, fig5.csv (mixture), fig5_flow.csv (flow), fig5_asymptote.csv.
pub fn figure5(out: &Path, quick: bool, flow: Option<(&Path, bool, Device)>) -> Result<()> {
    let cells = fig2_sweep(out, quick)?;
    let mut mixture = rate_chart(
        &cells,
        "Gaussian-mixture student (SGD, η = 0.05)".into(),
        "SGD step",
        &out.join("fig5.csv"),
    )?;
    // the sharp formula's β_i → 0 asymptote, a function of the rate alone
    let cfg = fig2_config(quick)?;
    if let Some(model) = crate::theory::formula::FormulaModel::from_sweep(&cfg) {
        let (lo, hi) = x_range(&mixture.series);
        if lo.is_finite() && lo > 0.0 {
            let mut acsv = String::from("log_rate,p_asymptote\n");
            let curve: Vec<(f64, f64)> = (0..=60)
                .map(|i| {
                    let x = lo * (hi / lo).powf(i as f64 / 60.0);
                    let p = crate::theory::formula::sharp_asymptote(&model, x.exp());
                    let _ = writeln!(acsv, "{x},{p}");
                    (x, p)
                })
                .filter(|p| p.1.is_finite())
                .collect();
            output::write_text(&out.join("fig5_asymptote.csv"), &acsv)?;
            mixture
                .extra_lines
                .push(("formula, β_i → 0".to_string(), curve));
        }
    }
    let mut charts = vec![mixture];
    if let Some((dir, fquick, engine)) = flow {
        let fcells = fig4_sweep(dir, fquick, engine)?;
        let fcfg = fig4_config(fquick)?;
        charts.push(rate_chart(
            &fcells,
            format!(
                "RealNVP student (Adam, d = {}, {} couplings)",
                fcfg.run.target.d, fcfg.run.student.realnvp.layers
            ),
            "Adam step",
            &out.join("fig5_flow.csv"),
        )?);
    }
    errorbar_panels(&charts, out, "fig5")?;
    crate::progress::note(&format!("wrote {}", out.join("fig5.png").display()));
    Ok(())
}
