//! Figure 1's layout: a grid of marginal panels and a variance panel per row, row labels on
//! the left and a shared legend on top, built from the generic charts of `crate::plot`.

use crate::plot::{
    Figure, MarginalPanel, PlotError, SeriesPanel, legend_row, line_chart, marginal_chart,
    marginal_legend, render_both, rotated_label,
};
use plotters::coord::Shift;
use plotters::prelude::{DrawingArea, DrawingBackend};
use std::path::Path;

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
