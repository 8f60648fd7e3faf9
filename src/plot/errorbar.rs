//! Error-bar charts: points with vertical error bars (one series per colour) and dashed
//! reference curves, alone, as panels side by side or on a grid.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{Scale, legend_corner, to_axis_space};
use super::chart::{Frame, LineStyle, build_chart, draw_legend, draw_line};
use super::colour::series_color;
use super::text::txt;
use super::{Figure, PlotError, render_both};

/// A labelled polyline `(legend label, points)`, as used for series,
/// isolines and reference curves.
pub type LabeledLine = (String, Vec<(f64, f64)>);

/// One series of [`errorbar_chart`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ErrorBarSeries {
    /// Legend label (empty: no legend entry).
    pub label: String,
    /// `(x, y, y_low, y_high)`.
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// Everything [`draw_errorbar_chart`] needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ErrorBarChart {
    /// Chart title.
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Y axis description.
    pub y_label: String,
    /// Whether the x axis is logarithmic.
    pub x_log: bool,
    /// Whether the y axis is logarithmic.
    pub y_log: bool,
    /// Series with error bars (solid line, markers, whiskers).
    pub series: Vec<ErrorBarSeries>,
    /// Reference curves `(legend label, points)`, drawn dashed.
    pub extra_lines: Vec<(String, Vec<(f64, f64)>)>,
    /// Colour index of each extra line (e.g. a series' own index, for its prediction); lines
    /// without an entry take the colours after the series'.
    pub extra_colors: Vec<usize>,
}

/// Draws `spec` filling `area`: each series as a solid line with markers and
/// vertical error bars (`y_low`..`y_high`, capped), extra lines dashed.
pub fn draw_errorbar_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    spec: &ErrorBarChart,
) -> Result<(), PlotError> {
    let xs = spec
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .chain(
            spec.extra_lines
                .iter()
                .flat_map(|l| l.1.iter().map(|p| p.0)),
        );
    let ys = spec
        .series
        .iter()
        .flat_map(|s| s.points.iter().flat_map(|p| [p.1, p.2, p.3]))
        .chain(
            spec.extra_lines
                .iter()
                .flat_map(|l| l.1.iter().map(|p| p.1)),
        );
    let x = Scale::fit(spec.x_log, xs, 0.04);
    let y = Scale::fit(spec.y_log, ys, 0.05);
    let frame = Frame {
        title: &spec.title,
        x_label: &spec.x_label,
        y_label: &spec.y_label,
        x: &x,
        y: &y,
        grid: true,
    };
    let mut chart = build_chart(area, &frame)?;
    let cap = (x.hi - x.lo) * 0.008;
    let mut all_pts = Vec::new();
    for (i, s) in spec.series.iter().enumerate() {
        let color = series_color(i);
        let centre: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, p.1)).collect();
        let pts = to_axis_space(&centre, &x, &y);
        let mut bars = Vec::new();
        for &(px, _, lo, hi) in &s.points {
            if let (Some(tx), Some(tl), Some(th)) = (x.tf(px), y.tf(lo), y.tf(hi)) {
                bars.push(vec![(tx, tl), (tx, th)]);
                bars.push(vec![(tx - cap, tl), (tx + cap, tl)]);
                bars.push(vec![(tx - cap, th), (tx + cap, th)]);
            }
        }
        chart
            .draw_series(
                bars.into_iter()
                    .map(|b| PathElement::new(b, color.stroke_width(1))),
            )
            .map_err(PlotError::draw)?;
        let style = LineStyle {
            color,
            width: 2,
            dashed: false,
        };
        draw_line(&mut chart, &pts, "", style)?;
        let anno = chart
            .draw_series(
                pts.iter()
                    .flatten()
                    .map(|&p| Circle::new(p, 3, color.filled())),
            )
            .map_err(PlotError::draw)?;
        if !s.label.is_empty() {
            anno.label(txt::<DB>(&s.label)).legend(move |(lx, ly)| {
                EmptyElement::at((lx, ly))
                    + PathElement::new(vec![(0, 0), (22, 0)], color.stroke_width(2))
                    + Circle::new((11, 0), 3, color.filled())
            });
        }
        all_pts.push(pts);
    }
    for (j, (label, line)) in spec.extra_lines.iter().enumerate() {
        let pts = to_axis_space(line, &x, &y);
        let style = LineStyle {
            color: series_color(
                spec.extra_colors
                    .get(j)
                    .copied()
                    .unwrap_or(spec.series.len() + j),
            ),
            width: 2,
            dashed: true,
        };
        draw_line(&mut chart, &pts, label, style)?;
        all_pts.push(pts);
    }
    let entries = spec.series.iter().filter(|s| !s.label.is_empty()).count()
        + spec.extra_lines.iter().filter(|l| !l.0.is_empty()).count();
    if entries > 0 {
        draw_legend(&mut chart, legend_corner(&all_pts, &x, &y, entries), false)?;
    }
    Ok(())
}

/// [`Figure`] adapter for [`ErrorBarChart`].
struct ErrorBarFig<'a>(&'a ErrorBarChart);

impl Figure for ErrorBarFig<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        draw_errorbar_chart(area, self.0)
    }
}

