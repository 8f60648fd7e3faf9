//! Line charts: series against a common x axis ([`line_chart`], one per figure or a grid of
//! them), and marginal densities of target, tempered target and student ([`marginal_chart`],
//! with [`marginal_legend`] for a legend shared by several panels).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{Scale, legend_corner, to_axis_space};
use super::chart::{Frame, LegendEntry, LineStyle, build_chart, draw_legend, draw_line};
use super::colour::{STUDENT_COLOR, TARGET_COLOR, TEMPERED_COLOR, series_color};
use super::{Figure, PlotError, render_both};

/// Legend label of the target density.
const TARGET_LABEL: &str = "target π";
/// Legend label of the tempered target density.
const TEMPERED_LABEL: &str = "tempered π_β";
/// Legend label of the student density.
const STUDENT_LABEL: &str = "student q";

/// One panel of densities along the target axis `mu_hat` at one training stage.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MarginalPanel {
    /// Panel title, e.g. `"step 0, β=0.05"`.
    pub title: String,
    /// Grid of `s = x·mu_hat`.
    pub s: Vec<f64>,
    /// Target marginal density π on the grid.
    pub target: Vec<f64>,
    /// Normalised tempered target marginal π_β, drawn dashed when present.
    pub target_tempered: Option<Vec<f64>>,
    /// Student marginal density q on the grid.
    pub student: Vec<f64>,
}

/// A panel of line series against a common x quantity (typically the training step).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SeriesPanel {
    /// Panel title.
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Y axis description.
    pub y_label: String,
    /// Whether the y axis is logarithmic (non-positive values are skipped).
    pub log_y: bool,
    /// `(legend label, points)`; an empty label adds no legend entry.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    /// Optional per-series style `(colour index for [`series_color`], dashed)`; series
    /// without an entry use their position and a solid line.
    pub styles: Vec<(usize, bool)>,
}

// ---------------------------------------------------------------------------
// Building blocks
// ---------------------------------------------------------------------------

/// Draws `panel` (line series against x, optionally log-y) filling `area`.
///
/// Series get colours from [`series_color`]; the legend (labelled series
/// only) goes to the corner with the fewest data points.
pub fn line_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &SeriesPanel,
) -> Result<(), PlotError> {
    let all = || panel.series.iter().flat_map(|(_, pts)| pts.iter());
    let x = Scale::fit(false, all().map(|p| p.0), 0.02);
    let y = Scale::fit(panel.log_y, all().map(|p| p.1), 0.05);
    let frame = Frame {
        title: &panel.title,
        x_label: &panel.x_label,
        y_label: &panel.y_label,
        x: &x,
        y: &y,
        grid: true,
    };
    let mut chart = build_chart(area, &frame)?;
    let pts: Vec<_> = panel
        .series
        .iter()
        .map(|(_, p)| to_axis_space(p, &x, &y))
        .collect();
    for (i, ((label, _), p)) in panel.series.iter().zip(&pts).enumerate() {
        let (ci, dashed) = panel.styles.get(i).copied().unwrap_or((i, false));
        let style = LineStyle {
            color: series_color(ci),
            width: 2,
            dashed,
        };
        draw_line(&mut chart, p, label, style)?;
    }
    let entries = panel.series.iter().filter(|(l, _)| !l.is_empty()).count();
    if entries > 0 {
        draw_legend(&mut chart, legend_corner(&pts, &x, &y, entries), false)?;
    }
    Ok(())
}

