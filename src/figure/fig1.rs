//! Figure 1: marginals along μ̂ of the target and the student at four stages of training, and
//! the student's σ1, σ2 against the step, for three runs.
//!
//! Three rows, all d = 512, R = 3, w* = 0.8, w1 = ½, η = 0.05, the same initial means:
//! (i) no annealing, σ(0) = 1; (ii) no annealing, "covering" σ(0) = 10 ≫ R; (iii) exponential
//! annealing β(t) = β_i^(1 − t/t0) with σ(0)² = 1/β_i. Columns 1–4: marginals along μ̂ of π
//! (and π_β) and q at four stages; column 5: σ1, σ2 against the step.
//!
//! The run shown uses the first seed ≥ `--seed` for which rows (i) and (ii) collapse and row
//! (iii) covers both modes (the situation the paper's figure illustrates). So that the
//! choice hides nothing, the command also measures P(collapse) of each row over many seeds
//! (`fig1_outcomes.csv`, Wilson 95% intervals) and prints it.
//!
//! The figure's layout ([`draw_fig1`]: a grid of marginal panels and a variance panel per row,
//! row labels on the left, a shared legend on top) is built here from the generic charts.

use crate::config::{Config, NumberOr, ScheduleKind};
use crate::error::Result;
use crate::metrics::wilson_interval;
use crate::output;
use crate::plot::{
    Figure, MarginalPanel, PlotError, SeriesPanel, legend_row, line_chart, marginal_chart,
    marginal_legend, render_both, rotated_label,
};
use crate::run::Trainer;
use crate::train::Recorder;
use plotters::coord::Shift;
use plotters::prelude::{DrawingArea, DrawingBackend};
use rayon::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// Row (iii)'s annealing: β_i.
pub const FIG1_BETA_I: f64 = 0.05;
/// Row (iii)'s annealing: t0 in SGD steps.
pub const FIG1_T0: f64 = 4000.0;
/// SGD steps of rows (i) and (ii) (converged long before).
pub const FIG1_STEPS_NO_ANNEALING: usize = 2000;

/// The three configurations of Figure 1 (rows i, ii, iii). Row (iii) runs t0 + 1000 steps.
pub fn figure1_configs(seed: u64) -> Vec<(String, Config)> {
    let mut base = Config {
        seed,
        ..Config::default()
    };
    base.record.every = 20;
    let steps = FIG1_STEPS_NO_ANNEALING;
    base.optim.steps = steps;
    let mut r1 = base.clone();
    r1.schedule.kind = ScheduleKind::Constant;
    r1.schedule.beta = 1.0;
    r1.student.sigma0 = NumberOr::Number(1.0);
    r1.record.marginal_steps = vec![0, 20, 100, steps];
    let mut r2 = r1.clone();
    r2.student.sigma0 = NumberOr::Number(10.0);
    r2.record.marginal_steps = vec![0, 3, 100, steps];
    let mut r3 = base;
    let steps = FIG1_T0 as usize + 1000;
    r3.optim.steps = steps;
    r3.schedule.kind = ScheduleKind::Exponential;
    r3.schedule.beta_i = FIG1_BETA_I;
    r3.schedule.t0 = FIG1_T0;
    r3.student.sigma0 = NumberOr::Name("schedule".into());
    let t0 = FIG1_T0 as usize;
    r3.record.marginal_steps = vec![0, t0 / 2, (3 * t0) / 4, steps];
    vec![
        ("(i) no annealing, σ(0)=1".into(), r1),
        ("(ii) no annealing, σ(0)=10".into(), r2),
        (
            format!("(iii) exponential annealing, β_i={FIG1_BETA_I}, t0={FIG1_T0}"),
            r3,
        ),
    ]
}