/// Writes an error-bar chart (640×440 px, linear y) to `out_dir/<stem>.{png,svg}`.
///
/// See [`draw_errorbar_chart`]; `extra_lines` are dashed reference curves.
#[allow(clippy::too_many_arguments)]
pub fn errorbar_chart(
    title: &str,
    x_label: &str,
    y_label: &str,
    x_log: bool,
    series: &[ErrorBarSeries],
    extra_lines: &[LabeledLine],
    out_dir: &Path,
    stem: &str,
) -> Result<(), PlotError> {
    let spec = ErrorBarChart {
        title: title.to_string(),
        x_label: x_label.to_string(),
        y_label: y_label.to_string(),
        x_log,
        y_log: false,
        series: series.to_vec(),
        extra_lines: extra_lines.to_vec(),
        extra_colors: Vec::new(),
    };
    render_both(out_dir, stem, 640, 440, &ErrorBarFig(&spec))
}

/// [`Figure`] adapter for error-bar charts side by side.
struct ErrorBarPanels<'a>(&'a [ErrorBarChart]);

impl Figure for ErrorBarPanels<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let panels = area.split_evenly((1, self.0.len().max(1)));
        for (panel, spec) in panels.iter().zip(self.0) {
            draw_errorbar_chart(panel, spec)?;
        }
        Ok(())
    }
}

/// Writes error-bar charts side by side (640×440 px each) to `out_dir/<stem>.{png,svg}`:
/// one panel per chart, each with its own axes (e.g. two students whose time scales differ).
pub fn errorbar_panels(
    charts: &[ErrorBarChart],
    out_dir: &Path,
    stem: &str,
) -> Result<(), PlotError> {
    let n = charts.len().max(1) as u32;
    render_both(out_dir, stem, 640 * n, 440, &ErrorBarPanels(charts))
}

/// [`Figure`] adapter for error-bar charts on a grid.
struct ErrorBarGrid<'a> {
    charts: &'a [ErrorBarChart],
    rows: usize,
    columns: usize,
}

impl Figure for ErrorBarGrid<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        let panels = area.split_evenly((self.rows, self.columns));
        for (panel, spec) in panels.iter().zip(self.charts) {
            draw_errorbar_chart(panel, spec)?;
        }
        Ok(())
    }
}

/// Writes error-bar charts on a grid of `columns` columns (row-major, 640×440 px each; the
/// last row may be partly empty) to `out_dir/<stem>.{png,svg}`, each with its own axes.
pub fn errorbar_grid(
    charts: &[ErrorBarChart],
    columns: usize,
    out_dir: &Path,
    stem: &str,
) -> Result<(), PlotError> {
    let columns = columns.clamp(1, charts.len().max(1));
    let rows = charts.len().div_ceil(columns).max(1);
    let fig = ErrorBarGrid {
        charts,
        rows,
        columns,
    };
    render_both(out_dir, stem, 640 * columns as u32, 440 * rows as u32, &fig)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::test_util::{check_outputs, temp_dir};

    fn synthetic_errorbars() -> (Vec<ErrorBarSeries>, Vec<LabeledLine>) {
        let series = (0..2)
            .map(|k| ErrorBarSeries {
                label: format!("seed set {k}"),
                points: (0..8)
                    .map(|i| {
                        let x = 10f64.powi(i - 3);
                        let y = 0.2 + 0.1 * i as f64 + 0.05 * k as f64;
                        (x, y, y - 0.04, y + 0.06)
                    })
                    .collect(),
            })
            .collect();
        let theory = vec![(
            "theory".to_string(),
            (0..=70)
                .map(|i| {
                    let l = -3.0 + 0.1 * i as f64;
                    (10f64.powf(l), 0.5 + 0.1 * l)
                })
                .collect(),
        )];
        (series, theory)
    }

    #[test]
    fn errorbar_chart_writes_png_and_svg() {
        let dir = temp_dir("errorbar");
        let (series, extra) = synthetic_errorbars();
        errorbar_chart(
            "error bars",
            "lr",
            "loss",
            true,
            &series,
            &extra,
            &dir,
            "eb",
        )
        .expect("errorbar chart");
        check_outputs(&dir, "eb");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn errorbar_panels_write_png_and_svg() {
        let dir = temp_dir("panels");
        let (series, extra) = synthetic_errorbars();
        let chart = ErrorBarChart {
            title: "panel".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x_log: true,
            y_log: false,
            series,
            extra_lines: extra,
            extra_colors: vec![0],
        };
        errorbar_panels(&[chart.clone(), chart], &dir, "panels").expect("panels");
        check_outputs(&dir, "panels");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn errorbar_grid_writes_png_and_svg() {
        let dir = temp_dir("grid");
        let (series, extra) = synthetic_errorbars();
        let chart = ErrorBarChart {
            title: "panel".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            x_log: true,
            y_log: false,
            series,
            extra_lines: extra,
            extra_colors: Vec::new(),
        };
        errorbar_grid(&vec![chart; 3], 2, &dir, "grid").expect("grid");
        check_outputs(&dir, "grid");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_data_draws_empty_axes() {
        let dir = temp_dir("eb_baddata");
        let nan = f64::NAN;
        let series = vec![ErrorBarSeries {
            label: "nan".into(),
            points: vec![
                (nan, 1.0, 0.0, 2.0),
                (1.0, nan, nan, nan),
                (-1.0, 1.0, 1.0, 1.0),
            ],
        }];
        errorbar_chart("t", "x", "y", true, &series, &[], &dir, "eb_bad").expect("bad errorbars");
        check_outputs(&dir, "eb_bad");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_directory_is_an_error() {
        let base = temp_dir("eb_missing");
        let dir = base.join("does").join("not").join("exist");
        let (series, extra) = synthetic_errorbars();
        let err = errorbar_chart("t", "x", "y", false, &series, &extra, &dir, "eb")
            .expect_err("must fail");
        assert!(err.to_string().contains("eb."), "{err}");
        let _ = std::fs::remove_dir_all(&base);
    }
}
