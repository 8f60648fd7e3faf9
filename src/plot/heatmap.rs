//! Heat maps: values in `[0, 1]` on a (possibly log-spaced) grid, coloured by viridis, with a
//! colour bar and dashed isolines.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::axes::{Scale, TickFmt, legend_corner, min_max, to_axis_space, transform};
use super::chart::{Frame, LineStyle, build_chart, draw_legend, draw_line};
use super::colour::{ISOLINE_COLORS, viridis};
use super::text::{TICK_SIZE, TITLE_SIZE, font, txt};
use super::{Figure, PlotError, render_both};

/// A heat map of values in `[0, 1]` on a (possibly log-spaced) grid.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Heatmap {
    /// Figure title.
    pub title: String,
    /// X axis description.
    pub x_label: String,
    /// Y axis description.
    pub y_label: String,
    /// Whether the x axis is logarithmic.
    pub x_log: bool,
    /// Whether the y axis is logarithmic.
    pub y_log: bool,
    /// Cell centres along x (monotone).
    pub xs: Vec<f64>,
    /// Cell centres along y (monotone).
    pub ys: Vec<f64>,
    /// `values[iy][ix]` in `[0, 1]` (clamped); non-finite cells are left blank.
    pub values: Vec<Vec<f64>>,
    /// `(legend label, points)` of isolines, drawn dashed and clipped to the grid.
    pub isolines: Vec<(String, Vec<(f64, f64)>)>,
}

/// Cell edges (axis space) for cell centres `centres`; invalid centres get `None`.
fn cell_edges(centres: &[f64], log: bool) -> Vec<Option<(f64, f64)>> {
    let valid: Vec<(usize, f64)> = centres
        .iter()
        .enumerate()
        .filter_map(|(i, &c)| transform(log, c).map(|t| (i, t)))
        .collect();
    let mut edges = vec![None; centres.len()];
    for (k, &(i, c)) in valid.iter().enumerate() {
        let prev = k.checked_sub(1).map(|j| valid[j].1);
        let next = valid.get(k + 1).map(|v| v.1);
        let half = |d: f64| d / 2.0;
        let (lo, hi) = match (prev, next) {
            (Some(p), Some(n)) => (c - half(c - p), c + half(n - c)),
            (Some(p), None) => (c - half(c - p), c + half(c - p)),
            (None, Some(n)) => (c - half(n - c), c + half(n - c)),
            (None, None) => {
                let d = if log { 0.5 } else { 0.5 * c.abs().max(1.0) };
                (c - d, c + d)
            }
        };
        edges[i] = Some((lo.min(hi), lo.max(hi)));
    }
    edges
}

/// Draws `hm` filling `area`: title, cells coloured by [`viridis`], a colour
/// bar for `[0, 1]` on the right and dashed isolines with a legend.
pub fn draw_heatmap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    hm: &Heatmap,
) -> Result<(), PlotError> {
    let area = if hm.title.is_empty() {
        area.clone()
    } else {
        area.titled(&txt::<DB>(&hm.title), font(TITLE_SIZE))
            .map_err(PlotError::draw)?
    };
    let (w, _) = area.dim_in_pixel();
    let bar_w = 86.min(w / 3);
    let (main, bar) = area.split_horizontally(w - bar_w);

    let x_edges = cell_edges(&hm.xs, hm.x_log);
    let y_edges = cell_edges(&hm.ys, hm.y_log);
    let span = |edges: &[Option<(f64, f64)>], log: bool| match min_max(
        edges.iter().flatten().flat_map(|&(a, b)| [a, b]),
    ) {
        Some((lo, hi)) => Scale::new(log, lo, hi),
        None => Scale::new(log, 0.0, 1.0),
    };
    let x = span(&x_edges, hm.x_log);
    let y = span(&y_edges, hm.y_log);
    let frame = Frame {
        title: "",
        x_label: &hm.x_label,
        y_label: &hm.y_label,
        x: &x,
        y: &y,
        grid: false,
    };
    let mut chart = build_chart(&main, &frame)?;
    let mut cells = Vec::new();
    for (iy, row) in hm.values.iter().enumerate() {
        let Some(Some((y0, y1))) = y_edges.get(iy) else {
            continue;
        };
        for (ix, v) in row.iter().enumerate() {
            if let (Some(Some((x0, x1))), true) = (x_edges.get(ix), v.is_finite()) {
                cells.push(Rectangle::new(
                    [(*x0, *y0), (*x1, *y1)],
                    viridis(*v).filled(),
                ));
            }
        }
    }
    chart.draw_series(cells).map_err(PlotError::draw)?;
    let pts: Vec<_> = hm
        .isolines
        .iter()
        .map(|(_, p)| to_axis_space(p, &x, &y))
        .collect();
    for (i, ((label, _), p)) in hm.isolines.iter().zip(&pts).enumerate() {
        let style = LineStyle {
            color: ISOLINE_COLORS[i % ISOLINE_COLORS.len()],
            width: 2,
            dashed: true,
        };
        draw_line(&mut chart, p, label, style)?;
    }
    let entries = hm.isolines.iter().filter(|(l, _)| !l.is_empty()).count();
    if entries > 0 {
        draw_legend(&mut chart, legend_corner(&pts, &x, &y, entries), true)?;
    }
    colour_bar(&bar, 22 + if hm.x_label.is_empty() { 0 } else { 20 })
}