/// Draws one [`MarginalPanel`]: target π (solid black), tempered π_β (dashed,
/// if present) and student q (blue) against `s = x·μ̂`.
///
/// The y axis starts at 0; a legend is drawn when `legend` is true.
pub fn marginal_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    panel: &MarginalPanel,
    legend: bool,
) -> Result<(), PlotError> {
    let mut curves: Vec<(&str, &[f64], LineStyle)> = vec![(
        TARGET_LABEL,
        &panel.target,
        LineStyle {
            color: TARGET_COLOR,
            width: 2,
            dashed: false,
        },
    )];
    if let Some(t) = &panel.target_tempered {
        curves.push((
            TEMPERED_LABEL,
            t,
            LineStyle {
                color: TEMPERED_COLOR,
                width: 2,
                dashed: true,
            },
        ));
    }
    curves.push((
        STUDENT_LABEL,
        &panel.student,
        LineStyle {
            color: STUDENT_COLOR,
            width: 2,
            dashed: false,
        },
    ));

    let x = Scale::fit(false, panel.s.iter().copied(), 0.0);
    let top = curves
        .iter()
        .flat_map(|(_, d, _)| d.iter().copied())
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    let y = Scale::new(false, 0.0, if top > 0.0 { top * 1.1 } else { 1.0 });
    let frame = Frame {
        title: &panel.title,
        x_label: "s = x·μ\u{302}",
        y_label: "density",
        x: &x,
        y: &y,
        grid: true,
    };
    let mut chart = build_chart(area, &frame)?;
    let pts: Vec<Vec<Option<(f64, f64)>>> = curves
        .iter()
        .map(|(_, d, _)| {
            let xy: Vec<(f64, f64)> = panel.s.iter().copied().zip(d.iter().copied()).collect();
            to_axis_space(&xy, &x, &y)
        })
        .collect();
    for ((label, _, style), p) in curves.iter().zip(&pts) {
        draw_line(&mut chart, p, if legend { label } else { "" }, *style)?;
    }
    if legend {
        draw_legend(&mut chart, legend_corner(&pts, &x, &y, curves.len()), false)?;
    }
    Ok(())
}

/// The legend of [`marginal_chart`] as entries of a [`legend_row`](super::legend_row) shared
/// by several panels: target π, tempered π_β (dashed, when `tempered`) and student q.
pub fn marginal_legend(tempered: bool) -> Vec<LegendEntry> {
    let line = |label: &str, color, dashed| LegendEntry {
        label: label.to_string(),
        color,
        dashed,
    };
    let mut entries = vec![line(TARGET_LABEL, TARGET_COLOR, false)];
    if tempered {
        entries.push(line(TEMPERED_LABEL, TEMPERED_COLOR, true));
    }
    entries.push(line(STUDENT_LABEL, STUDENT_COLOR, false));
    entries
}

/// [`Figure`] adapter for a single [`SeriesPanel`].
struct LineFig<'a>(&'a SeriesPanel);

impl Figure for LineFig<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        line_chart(area, self.0)
    }
}

/// Writes a single [`line_chart`] (640×440 px) to `out_dir/<stem>.{png,svg}`.
pub fn line_figure(panel: &SeriesPanel, out_dir: &Path, stem: &str) -> Result<(), PlotError> {
    render_both(out_dir, stem, 640, 440, &LineFig(panel))
}

/// [`Figure`] adapter for a grid of [`line_chart`] panels.
struct PanelsFig<'a> {
    panels: &'a [SeriesPanel],
    cols: usize,
}

impl Figure for PanelsFig<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let cols = self.cols.max(1);
        let rows = self.panels.len().div_ceil(cols).max(1);
        let cells = area.split_evenly((rows, cols));
        for (panel, cell) in self.panels.iter().zip(cells.iter()) {
            line_chart(cell, panel)?;
        }
        Ok(())
    }
}

/// Writes a grid of line panels (`cols` per row, 420×300 px each) to
/// `out_dir/<stem>.{png,svg}`.
pub fn panels_figure(
    panels: &[SeriesPanel],
    cols: usize,
    out_dir: &Path,
    stem: &str,
) -> Result<(), PlotError> {
    let cols = cols.max(1);
    let rows = panels.len().div_ceil(cols).max(1) as u32;
    let fig = PanelsFig { panels, cols };
    render_both(out_dir, stem, 420 * cols as u32, 300 * rows, &fig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::test_util::{check_outputs, synthetic_variances, temp_dir};

    #[test]
    fn line_figure_writes_png_and_svg() {
        let dir = temp_dir("line");
        line_figure(&synthetic_variances(), &dir, "line").expect("line figure");
        check_outputs(&dir, "line");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn panels_figure_writes_png_and_svg() {
        let dir = temp_dir("line_panels");
        let panel = synthetic_variances();
        panels_figure(&[panel.clone(), panel.clone(), panel], 2, &dir, "grid")
            .expect("panels figure");
        check_outputs(&dir, "grid");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn marginal_legend_lists_the_curves_drawn() {
        let labels = |t| {
            marginal_legend(t)
                .into_iter()
                .map(|e| e.label)
                .collect::<Vec<_>>()
        };
        assert_eq!(labels(false), vec![TARGET_LABEL, STUDENT_LABEL]);
        assert_eq!(
            labels(true),
            vec![TARGET_LABEL, TEMPERED_LABEL, STUDENT_LABEL]
        );
    }
}