/// Reproduces Figure 1 into `out` (fig1.png, fig1.svg and the CSV data behind them).
pub fn figure1(out: &Path, quick: bool, seed: u64) -> Result<()> {
    output::ensure_dir(out)?;
    let n_stat = if quick { 10 } else { 48 };
    let configs = figure1_configs(seed);

    // Collapse statistics per row over n_stat seeds (runs 0..n_stat of each config).
    let bar = crate::progress::bar((3 * n_stat) as u64, "figure 1");
    let outcomes: Vec<Vec<crate::metrics::Outcome>> = configs
        .iter()
        .map(|(_, c)| {
            let mut light = c.clone();
            light.record.every = 0;
            light.record.marginal_steps.clear();
            let exp = light.compile()?;
            (0..n_stat as u64)
                .into_par_iter()
                .map(|run| {
                    let r = Trainer::new(&exp).index(run).run()?;
                    bar.inc(1);
                    Ok(r.outcome().clone())
                })
                .collect()
        })
        .collect::<Result<_>>()?;
    bar.finish_and_clear();

    // The run shown: the first run index whose outcomes match the paper's illustration.
    let shown = (0..n_stat)
        .find(|&i| {
            outcomes[0][i].is_collapsed()
                && outcomes[1][i].is_collapsed()
                && outcomes[2][i].label() == "covered"
        })
        .unwrap_or(0);

    let mut rows = Vec::new();
    let mut marg_csv = String::from("row,step,beta,s,q,pi,pi_beta\n");
    let mut traj_csv = format!("row,{}\n", output::trajectory_header(2));
    let mut out_csv =
        String::from("row,label,n,collapsed,covered,diverged,p_collapse,ci_low,ci_high\n");
    for (i, (label, cfg)) in configs.iter().enumerate() {
        let mut rec = Recorder::default();
        let exp = cfg.compile()?;
        let run = Trainer::new(&exp)
            .index(shown as u64)
            .observer(&mut rec)
            .run()?;
        let res = run
            .into_mixture()
            .ok_or_else(|| {
                crate::Error::Invalid("figure 1 trains the Gaussian-mixture student".into())
            })?
            .1;
        output::marginals_rows(&mut marg_csv, &format!("{},", i + 1), &rec.marginals);
        for r in &rec.records {
            let _ = writeln!(traj_csv, "{},{}", i + 1, output::trajectory_row(r));
        }
        let n = outcomes[i].len();
        let collapsed = outcomes[i].iter().filter(|o| o.is_collapsed()).count();
        let covered = outcomes[i]
            .iter()
            .filter(|o| o.label() == "covered")
            .count();
        let diverged = outcomes[i]
            .iter()
            .filter(|o| o.label() == "diverged")
            .count();
        let (lo, hi) = wilson_interval(collapsed, n);
        let p = collapsed as f64 / n as f64;
        let _ = writeln!(
            out_csv,
            "{},\"{}\",{n},{collapsed},{covered},{diverged},{p},{lo},{hi}",
            i + 1,
            label
        );
        crate::progress::note(&format!(
            "row {}: {label}: shown run {} -> {}; P(collapse) = {p:.2} [{lo:.2}, {hi:.2}] over {n} seeds",
            i + 1,
            shown,
            res.outcome.label()
        ));
        rows.push(Fig1Row {
            label: label.clone(),
            marginals: rec
                .marginals
                .iter()
                .map(|m| MarginalPanel {
                    title: format!("step {}, β={:.3}", m.step, m.beta),
                    s: m.s.clone(),
                    target: m.target.clone(),
                    target_tempered: if (m.beta - 1.0).abs() < 1e-12 {
                        None
                    } else {
                        m.target_tempered.clone()
                    },
                    student: m.q.clone(),
                })
                .collect(),
            variances: SeriesPanel {
                title: "σ1, σ2".into(),
                x_label: "SGD step".into(),
                y_label: "σ".into(),
                log_y: true,
                styles: Vec::new(),
                series: (0..2)
                    .map(|k| {
                        (
                            format!("σ{}", k + 1),
                            rec.records
                                .iter()
                                .map(|r| (r.step as f64, r.stats.sigma[k]))
                                .collect(),
                        )
                    })
                    .chain(std::iter::once((
                        "1/√β".to_string(),
                        rec.records
                            .iter()
                            .map(|r| (r.step as f64, 1.0 / r.beta.sqrt()))
                            .collect(),
                    )))
                    .collect(),
            },
        });
    }
    output::write_text(&out.join("fig1_marginals.csv"), &marg_csv)?;
    output::write_text(&out.join("fig1_trajectory.csv"), &traj_csv)?;
    output::write_text(&out.join("fig1_outcomes.csv"), &out_csv)?;
    draw_fig1(&rows, out, "fig1")?;
    crate::progress::note(&format!("wrote {}", out.join("fig1.png").display()));
    Ok(())
}