/// Draws a vertical viridis colour bar for `[0, 1]`, leaving `bottom` pixels
/// free so that it lines up with a chart's plotting area.
fn colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    bottom: u32,
) -> Result<(), PlotError> {
    let (w, _) = area.dim_in_pixel();
    let bar = area.margin(12, bottom + 6, 8, 0);
    let mut chart = ChartBuilder::on(&bar)
        .y_label_area_size(0)
        .right_y_label_area_size(w.saturating_sub(40).max(20))
        .build_cartesian_2d(
            Scale::new(false, 0.0, 1.0),
            Scale {
                ticks: vec![0.0, 0.25, 0.5, 0.75, 1.0],
                fmt: TickFmt::Fixed(2),
                ..Scale::new(false, 0.0, 1.0)
            },
        )
        .map_err(PlotError::draw)?;
    let n = 128;
    chart
        .draw_series((0..n).map(|i| {
            let (a, b) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
            Rectangle::new([(0.0, a), (1.0, b)], viridis((a + b) / 2.0).filled())
        }))
        .map_err(PlotError::draw)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .label_style(font(TICK_SIZE))
        .draw()
        .map_err(PlotError::draw)?;
    chart
        .plotting_area()
        .draw(&Rectangle::new(
            [(0.0, 0.0), (1.0, 1.0)],
            RGBColor(80, 80, 80).stroke_width(1),
        ))
        .map_err(PlotError::draw)
}

/// [`Figure`] adapter for [`Heatmap`].
struct HeatmapFig<'a>(&'a Heatmap);

impl Figure for HeatmapFig<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        draw_heatmap(area, self.0)
    }
}

/// Writes [`draw_heatmap`] of `heatmap` (680×520 px) to `out_dir/<stem>.{png,svg}`.
pub fn heatmap(heatmap: &Heatmap, out_dir: &Path, stem: &str) -> Result<(), PlotError> {
    render_both(out_dir, stem, 680, 520, &HeatmapFig(heatmap))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::test_util::{check_outputs, temp_dir};

    fn synthetic_heatmap() -> Heatmap {
        let xs: Vec<f64> = (0..30)
            .map(|i| 10f64.powf(-3.0 + 3.0 * i as f64 / 29.0))
            .collect();
        let ys: Vec<f64> = (0..20).map(|i| 0.5 + 4.5 * i as f64 / 19.0).collect();
        let values = ys
            .iter()
            .map(|&y| {
                xs.iter()
                    .map(|&x| 1.0 / (1.0 + (-(x.log10() + 1.5) * 2.0 + (y - 2.5)).exp()))
                    .collect()
            })
            .collect();
        let iso = |level: f64| -> Vec<(f64, f64)> {
            let l = (1.0 / level - 1.0).ln();
            ys.iter()
                .map(|&y| (10f64.powf((y - 2.5 - l) / 2.0 - 1.5), y))
                .collect()
        };
        let isolines = vec![("p = 0.5".into(), iso(0.5)), ("p = 0.9".into(), iso(0.9))];
        Heatmap {
            title: "success probability".into(),
            x_label: "learning rate".into(),
            y_label: "dimension ratio".into(),
            x_log: true,
            y_log: false,
            xs,
            ys,
            values,
            isolines,
        }
    }

    #[test]
    fn heatmap_writes_png_and_svg() {
        let dir = temp_dir("heatmap");
        heatmap(&synthetic_heatmap(), &dir, "hm").expect("heatmap");
        check_outputs(&dir, "hm");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_data_draws_empty_axes() {
        let dir = temp_dir("hm_baddata");
        let nan = f64::NAN;
        let hm = Heatmap {
            xs: vec![nan, 0.0, -1.0],
            ys: vec![1.0],
            values: vec![vec![nan, 0.5], vec![2.0]],
            isolines: vec![("none".into(), vec![(nan, nan)])],
            x_log: true,
            ..Default::default()
        };
        heatmap(&hm, &dir, "hm_bad").expect("bad heatmap still renders");
        check_outputs(&dir, "hm_bad");
        heatmap(&Heatmap::default(), &dir, "hm_empty").expect("empty heatmap");
        check_outputs(&dir, "hm_empty");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_directory_is_an_error() {
        let base = temp_dir("hm_missing");
        let dir = base.join("does").join("not").join("exist");
        let err = heatmap(&synthetic_heatmap(), &dir, "hm").expect_err("must fail");
        assert!(err.file().is_some());
        assert!(err.to_string().contains("hm."), "{err}");
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn unwritable_target_is_an_error() {
        // A directory where the output file should be cannot be overwritten.
        let dir = temp_dir("hm_unwritable");
        std::fs::create_dir_all(dir.join("x.svg")).expect("blocker dir");
        let err = heatmap(&synthetic_heatmap(), &dir, "x").expect_err("must fail");
        assert_eq!(err.file(), Some(dir.join("x.svg").as_path()));
        std::fs::create_dir_all(dir.join("y.png")).expect("blocker dir");
        let err = heatmap(&synthetic_heatmap(), &dir, "y").expect_err("must fail");
        assert_eq!(err.file(), Some(dir.join("y.png").as_path()));
        assert!(err.to_string().contains("y.png"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
