//! Plotting layer: small, reusable chart builders rendered with `plotters`.
//!
//! Every figure is drawn by code that is generic over the plotters
//! [`DrawingBackend`], and [`render_both`] renders it twice: once to a PNG
//! bitmap (`DIR/<stem>.png`) and once to an SVG document (`DIR/<stem>.svg`).
//!
//! Text in the bitmap backend is rasterised with an embedded copy of
//! DejaVu Sans (see `assets/DejaVuSans-LICENSE.txt`), registered once under
//! the family name `"sans-serif"`, so nothing depends on system fonts.
//!
//! Data handling is forgiving: non-finite points (and non-positive points on
//! logarithmic axes) are skipped, lines are broken at such gaps, empty series
//! are allowed, degenerate ranges are padded and all-invalid data produce
//! empty axes rather than an error.
//!
//! Building blocks:
//! * [`line_chart`]: line series against a common x axis ([`SeriesPanel`]).
//! * [`marginal_chart`]: target / tempered target / student densities ([`MarginalPanel`]).
//! * [`draw_heatmap`] / [`heatmap`]: a `[0, 1]` heat map with colour bar and dashed isolines.
//! * [`draw_errorbar_chart`] / [`errorbar_chart`]: points with vertical error bars.
//! * [`figure1`]: the grid of marginal panels plus a variance panel per row.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::chart::{ChartContext, SeriesLabelPosition};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// Embedded font used for all text (DejaVu Sans, Bitstream Vera license).
static FONT_BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Font family name under which the embedded font is registered.
const FONT: &str = "sans-serif";
/// Font size of chart titles.
const TITLE_SIZE: u32 = 16;
/// Font size of axis descriptions.
const DESC_SIZE: u32 = 14;
/// Font size of tick labels.
const TICK_SIZE: u32 = 12;
/// Font size of legend entries.
const LEGEND_SIZE: u32 = 13;
/// Largest accepted figure side, in pixels.
const MAX_SIDE: u32 = 20_000;

/// Width of one panel of [`figure1`], in pixels.
pub const PANEL_WIDTH: u32 = 360;
/// Height of one panel of [`figure1`], in pixels.
pub const PANEL_HEIGHT: u32 = 260;

/// Error produced while drawing or writing a figure.
///
/// When the failure concerns an output file, [`PlotError::file`] names it and
/// the `Display` output starts with `could not write figure <path>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlotError {
    file: Option<PathBuf>,
    message: String,
}

impl PlotError {
    /// An error that is not (yet) tied to a particular output file.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            file: None,
            message: message.into(),
        }
    }

    /// An error concerning the output file `file`.
    pub fn for_file(file: &Path, message: impl fmt::Display) -> Self {
        Self {
            file: Some(file.to_path_buf()),
            message: message.to_string(),
        }
    }

    /// The output file the error concerns, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The underlying cause, without the file name.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Wraps a plotters drawing error.
    fn draw<E: fmt::Display>(err: E) -> Self {
        Self::new(format!("drawing failed: {err}"))
    }

    /// Attaches `file` unless a file is already recorded.
    fn in_file(mut self, file: &Path) -> Self {
        if self.file.is_none() {
            self.file = Some(file.to_path_buf());
        }
        self
    }
}

impl fmt::Display for PlotError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(file) => write!(
                f,
                "could not write figure {}: {}",
                file.display(),
                self.message
            ),
            None => write!(f, "plot error: {}", self.message),
        }
    }
}

impl std::error::Error for PlotError {}

/// Registers the embedded DejaVu Sans font as `"sans-serif"` (once per process).
///
/// [`render_both`] calls this itself; call it directly only when drawing on a
/// backend you created yourself.
pub fn ensure_font() -> Result<(), PlotError> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    REGISTERED
        .get_or_init(|| {
            plotters::style::register_font(FONT, FontStyle::Normal, FONT_BYTES)
                .map_err(|_| "embedded font could not be parsed".to_string())
        })
        .clone()
        .map_err(PlotError::new)
}

