//! Colours: the series cycle (matplotlib "tab10"), the viridis colour map of heat maps, and
//! the fixed colours of marginal curves, grid lines and isolines.

use plotters::style::RGBColor;

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

pub(super) const TARGET_COLOR: RGBColor = RGBColor(0, 0, 0);
pub(super) const TEMPERED_COLOR: RGBColor = RGBColor(230, 110, 0);
pub(super) const STUDENT_COLOR: RGBColor = RGBColor(31, 119, 180);
pub(super) const GRID_COLOR: RGBColor = RGBColor(228, 228, 228);
pub(super) const ISOLINE_COLORS: [RGBColor; 4] = [
    RGBColor(255, 255, 255),
    RGBColor(228, 26, 28),
    RGBColor(255, 160, 0),
    RGBColor(0, 0, 0),
];
