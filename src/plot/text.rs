//! Text: the embedded font (DejaVu Sans, registered once as `"sans-serif"`), the text sizes
//! of all charts, the adaptation of combining marks to the bitmap backend, and a rotated label.

use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::PlotError;

/// Embedded font used for all text (DejaVu Sans, Bitstream Vera license).
static FONT_BYTES: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Font family name under which the embedded font is registered.
pub(super) const FONT: &str = "sans-serif";
/// Font size of chart titles.
pub(super) const TITLE_SIZE: u32 = 16;
/// Font size of axis descriptions.
pub(super) const DESC_SIZE: u32 = 14;
/// Font size of tick labels.
pub(super) const TICK_SIZE: u32 = 12;
/// Font size of legend entries.
pub(super) const LEGEND_SIZE: u32 = 13;

/// Registers the embedded DejaVu Sans font as `"sans-serif"` (once per process).
///
/// [`render_both`](super::render_both) calls this itself; call it directly only when drawing on a
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

/// Adapts `text` to the backend `DB`.
///
/// plotters' `ab_glyph` rasteriser ignores glyph bearings, so in bitmaps a
/// combining mark (as in `μ̂`) would be drawn *after* its base letter. For the
/// bitmap backend, runs of combining marks are therefore moved in front of
/// their base, which places them over it; vector output keeps proper Unicode.
pub(super) fn txt<DB: DrawingBackend>(text: &str) -> String {
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
pub(super) fn font(size: u32) -> TextStyle<'static> {
    TextStyle::from((FONT, size).into_font())
}

/// Draws `text` rotated by 270° in the centre of `area` (a row label at the left edge of a
/// grid of panels, say), in the axis-description size plus 2, shrunk to fit the height of
/// `area` (down to 9 px).
pub fn rotated_label<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    text: &str,
) -> Result<(), PlotError> {
    let (w, h) = area.dim_in_pixel();
    let label = txt::<DB>(text);
    // Shrink long labels to fit the row height (down to 9 px).
    let size = DESC_SIZE + 2;
    let (len, _) = area
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
    area.draw_text(&label, &style, (w as i32 / 2, h as i32 / 2))
        .map_err(PlotError::draw)
}
