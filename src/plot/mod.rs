//! Plotting layer: small, reusable chart builders rendered with `plotters`, knowing nothing of
//! the studies whose data they draw.
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
//! Building blocks, one file per kind:
//! * `line`: [`line_chart`], line series against a common x axis ([`SeriesPanel`]), and
//!   [`marginal_chart`], target / tempered target / student densities ([`MarginalPanel`]).
//! * `heatmap`: [`draw_heatmap`] / [`heatmap`], a `[0, 1]` heat map with colour bar and
//!   dashed isolines.
//! * `errorbar`: [`draw_errorbar_chart`] / [`errorbar_chart`] / [`errorbar_panels`] /
//!   [`errorbar_grid`], points with vertical error bars.
//! * `chart`: the frame every chart is built on, line series, legends and [`legend_row`].
//! * `axes`: ranges, ticks and labels; `colour`: [`series_color`] and [`viridis`]; `text`:
//!   the embedded font ([`ensure_font`]) and [`rotated_label`].
//!
//! Layouts that belong to one figure of the paper (Figure 1's grid, say) live with that
//! figure in `crate::figure`; this module depends on nothing of the crate but its error type.

use std::fmt;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

mod axes;
mod chart;
mod colour;
mod errorbar;
mod heatmap;
mod line;
mod text;

pub use chart::{LegendEntry, legend_row};
pub use colour::{series_color, viridis};
pub use errorbar::{
    ErrorBarChart, ErrorBarSeries, LabeledLine, draw_errorbar_chart, errorbar_chart, errorbar_grid,
    errorbar_panels,
};
pub use heatmap::{Heatmap, draw_heatmap, heatmap};
pub use line::{
    MarginalPanel, SeriesPanel, line_chart, line_figure, marginal_chart, marginal_legend,
    panels_figure,
};
pub use text::{ensure_font, rotated_label};

/// Largest accepted figure side, in pixels.
const MAX_SIDE: u32 = 20_000;

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

impl From<PlotError> for crate::error::Error {
    /// A figure that could not be drawn or written, as an
    /// [`Error::Plot`](crate::error::Error::Plot) carrying the [`PlotError`].
    fn from(e: PlotError) -> Self {
        crate::error::Error::Plot {
            source: Box::new(e),
        }
    }
}

/// Helpers of the tests of the chart kinds (and of the figures' layouts).
#[cfg(test)]
pub(crate) mod test_util {
    use std::path::{Path, PathBuf};
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::SeriesPanel;

    /// A fresh, unique directory under the system temp dir.
    pub(crate) fn temp_dir(name: &str) -> PathBuf {
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
    pub(crate) fn check_outputs(dir: &Path, stem: &str) {
        let png = std::fs::read(dir.join(format!("{stem}.png"))).expect("png written");
        assert!(png.len() > 100, "png too small");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let svg = std::fs::read_to_string(dir.join(format!("{stem}.svg"))).expect("svg written");
        assert!(!svg.is_empty());
        assert!(svg.contains("<svg"));
    }

    /// A log-y panel of two decaying variances against the step.
    pub(crate) fn synthetic_variances() -> SeriesPanel {
        let steps: Vec<f64> = (0..=50).map(|i| i as f64 * 200.0).collect();
        SeriesPanel {
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
        }
    }
}