/// One row of [`draw_fig1`]: marginal panels followed by a variance panel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fig1Row {
    /// Row label, drawn rotated at the left edge of the row.
    pub label: String,
    /// Marginal panels, one per column (4 in practice).
    pub marginals: Vec<MarginalPanel>,
    /// Panel drawn in the last column.
    pub variances: SeriesPanel,
}

/// Width of one panel of [`draw_fig1`], in pixels.
pub const FIG1_PANEL_WIDTH: u32 = 360;
/// Height of one panel of [`draw_fig1`], in pixels.
pub const FIG1_PANEL_HEIGHT: u32 = 260;

/// Width of the strip holding the rotated row labels of [`draw_fig1`].
const ROW_LABEL_WIDTH: u32 = 30;
/// Height of the shared legend strip at the top of [`draw_fig1`].
const LEGEND_STRIP_HEIGHT: u32 = 28;

/// [`Figure`] adapter for [`draw_fig1`].
struct Fig1<'a> {
    rows: &'a [Fig1Row],
    cols: usize,
    label_strip: bool,
}

impl Figure for Fig1<'_> {
    fn draw<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), PlotError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let (legend, area) = area.split_vertically(LEGEND_STRIP_HEIGHT);
        let tempered = self
            .rows
            .iter()
            .flat_map(|r| &r.marginals)
            .any(|m| m.target_tempered.is_some());
        let entries = marginal_legend(tempered);
        // Centre the legend over the marginal columns (not the variance column).
        let strip = if self.label_strip { ROW_LABEL_WIDTH } else { 0 };
        let (w, _) = legend.dim_in_pixel();
        let cols = self.cols as u32;
        let marginal_w = strip + w.saturating_sub(strip) * (cols - 1) / cols;
        if marginal_w > strip {
            legend_row(&legend.split_horizontally(marginal_w).0, &entries)?;
        }

        let (labels, grid) = if self.label_strip {
            let (l, g) = area.split_horizontally(ROW_LABEL_WIDTH);
            (Some(l), g)
        } else {
            (None, area.clone())
        };
        let n = self.rows.len();
        if let Some(labels) = labels {
            for (row, cell) in self.rows.iter().zip(labels.split_evenly((n, 1))) {
                rotated_label(&cell, &row.label)?;
            }
        }
        let cells = grid.split_evenly((n, self.cols));
        for (r, row) in self.rows.iter().enumerate() {
            let cell = |c: usize| &cells[r * self.cols + c];
            for (c, panel) in row.marginals.iter().enumerate() {
                marginal_chart(cell(c), panel, false)?;
            }
            line_chart(cell(self.cols - 1), &row.variances)?;
        }
        Ok(())
    }
}

