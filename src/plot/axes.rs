//! Axes of every chart: ranges, ticks and tick labels in axis space (log10 for logarithmic
//! axes), the mapping of data into that space, clipping of polylines to the plotting box and
//! the choice of the legend corner.

use plotters::chart::SeriesLabelPosition;
use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};

/// How tick labels of an axis are formatted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum TickFmt {
    /// Fixed-point with this many decimals.
    Fixed(usize),
    /// Scientific notation.
    Sci,
    /// Logarithmic axis (values are exponents).
    Log,
}

/// One axis: its range in transformed coordinates plus ticks.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Scale {
    pub(super) log: bool,
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) ticks: Vec<f64>,
    pub(super) fmt: TickFmt,
}

/// Maps a data value into axis space (log10 for log axes); `None` if unplottable.
pub(super) fn transform(log: bool, v: f64) -> Option<f64> {
    if log {
        (v.is_finite() && v > 0.0).then(|| v.log10())
    } else {
        v.is_finite().then_some(v)
    }
}

impl Scale {
    /// Axis exactly spanning `[lo, hi]` (transformed space), widened if degenerate.
    pub(super) fn new(log: bool, lo: f64, hi: f64) -> Self {
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
    pub(super) fn fit(log: bool, values: impl IntoIterator<Item = f64>, pad: f64) -> Self {
        match min_max(values.into_iter().filter_map(|v| transform(log, v))) {
            Some((lo, hi)) => {
                let p = (hi - lo) * pad;
                Self::new(log, lo - p, hi + p)
            }
            None => Self::new(log, 0.0, 1.0),
        }
    }

    /// Maps a data value into this axis' coordinates.
    pub(super) fn tf(&self, v: f64) -> Option<f64> {
        transform(self.log, v)
    }

    /// Tick label for the tick at transformed position `t`.
    pub(super) fn label(&self, t: f64) -> String {
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
pub(super) fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
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
pub(super) fn to_axis_space(
    points: &[(f64, f64)],
    x: &Scale,
    y: &Scale,
) -> Vec<Option<(f64, f64)>> {
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
pub(super) fn polylines(
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
pub(super) fn legend_corner(
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

#[cfg(test)]
mod tests {
    use super::*;

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
