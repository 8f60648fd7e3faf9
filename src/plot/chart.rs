//! Chart scaffolding shared by every chart kind: the frame (title, axes, ticks, grid), line
//! series and their legend entries, the legend box, and a free-standing legend row.

use plotters::chart::{ChartContext, SeriesLabelPosition};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::PlotError;
use super::axes::{Scale, polylines};
use super::colour::GRID_COLOR;
use super::text::{DESC_SIZE, LEGEND_SIZE, TICK_SIZE, TITLE_SIZE, font, txt};

/// The coordinate system shared by all charts (axis space on both axes).
pub(super) type Coords = Cartesian2d<Scale, Scale>;

/// What a chart frame shows: title, axis descriptions and scales.
pub(super) struct Frame<'s> {
    pub(super) title: &'s str,
    pub(super) x_label: &'s str,
    pub(super) y_label: &'s str,
    pub(super) x: &'s Scale,
    pub(super) y: &'s Scale,
    pub(super) grid: bool,
}

/// Builds a chart on `area` and draws its axes, ticks, labels and grid.
pub(super) fn build_chart<'a, DB: DrawingBackend + 'a>(
    area: &'a DrawingArea<DB, Shift>,
    frame: &Frame<'_>,
) -> Result<ChartContext<'a, DB, Coords>, PlotError> {
    let tick_font = font(TICK_SIZE);
    let widest = frame
        .y
        .ticks
        .iter()
        .map(|t| area.estimate_text_size(&frame.y.label(*t), &tick_font))
        .try_fold(0u32, |m, r| r.map(|(w, _)| m.max(w)))
        .map_err(PlotError::draw)?;
    let y_area = widest + 14 + if frame.y_label.is_empty() { 0 } else { 22 };
    let x_area = 22 + if frame.x_label.is_empty() { 0 } else { 20 };

    let mut builder = ChartBuilder::on(area);
    builder
        .margin(6)
        .margin_right(18)
        .x_label_area_size(x_area)
        .y_label_area_size(y_area);
    if frame.title.is_empty() {
        builder.margin_top(12);
    } else {
        builder.caption(txt::<DB>(frame.title), font(TITLE_SIZE));
    }
    let mut chart = builder
        .build_cartesian_2d(frame.x.clone(), frame.y.clone())
        .map_err(PlotError::draw)?;

    let mut mesh = chart.configure_mesh();
    mesh.x_desc(txt::<DB>(frame.x_label))
        .y_desc(txt::<DB>(frame.y_label))
        .label_style(tick_font.clone())
        .axis_desc_style(font(DESC_SIZE))
        .bold_line_style(GRID_COLOR)
        .light_line_style(TRANSPARENT);
    if !frame.grid {
        mesh.disable_mesh();
    }
    mesh.draw().map_err(PlotError::draw)?;
    Ok(chart)
}

/// How a line series is stroked.
#[derive(Clone, Copy)]
pub(super) struct LineStyle {
    pub(super) color: RGBColor,
    pub(super) width: u32,
    pub(super) dashed: bool,
}

/// Draws one (possibly gappy) series, adding a legend entry for a non-empty label.
pub(super) fn draw_line<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Coords>,
    points: &[Option<(f64, f64)>],
    label: &str,
    style: LineStyle,
) -> Result<(), PlotError> {
    let spec = chart.as_coord_spec();
    let lines = polylines(points, spec.get_x_range(), spec.get_y_range());
    let shape = style.color.stroke_width(style.width);
    let anno = if style.dashed {
        chart.draw_series(
            lines
                .into_iter()
                .map(|l| DashedPathElement::new(l, 7, 4, shape)),
        )
    } else {
        chart.draw_series(lines.into_iter().map(|l| PathElement::new(l, shape)))
    }
    .map_err(PlotError::draw)?;
    if !label.is_empty() {
        anno.label(txt::<DB>(label)).legend(move |(lx, ly)| {
            let seg = vec![(lx, ly), (lx + 22, ly)];
            if style.dashed {
                DashedPathElement::new(seg, 6, 3, shape).into_dyn()
            } else {
                PathElement::new(seg, shape).into_dyn()
            }
        });
    }
    Ok(())
}

/// Draws the legend of `chart` at `pos`.
pub(super) fn draw_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Coords>,
    pos: SeriesLabelPosition,
    dark: bool,
) -> Result<(), PlotError> {
    let (bg, border, text) = if dark {
        (RGBColor(40, 40, 40).mix(0.8), RGBColor(90, 90, 90), WHITE)
    } else {
        (WHITE.mix(0.85), RGBColor(170, 170, 170), BLACK)
    };
    chart
        .configure_series_labels()
        .position(pos)
        .margin(8)
        .legend_area_size(30)
        .background_style(bg)
        .border_style(border)
        .label_font(font(LEGEND_SIZE).color(&text))
        .draw()
        .map_err(PlotError::draw)
}

/// One entry of a [`legend_row`].
#[derive(Debug, Clone, PartialEq)]
pub struct LegendEntry {
    /// Entry text.
    pub label: String,
    /// Line colour.
    pub color: RGBColor,
    /// Whether the line is dashed.
    pub dashed: bool,
}

/// Draws `entries` as one horizontally centred legend line filling `area`
/// (a strip above a multi-panel figure, say).
pub fn legend_row<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> Result<(), PlotError> {
    const LINE: i32 = 26;
    const GAP: i32 = 6;
    const SPACING: i32 = 30;
    let style = font(LEGEND_SIZE).pos(Pos::new(HPos::Left, VPos::Center));
    let labels: Vec<String> = entries.iter().map(|e| txt::<DB>(&e.label)).collect();
    let widths = labels
        .iter()
        .map(|l| area.estimate_text_size(l, &style).map(|(w, _)| w as i32))
        .collect::<Result<Vec<i32>, _>>()
        .map_err(PlotError::draw)?;
    let total: i32 = widths.iter().map(|w| LINE + GAP + w).sum::<i32>()
        + SPACING * (entries.len() as i32 - 1).max(0);
    let (w, h) = area.dim_in_pixel();
    let yc = h as i32 / 2;
    let mut x = ((w as i32 - total) / 2).max(4);
    for ((entry, label), width) in entries.iter().zip(&labels).zip(&widths) {
        let seg = vec![(x, yc), (x + LINE, yc)];
        let shape = entry.color.stroke_width(2);
        if entry.dashed {
            area.draw(&DashedPathElement::new(seg, 6, 3, shape))
        } else {
            area.draw(&PathElement::new(seg, shape))
        }
        .map_err(PlotError::draw)?;
        area.draw_text(label, &style, (x + LINE + GAP, yc))
            .map_err(PlotError::draw)?;
        x += LINE + GAP + width + SPACING;
    }
    Ok(())
}