/// Figure 1: one row per [`Fig1Row`] (label on the left), its marginal panels
/// in the first columns and its variance panel in the last column.
///
/// Each panel is [`FIG1_PANEL_WIDTH`]×[`FIG1_PANEL_HEIGHT`] pixels. The legend of the
/// marginal panels (target π, tempered π_β dashed, student q) is a shared
/// strip along the top, centred over the marginal columns, so it never hides
/// curves; variance panels carry their own legends. Writes
/// `out_dir/<stem>.{png,svg}`.
pub fn draw_fig1(
    rows: &[Fig1Row],
    out_dir: &Path,
    stem: &str,
) -> std::result::Result<(), PlotError> {
    let cols = rows.iter().map(|r| r.marginals.len()).max().unwrap_or(0) + 1;
    let label_strip = rows.iter().any(|r| !r.label.is_empty());
    let fig = Fig1 {
        rows,
        cols,
        label_strip,
    };
    let width = cols as u32 * FIG1_PANEL_WIDTH + if label_strip { ROW_LABEL_WIDTH } else { 0 };
    let height = rows.len().max(1) as u32 * FIG1_PANEL_HEIGHT + LEGEND_STRIP_HEIGHT;
    render_both(out_dir, stem, width, height, &fig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::test_util::{check_outputs, synthetic_variances, temp_dir};

    fn gauss(s: f64, m: f64, sd: f64) -> f64 {
        (-(s - m).powi(2) / (2.0 * sd * sd)).exp() / (sd * (2.0 * std::f64::consts::PI).sqrt())
    }

    /// Synthetic rows: target is a two-component mixture, student a Gaussian.
    fn synthetic_rows() -> Vec<Fig1Row> {
        let s: Vec<f64> = (0..=200).map(|i| -4.0 + 8.0 * i as f64 / 200.0).collect();
        let target: Vec<f64> = s
            .iter()
            .map(|&v| 0.5 * gauss(v, -1.5, 0.5) + 0.5 * gauss(v, 1.5, 0.5))
            .collect();
        [
            "(iii) exponential annealing, β_i = 0.05, t0 = 2000",
            "no annealing",
        ]
        .iter()
        .enumerate()
        .map(|(r, label)| {
            let marginals = [0usize, 100, 1000, 10000]
                .iter()
                .enumerate()
                .map(|(k, step)| {
                    let beta: f64 = [0.05, 0.2, 0.6, 1.0][k];
                    let tempered: Vec<f64> = s
                        .iter()
                        .map(|&v| {
                            0.5 * gauss(v, -1.5, 0.5 / beta.sqrt())
                                + 0.5 * gauss(v, 1.5, 0.5 / beta.sqrt())
                        })
                        .collect();
                    MarginalPanel {
                        title: format!("step {step}, β={beta}"),
                        s: s.clone(),
                        target: target.clone(),
                        target_tempered: (r == 0).then_some(tempered),
                        student: s
                            .iter()
                            .map(|&v| gauss(v, 0.3 * k as f64, 2.0 / (k + 1) as f64))
                            .collect(),
                    }
                })
                .collect();
            Fig1Row {
                label: label.to_string(),
                marginals,
                variances: synthetic_variances(),
            }
        })
        .collect()
    }

    #[test]
    fn figure1_writes_png_and_svg() {
        let dir = temp_dir("fig1");
        draw_fig1(&synthetic_rows(), &dir, "figure1").expect("figure1");
        check_outputs(&dir, "figure1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_data_draws_empty_axes() {
        let dir = temp_dir("fig1_baddata");
        let nan = f64::NAN;
        let rows = vec![Fig1Row {
            label: String::new(),
            marginals: vec![
                MarginalPanel {
                    title: "all NaN".into(),
                    s: vec![nan; 5],
                    target: vec![nan; 5],
                    target_tempered: Some(vec![f64::INFINITY; 5]),
                    student: vec![nan; 5],
                },
                MarginalPanel::default(),
                MarginalPanel {
                    title: "flat".into(),
                    s: vec![1.0; 4],
                    target: vec![0.0; 4],
                    target_tempered: None,
                    student: vec![2.0, nan, 2.0, 2.0],
                },
            ],
            variances: SeriesPanel {
                title: "log of non-positive".into(),
                log_y: true,
                styles: Vec::new(),
                series: vec![
                    ("zeros".into(), vec![(0.0, 0.0), (1.0, -1.0)]),
                    ("empty".into(), vec![]),
                    (
                        "gap".into(),
                        vec![(0.0, 1.0), (1.0, nan), (2.0, 3.0), (3.0, 4.0)],
                    ),
                ],
                ..Default::default()
            },
        }];
        draw_fig1(&rows, &dir, "bad").expect("bad data still renders");
        check_outputs(&dir, "bad");
        draw_fig1(&[], &dir, "empty").expect("no rows still renders");
        check_outputs(&dir, "empty");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_directory_is_an_error() {
        let base = temp_dir("fig1_missing");
        let dir = base.join("does").join("not").join("exist");
        let err = draw_fig1(&synthetic_rows(), &dir, "figure1").expect_err("must fail");
        assert!(err.file().is_some());
        assert!(err.to_string().contains("figure1"), "{err}");
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn unwritable_target_is_an_error() {
        // A directory where the output file should be cannot be overwritten.
        let dir = temp_dir("fig1_unwritable");
        std::fs::create_dir_all(dir.join("x.svg")).expect("blocker dir");
        let err = draw_fig1(&synthetic_rows(), &dir, "x").expect_err("must fail");
        assert_eq!(err.file(), Some(dir.join("x.svg").as_path()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
