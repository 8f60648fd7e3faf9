//! Figure 4: P(collapse) of the RealNVP student over the grid of annealing schedules
//! (β_i, t0), a heat map with the 0.5 isoline of the runs, and the mean light-mode mass
//! relative to its true weight over the same grid. `partial` draws the same figure from the
//! finished runs of a sweep still in progress.

use super::{Grid, fig4_config, fig4_sweep, isoline_t0, no_annealing, p_with_interval};
use crate::error::Result;
use crate::plot::heatmap;
use crate::sweep::{CellStats, Device};
use std::path::Path;

/// Figure 4: P(collapse) over (β_i, t0) for the RealNVP student (heat-map with the simulated
/// 0.5 isoline, fig4.png/svg) and the mean light-mode mass relative to its true weight 1 − w*
/// (fig4_light_mass.png/svg); DIR/cells.csv has the sweep's columns plus the flow metrics
/// (mean mode-weight error, ESS fraction, KL(q‖π)).
/// `engine`: where the flows are trained (`Device::Gpu` with the `gpu` feature for `--full`).
pub fn figure4(out: &Path, quick: bool, engine: Device) -> Result<()> {
    let cells = fig4_sweep(out, quick, engine)?;
    let cfg = fig4_config(quick)?;
    let grid = Grid::of_stats(&cells);
    let t = &cfg.run.target;
    let f = &cfg.run.student.realnvp;
    let title = match no_annealing(&cells) {
        Some(c) => format!(
            "RealNVP, d = {}, {} runs/cell; no annealing: {}",
            t.d,
            c.n,
            p_with_interval(c)
        ),
        None => format!("RealNVP, d = {}: P(collapse)", t.d),
    };
    let hm = grid.heatmap(
        title,
        "Adam steps",
        grid.values(&cells, CellStats::p_collapse),
        vec![("P = 0.5 (RealNVP runs)".into(), isoline_t0(&cells, 0.5))],
    );
    heatmap(&hm, out, "fig4")?;
    let light = 1.0 - t.w_star;
    let hm = grid.heatmap(
        format!(
            "mean light-mode mass / (1 − w*) (collapse: mass < {})",
            f.collapse_threshold
        ),
        "Adam steps",
        grid.values(&cells, |c| c.mean_light_mass / light),
        Vec::new(),
    );
    heatmap(&hm, out, "fig4_light_mass")?;
    crate::progress::note(&format!("wrote {}", out.join("fig4.png").display()));
    Ok(())
}