/// A figure whose drawing code is written once, generically over the backend.
///
/// Implement this for a type holding the figure's data and pass it to
/// [`render_both`], which calls [`Figure::draw`] once for the PNG and once for
/// the SVG output.
pub trait Figure {
    /// Draws the whole figure onto `area` (already filled with white).
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), PlotError>;
}

/// Renders `figure` at `width`×`height` pixels to `out_dir/<stem>.svg` and
/// `out_dir/<stem>.png`.
///
/// The directory must already exist; it is not created. The SVG is drawn
/// first (in memory), so a drawing failure leaves no files behind. Errors
/// name the file that could not be written.
pub fn render_both<F: Figure>(
    out_dir: &Path,
    stem: &str,
    width: u32,
    height: u32,
    figure: &F,
) -> Result<(), PlotError> {
    let svg_path = out_dir.join(format!("{stem}.svg"));
    let png_path = out_dir.join(format!("{stem}.png"));
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(PlotError::for_file(
            &png_path,
            format!("invalid figure size {width}x{height}"),
        ));
    }
    if !out_dir.is_dir() {
        return Err(PlotError::for_file(
            &svg_path,
            format!("output directory {} does not exist", out_dir.display()),
        ));
    }
    ensure_font().map_err(|e| e.in_file(&svg_path))?;

    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area();
        draw_root(&root, figure).map_err(|e| e.in_file(&svg_path))?;
    }
    std::fs::write(&svg_path, svg).map_err(|e| PlotError::for_file(&svg_path, e))?;

    let root = BitMapBackend::new(&png_path, (width, height)).into_drawing_area();
    draw_root(&root, figure).map_err(|e| e.in_file(&png_path))
}

/// Fills `root` with white, draws `figure` and flushes the backend.
fn draw_root<DB: DrawingBackend, F: Figure>(
    root: &DrawingArea<DB, Shift>,
    figure: &F,
) -> Result<(), PlotError> {
    root.fill(&WHITE).map_err(PlotError::draw)?;
    figure.draw(root)?;
    root.present()
        .map_err(|e| PlotError::new(format!("could not save: {e}")))
}

// ---------------------------------------------------------------------------
// Data types
// ---------------------------------------------------------------------------

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

/// One row of [`figure1`]: marginal panels followed by a variance panel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fig1Row {
    /// Row label, drawn rotated at the left edge of the row.
    pub label: String,
    /// Marginal panels, one per column (4 in practice).
    pub marginals: Vec<MarginalPanel>,
    /// Panel drawn in the last column.
    pub variances: SeriesPanel,
}

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
}

// ---------------------------------------------------------------------------
// Colours
// ---------------------------------------------------------------------------

/// Colour of series number `i` (the matplotlib "tab10" cycle).
pub fn series_color(i: usize) -> RGBColor {
    const TAB10: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = TAB10[i % TAB10.len()];
    RGBColor(r, g, b)
}

/// Viridis colour for `t` in `[0, 1]` (clamped; NaN maps to the low end).
pub fn viridis(t: f64) -> RGBColor {
    const STOPS: [(f64, f64, f64); 9] = [
        (68.0, 1.0, 84.0),
        (72.0, 40.0, 120.0),
        (62.0, 73.0, 137.0),
        (49.0, 104.0, 142.0),
        (38.0, 130.0, 142.0),
        (31.0, 158.0, 137.0),
        (53.0, 183.0, 121.0),
        (110.0, 206.0, 88.0),
        (253.0, 231.0, 37.0),
    ];
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let pos = t * (STOPS.len() - 1) as f64;
    let i = (pos.floor() as usize).min(STOPS.len() - 2);
    let f = pos - i as f64;
    let (a, b) = (STOPS[i], STOPS[i + 1]);
    let mix = |u: f64, v: f64| (u + (v - u) * f).round().clamp(0.0, 255.0) as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

const TEMPERED_LABEL: &str = "tempered π_β";
const TARGET_COLOR: RGBColor = RGBColor(0, 0, 0);
const TEMPERED_COLOR: RGBColor = RGBColor(230, 110, 0);
const STUDENT_COLOR: RGBColor = RGBColor(31, 119, 180);
const GRID_COLOR: RGBColor = RGBColor(228, 228, 228);
const ISOLINE_COLORS: [RGBColor; 4] = [
    RGBColor(255, 255, 255),
    RGBColor(228, 26, 28),
    RGBColor(255, 160, 0),
    RGBColor(0, 0, 0),
];

// ---------------------------------------------------------------------------
// Axes: ranges, ticks and labels (in transformed space: log10 for log axes)
// ---------------------------------------------------------------------------

/// How tick labels of an axis are formatted.
#[derive(Debug, Clone, Copy, PartialEq)]
enum TickFmt {
    /// Fixed-point with this many decimals.
    Fixed(usize),
    /// Scientific notation.
    Sci,
    /// Logarithmic axis (values are exponents).
    Log,
}

/// One axis: its range in transformed coordinates plus ticks.
#[derive(Debug, Clone, PartialEq)]
struct Scale {
    log: bool,
    lo: f64,
    hi: f64,
    ticks: Vec<f64>,
    fmt: TickFmt,
}

/// Maps a data value into axis space (log10 for log axes); `None` if unplottable.
fn transform(log: bool, v: f64) -> Option<f64> {
    if log {
        (v.is_finite() && v > 0.0).then(|| v.log10())
    } else {
        v.is_finite().then_some(v)
    }
}

impl Scale {
    /// Axis exactly spanning `[lo, hi]` (transformed space), widened if degenerate.
    fn new(log: bool, lo: f64, hi: f64) -> Self {
        let (mut lo, mut hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
        if !lo.is_finite() || !hi.is_finite() {
            (lo, hi) = (0.0, 1.0);
        }
        let scale = lo.abs().max(hi.abs());
        if hi - lo <= 1e-12 * scale || hi - lo <= f64::MIN_POSITIVE {
            let d = if log {
                0.5
            } else if scale > 0.0 {
                0.1 * scale
            } else {
                1.0
            };
            (lo, hi) = (lo - d, hi + d);
        }
        if !(hi - lo).is_finite() {
            (lo, hi) = (-f64::MAX / 4.0, f64::MAX / 4.0);
        }
        let (ticks, fmt) = if log {
            (log_ticks(lo, hi), TickFmt::Log)
        } else {
            let (ticks, step) = linear_ticks(lo, hi, 5);
            (ticks.clone(), linear_fmt(&ticks, step))
        };
        Self {
            log,
            lo,
            hi,
            ticks,
            fmt,
        }
    }

    /// Axis fitted to the plottable `values`, padded by `pad` of the span on each side.
    fn fit(log: bool, values: impl IntoIterator<Item = f64>, pad: f64) -> Self {
        match min_max(values.into_iter().filter_map(|v| transform(log, v))) {
            Some((lo, hi)) => {
                let p = (hi - lo) * pad;
                Self::new(log, lo - p, hi + p)
            }
            None => Self::new(log, 0.0, 1.0),
        }
    }

    /// Maps a data value into this axis' coordinates.
    fn tf(&self, v: f64) -> Option<f64> {
        transform(self.log, v)
    }

    /// Tick label for the tick at transformed position `t`.
    fn label(&self, t: f64) -> String {
        match self.fmt {
            TickFmt::Fixed(d) => format!("{:.*}", d, if t == 0.0 { 0.0 } else { t }),
            TickFmt::Sci => fmt_sci(t),
            TickFmt::Log => {
                let e = t.round();
                if (t - e).abs() < 1e-9 && !(-3.0..=4.0).contains(&e) {
                    format!("10{}", superscript(e as i64))
                } else {
                    fmt_sig(10f64.powf(t))
                }
            }
        }
    }
}

impl Ranged for Scale {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let frac = (value - self.lo) / (self.hi - self.lo);
        let pixel = limit.0 as f64 + (limit.1 - limit.0) as f64 * frac;
        if pixel.is_nan() {
            limit.0
        } else {
            pixel.round().clamp(-1e7, 1e7) as i32
        }
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.lo..self.hi
    }
}

impl ValueFormatter<f64> for Scale {
    fn format(value: &f64) -> String {
        format!("{value}")
    }

    fn format_ext(&self, value: &f64) -> String {
        self.label(*value)
    }
}

/// Minimum and maximum of an iterator of finite values.
fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// A "nice" step (1, 2, 2.5 or 5 times a power of ten) close to `raw`.
fn nice_step(raw: f64) -> f64 {
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 2.5 {
        2.5
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// About `target` evenly spaced nice ticks inside `[lo, hi]`, and their step.
fn linear_ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    let step = nice_step((hi - lo) / target.max(1) as f64);
    if !step.is_finite() || step <= 0.0 {
        return (vec![lo, hi], hi - lo);
    }
    let first = (lo / step - 1e-9).ceil();
    let ticks: Vec<f64> = (0..=4 * target as i64 + 4)
        .map(|k| (first + k as f64) * step)
        .take_while(|t| *t <= hi + step * 1e-9)
        .map(|t| if t.abs() < step * 1e-9 { 0.0 } else { t })
        .collect();
    (ticks, step)
}

/// Label format for linear ticks with spacing `step`.
fn linear_fmt(ticks: &[f64], step: f64) -> TickFmt {
    let max_abs = ticks.iter().fold(0.0f64, |m, t| m.max(t.abs()));
    if max_abs >= 1e5 || (max_abs > 0.0 && max_abs < 1e-3) {
        return TickFmt::Sci;
    }
    let decimals = (0..=8)
        .find(|&d| {
            let scaled = step * 10f64.powi(d as i32);
            (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
        })
        .unwrap_or(8);
    TickFmt::Fixed(decimals)
}

/// Ticks (as exponents) for a log axis spanning exponents `[lo, hi]`.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let eps = 1e-9;
    let decades: Vec<f64> = ((lo - eps).ceil() as i64..=(hi + eps).floor() as i64)
        .map(|e| e as f64)
        .collect();
    if decades.len() >= 2 {
        let stride = decades.len().div_ceil(7) as i64;
        return decades
            .into_iter()
            .filter(|e| (*e as i64).rem_euclid(stride) == 0)
            .collect();
    }
    let mut ticks = Vec::new();
    for e in (lo.floor() as i64 - 1)..=(hi.ceil() as i64) {
        for m in [1.0f64, 2.0, 5.0] {
            let t = m.log10() + e as f64;
            if t >= lo - eps && t <= hi + eps {
                ticks.push(t);
            }
        }
    }
    if ticks.len() >= 2 {
        return ticks;
    }
    let (vals, _) = linear_ticks(10f64.powf(lo), 10f64.powf(hi), 4);
    vals.into_iter()
        .filter(|v| *v > 0.0)
        .map(f64::log10)
        .filter(|t| *t >= lo - eps && *t <= hi + eps)
        .collect()
}

/// Scientific notation with at most three significant digits, e.g. `2.5e-5`.
fn fmt_sci(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        return "0".to_string();
    }
    let rounded: f64 = format!("{v:.2e}").parse().unwrap_or(v);
    format!("{rounded:e}")
}

/// A positive value with about three significant digits, without trailing zeros.
fn fmt_sig(v: f64) -> String {
    if !(1e-3..1e5).contains(&v.abs()) {
        return fmt_sci(v);
    }
    let decimals = (2 - v.abs().log10().floor() as i64).clamp(0, 8) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// `e` written with Unicode superscript digits.
fn superscript(e: i64) -> String {
    e.to_string()
        .chars()
        .map(|c| match c {
            '-' => '⁻',
            '0' => '⁰',
            '1' => '¹',
            '2' => '²',
            '3' => '³',
            '4' => '⁴',
            '5' => '⁵',
            '6' => '⁶',
            '7' => '⁷',
            '8' => '⁸',
            _ => '⁹',
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Geometry helpers
// ---------------------------------------------------------------------------

/// Axis-space points of a series; `None` marks an unplottable point (a gap).
fn to_axis_space(points: &[(f64, f64)], x: &Scale, y: &Scale) -> Vec<Option<(f64, f64)>> {
    points
        .iter()
        .map(|&(px, py)| Some((x.tf(px)?, y.tf(py)?)))
        .collect()
}

/// Clips segment `a`–`b` to the box (Liang–Barsky); `None` if fully outside.
fn clip_segment(
    a: (f64, f64),
    b: (f64, f64),
    (x0, x1, y0, y1): (f64, f64, f64, f64),
) -> Option<((f64, f64), (f64, f64))> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (p, q) in [
        (-dx, a.0 - x0),
        (dx, x1 - a.0),
        (-dy, a.1 - y0),
        (dy, y1 - a.1),
    ] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    if t0 > t1 {
        return None;
    }
    let at = |t: f64| {
        if t == 0.0 {
            a
        } else if t == 1.0 {
            b
        } else {
            (a.0 + dx * t, a.1 + dy * t)
        }
    };
    Some((at(t0), at(t1)))
}

/// Splits a series into polylines at gaps and clips it to `x` × `y`.
fn polylines(
    points: &[Option<(f64, f64)>],
    x: std::ops::Range<f64>,
    y: std::ops::Range<f64>,
) -> Vec<Vec<(f64, f64)>> {
    let ex = (x.end - x.start).abs() * 1e-9;
    let ey = (y.end - y.start).abs() * 1e-9;
    let bbox = (x.start - ex, x.end + ex, y.start - ey, y.end + ey);
    let mut out = Vec::new();
    let mut cur: Vec<(f64, f64)> = Vec::new();
    for pair in points.windows(2) {
        let clipped = match (pair[0], pair[1]) {
            (Some(a), Some(b)) => clip_segment(a, b, bbox),
            _ => None,
        };
        match clipped {
            Some((p, q)) => {
                if cur.last() != Some(&p) {
                    if cur.len() > 1 {
                        out.push(std::mem::take(&mut cur));
                    }
                    cur.clear();
                    cur.push(p);
                }
                cur.push(q);
            }
            None => {
                if cur.len() > 1 {
                    out.push(std::mem::take(&mut cur));
                }
                cur.clear();
            }
        }
    }
    if cur.len() > 1 {
        out.push(cur);
    }
    out
}

/// The legend corner covering the fewest data points.
fn legend_corner(
    series: &[Vec<Option<(f64, f64)>>],
    x: &Scale,
    y: &Scale,
    entries: usize,
) -> SeriesLabelPosition {
    let w = 0.45;
    let h = (0.08 * entries as f64 + 0.08).min(0.9);
    let corners = [
        (SeriesLabelPosition::UpperRight, true, true),
        (SeriesLabelPosition::UpperLeft, false, true),
        (SeriesLabelPosition::LowerRight, true, false),
        (SeriesLabelPosition::LowerLeft, false, false),
    ];
    let mut best = (usize::MAX, SeriesLabelPosition::UpperRight);
    for (pos, right, upper) in corners {
        let count = series
            .iter()
            .flatten()
            .flatten()
            .filter(|(px, py)| {
                let u = (px - x.lo) / (x.hi - x.lo);
                let v = (py - y.lo) / (y.hi - y.lo);
                let in_x = if right { u >= 1.0 - w } else { u <= w };
                let in_y = if upper { v >= 1.0 - h } else { v <= h };
                in_x && in_y
            })
            .count();
        if count < best.0 {
            best = (count, pos);
        }
    }
    best.1
}

// ---------------------------------------------------------------------------
// Chart scaffolding
// ---------------------------------------------------------------------------

/// The coordinate system shared by all charts (axis space on both axes).
type Coords = Cartesian2d<Scale, Scale>;

/// What a chart frame shows: title, axis descriptions and scales.
struct Frame<'s> {
    title: &'s str,
    x_label: &'s str,
    y_label: &'s str,
    x: &'s Scale,
    y: &'s Scale,
    grid: bool,
}

/// Adapts `text` to the backend `DB`.
///
/// plotters' `ab_glyph` rasteriser ignores glyph bearings, so in bitmaps a
/// combining mark (as in `μ̂`) would be drawn *after* its base letter. For the
/// bitmap backend, runs of combining marks are therefore moved in front of
/// their base, which places them over it; vector output keeps proper Unicode.
fn txt<DB: DrawingBackend>(text: &str) -> String {
    let is_mark = |c: char| ('\u{300}'..='\u{36F}').contains(&c);
    if !std::any::type_name::<DB>().contains("BitMapBackend") || !text.chars().any(is_mark) {
        return text.to_string();
    }
    let mut out: Vec<char> = Vec::with_capacity(text.len());
    let mut base_at = None;
    for c in text.chars() {
        match (is_mark(c), base_at) {
            (true, Some(i)) => {
                out.insert(i, c);
                base_at = Some(i + 1);
            }
            (true, None) => out.push(c),
            (false, _) => {
                base_at = Some(out.len());
                out.push(c);
            }
        }
    }
    out.into_iter().collect()
}

/// Text style in the embedded font.
fn font(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font())
}

/// Builds a chart on `area` and draws its axes, ticks, labels and grid.
fn build_chart<'a, DB: DrawingBackend + 'a>(
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
struct LineStyle {
    color: RGBColor,
    width: u32,
    dashed: bool,
}

/// Draws one (possibly gappy) series, adding a legend entry for a non-empty label.
fn draw_line<'a, DB: DrawingBackend + 'a>(
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
fn draw_legend<'a, DB: DrawingBackend + 'a>(
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
        "target π",
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
        "student q",
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
            color: series_color(spec.series.len() + j),
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

// ---------------------------------------------------------------------------
// Whole figures
// ---------------------------------------------------------------------------

/// Width of the strip holding the rotated row labels of [`figure1`].
const ROW_LABEL_WIDTH: u32 = 30;
/// Height of the shared legend strip at the top of [`figure1`].
const LEGEND_STRIP_HEIGHT: u32 = 28;

/// [`Figure`] adapter for [`figure1`].
struct Fig1<'a> {
    rows: &'a [Fig1Row],
    cols: usize,
    label_strip: bool,
}

impl Figure for Fig1<'_> {
    fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<(), PlotError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let (legend, area) = area.split_vertically(LEGEND_STRIP_HEIGHT);
        let line = |label: &str, color, dashed| LegendEntry {
            label: label.to_string(),
            color,
            dashed,
        };
        let mut entries = vec![line("target π", TARGET_COLOR, false)];
        if self
            .rows
            .iter()
            .flat_map(|r| &r.marginals)
            .any(|m| m.target_tempered.is_some())
        {
            entries.push(line(TEMPERED_LABEL, TEMPERED_COLOR, true));
        }
        entries.push(line("student q", STUDENT_COLOR, false));
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
                let (w, h) = cell.dim_in_pixel();
                let label = txt::<DB>(&row.label);
                // Shrink long labels to fit the row height (down to 9 px).
                let size = DESC_SIZE + 2;
                let (len, _) = cell
                    .estimate_text_size(&label, &font(size))
                    .map_err(PlotError::draw)?;
                let room = h.saturating_sub(10).max(1);
                let size = if len > room {
                    (size * room / len).max(9)
                } else {
                    size
                };
                let style = font(size)
                    .transform(FontTransform::Rotate270)
                    .pos(Pos::new(HPos::Center, VPos::Center));
                cell.draw_text(&label, &style, (w as i32 / 2, h as i32 / 2))
                    .map_err(PlotError::draw)?;
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
/// Each panel is [`PANEL_WIDTH`]×[`PANEL_HEIGHT`] pixels. The legend of the
/// marginal panels (target π, tempered π_β dashed, student q) is a shared
/// strip along the top, centred over the marginal columns, so it never hides
/// curves; variance panels carry their own legends. Writes
/// `out_dir/<stem>.{png,svg}`.
pub fn figure1(rows: &[Fig1Row], out_dir: &Path, stem: &str) -> Result<(), PlotError> {
    let cols = rows.iter().map(|r| r.marginals.len()).max().unwrap_or(0) + 1;
    let label_strip = rows.iter().any(|r| !r.label.is_empty());
    let fig = Fig1 {
        rows,
        cols,
        label_strip,
    };
    let width = cols as u32 * PANEL_WIDTH + if label_strip { ROW_LABEL_WIDTH } else { 0 };
    let height = rows.len().max(1) as u32 * PANEL_HEIGHT + LEGEND_STRIP_HEIGHT;
    render_both(out_dir, stem, width, height, &fig)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    /// A fresh, unique directory under the system temp dir.
    fn temp_dir(name: &str) -> PathBuf {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "annealvi_plot_{name}_{}_{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        dir
    }

    /// Asserts that both outputs exist and look like a PNG and an SVG.
    fn check_outputs(dir: &Path, stem: &str) {
        let png = std::fs::read(dir.join(format!("{stem}.png"))).expect("png written");
        assert!(png.len() > 100, "png too small");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).expect("svg written");
        assert!(!svg.is_empty());
        assert!(svg.contains("<svg"));
    }

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
            let steps: Vec<f64> = (0..=50).map(|i| i as f64 * 200.0).collect();
            let variances = SeriesPanel {
                title: "student variance".into(),
                x_label: "step".into(),
                y_label: "variance".into(),
                log_y: true,
                styles: Vec::new(),
                series: vec![
                    (
                        "along μ̂".into(),
                        steps
                            .iter()
                            .map(|&t| (t, 4.0 * (-t / 3000.0).exp() + 0.2))
                            .collect(),
                    ),
                    (
                        "orthogonal".into(),
                        steps
                            .iter()
                            .map(|&t| (t, 1.0 / (1.0 + t / 500.0)))
                            .collect(),
                    ),
                ],
            };
            Fig1Row {
                label: label.to_string(),
                marginals,
                variances,
            }
        })
        .collect()
    }

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
    fn figure1_writes_png_and_svg() {
        let dir = temp_dir("fig1");
        figure1(&synthetic_rows(), &dir, "figure1").expect("figure1");
        check_outputs(&dir, "figure1");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn heatmap_writes_png_and_svg() {
        let dir = temp_dir("heatmap");
        heatmap(&synthetic_heatmap(), &dir, "hm").expect("heatmap");
        check_outputs(&dir, "hm");
        let _ = std::fs::remove_dir_all(&dir);
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
        };
        errorbar_panels(&[chart.clone(), chart], &dir, "panels").expect("panels");
        check_outputs(&dir, "panels");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn line_figure_writes_png_and_svg() {
        let dir = temp_dir("line");
        let rows = synthetic_rows();
        line_figure(&rows[0].variances, &dir, "line").expect("line figure");
        check_outputs(&dir, "line");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bad_data_draws_empty_axes() {
        let dir = temp_dir("baddata");
        render_bad_data(&dir);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Renders NaN / empty / degenerate inputs into `dir` and checks the outputs.
    fn render_bad_data(dir: &Path) {
        let dir = dir.to_path_buf();
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
        figure1(&rows, &dir, "bad").expect("bad data still renders");
        check_outputs(&dir, "bad");
        figure1(&[], &dir, "empty").expect("no rows still renders");
        check_outputs(&dir, "empty");

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
    }

    #[test]
    fn missing_directory_is_an_error() {
        let base = temp_dir("missing");
        let dir = base.join("does").join("not").join("exist");
        let err = figure1(&synthetic_rows(), &dir, "figure1").expect_err("must fail");
        assert!(err.file().is_some());
        assert!(err.to_string().contains("figure1"), "{err}");
        let err = heatmap(&synthetic_heatmap(), &dir, "hm").expect_err("must fail");
        assert!(err.to_string().contains("hm."), "{err}");
        let (series, extra) = synthetic_errorbars();
        let err = errorbar_chart("t", "x", "y", false, &series, &extra, &dir, "eb")
            .expect_err("must fail");
        assert!(err.to_string().contains("eb."), "{err}");
        let _ = std::fs::remove_dir_all(&base);
    }

    #[test]
    fn unwritable_target_is_an_error() {
        // A directory where the output file should be cannot be overwritten.
        let dir = temp_dir("unwritable");
        std::fs::create_dir_all(dir.join("x.svg")).expect("blocker dir");
        let err = figure1(&synthetic_rows(), &dir, "x").expect_err("must fail");
        assert_eq!(err.file(), Some(dir.join("x.svg").as_path()));
        std::fs::create_dir_all(dir.join("y.png")).expect("blocker dir");
        let err = heatmap(&synthetic_heatmap(), &dir, "y").expect_err("must fail");
        assert_eq!(err.file(), Some(dir.join("y.png").as_path()));
        assert!(err.to_string().contains("y.png"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn ticks_and_labels() {
        let s = Scale::new(false, 0.0, 1.0);
        assert_eq!(s.ticks, vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0]);
        assert_eq!(s.label(s.ticks[3]), "0.6");
        let s = Scale::new(false, -3.0, 3.0);
        assert!(s.ticks.iter().all(|t| (-3.0..=3.0).contains(t)));
        assert_eq!(s.label(0.0), "0");
        let s = Scale::new(false, 0.0, 2e-5);
        assert_eq!(s.fmt, TickFmt::Sci);
        assert_eq!(s.label(1e-5), "1e-5");
        let s = Scale::new(true, -6.0, 0.0);
        assert_eq!(s.label(-6.0), "10⁻⁶");
        assert_eq!(s.label(-2.0), "0.01");
        assert_eq!(s.label(0.0), "1");
        let s = Scale::new(true, 0.1, 0.6);
        assert!(s.ticks.len() >= 2, "{:?}", s.ticks);
        assert_eq!(s.label(2f64.log10()), "2");
        // degenerate ranges are padded
        let s = Scale::fit(false, [3.0, 3.0], 0.05);
        assert!(s.lo < 3.0 && s.hi > 3.0);
        let s = Scale::fit(true, [f64::NAN, -1.0], 0.05);
        assert!(s.lo < s.hi);
    }

    #[test]
    fn clipping_breaks_lines_at_gaps_and_edges() {
        let pts = vec![
            Some((0.1, 0.1)),
            Some((0.2, 0.2)),
            None,
            Some((0.5, 0.5)),
            Some((1.5, 0.5)),
            Some((0.5, 0.6)),
        ];
        let lines = polylines(&pts, 0.0..1.0, 0.0..1.0);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], vec![(0.1, 0.1), (0.2, 0.2)]);
        assert_eq!(lines[1][0], (0.5, 0.5));
        assert!((lines[1][1].0 - 1.0).abs() < 1e-6);
    }
}
