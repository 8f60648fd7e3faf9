//! Figure 2: P(collapse) of the Gaussian-mixture student over the grid of annealing schedules
//! (β_i, t0), a heat map with the 0.5 isolines of the SGD runs, of the quasi-static ODE from
//! the same initial means and of the analytical formula; and the theory phase diagram of
//! `annealvi theory` (the same map for the ODE alone).

use super::{Grid, fig2_config, fig2_sweep, isoline_t0, no_annealing, p_with_interval};
use crate::error::Result;
use crate::output;
use crate::plot::heatmap;
use crate::sweep::CellStats;
use std::fmt::Write as _;
use std::path::Path;

/// Theory cells as [`CellStats`]: the ODE Monte Carlo, and the analytical formula as if it were
/// a cell of 10⁶ runs (so that its isoline is interpolated the same way as the simulated ones).
fn theory_as_cells(theory: &[crate::theory::grid::TheoryCell]) -> (Vec<CellStats>, Vec<CellStats>) {
    let ode = theory
        .iter()
        .map(|t| CellStats {
            cell: t.cell,
            n: t.n,
            collapsed: t.collapsed,
            diverged: 0,
            covered: t.n - t.collapsed,
            mean_light_mass: f64::NAN,
            mean_mode_weight_error: f64::NAN,
            mean_ess_fraction: f64::NAN,
            mean_kl: f64::NAN,
            benchmark: Default::default(),
        })
        .collect();
    let formula = theory
        .iter()
        .filter(|t| t.p_formula.is_finite())
        .map(|t| {
            let n = 1_000_000;
            let k = (t.p_formula * n as f64).round() as usize;
            CellStats {
                cell: t.cell,
                n,
                collapsed: k,
                diverged: 0,
                covered: n - k,
                mean_light_mass: f64::NAN,
                mean_mode_weight_error: f64::NAN,
                mean_ess_fraction: f64::NAN,
                mean_kl: f64::NAN,
                benchmark: Default::default(),
            }
        })
        .collect();
    (ode, formula)
}

/// The theory phase diagram of `annealvi theory`: DIR/theory.png (+ SVG), a heat-map of the
/// ODE Monte Carlo's P(collapse) with the ODE's and the formula's 0.5 isolines, and
/// DIR/isoline.csv (`beta_i,t0_ode,t0_formula`; empty where P does not cross 0.5).
pub fn theory_map(out: &Path, theory: &[crate::theory::grid::TheoryCell]) -> Result<()> {
    let (ode, formula) = theory_as_cells(theory);
    let grid = Grid::of_stats(&ode);
    let values = grid.values(&ode, CellStats::p_collapse);
    let iso_ode = isoline_t0(&ode, 0.5);
    let iso_formula = isoline_t0(&formula, 0.5);
    let mut csv = String::from("beta_i,t0_ode,t0_formula\n");
    for &b in &grid.xs {
        let find = |v: &[(f64, f64)]| {
            v.iter()
                .find(|p| p.0 == b)
                .map_or(String::new(), |p| format!("{}", p.1))
        };
        let _ = writeln!(csv, "{b},{},{}", find(&iso_ode), find(&iso_formula));
    }
    output::write_text(&out.join("isoline.csv"), &csv)?;
    let n = theory.first().map_or(0, |t| t.n);
    let hm = grid.heatmap(
        format!("P(collapse), quasi-static ODE, {n} initial conditions/cell"),
        "SGD steps",
        values,
        vec![
            ("P = 0.5 (ODE)".into(), iso_ode),
            ("P = 0.5 (analytical formula)".into(), iso_formula),
        ],
    );
    Ok(heatmap(&hm, out, "theory")?)
}

/// Figure 2: heat-map of P(collapse) over (β_i, t0) with the simulated 0.5 isoline.
pub fn figure2(out: &Path, quick: bool) -> Result<()> {
    let cells = fig2_sweep(out, quick)?;
    let grid = Grid::of_stats(&cells);
    let values = grid.values(&cells, CellStats::p_collapse);
    let title = match no_annealing(&cells) {
        Some(c) => format!(
            "P(collapse), {} seeds/cell; no annealing: {}",
            c.n,
            p_with_interval(c)
        ),
        None => "P(collapse)".to_string(),
    };
    // the quasi-static ODE's prediction from the same initial means (paired with the seeds)
    let cfg = fig2_config(quick)?;
    let theory = crate::theory::grid::theory_grid(
        &cfg,
        cfg.grid.seeds,
        crate::theory::grid::IcMethod::Paired,
    )?;
    crate::theory::grid::write_theory(out, &theory)?;

    let (theory_cells, formula_cells) = theory_as_cells(&theory);
    let hm = grid.heatmap(
        title,
        "SGD steps",
        values,
        vec![
            ("P = 0.5 (SGD)".into(), isoline_t0(&cells, 0.5)),
            (
                "P = 0.5 (ODE, quasi-static)".into(),
                isoline_t0(&theory_cells, 0.5),
            ),
            (
                "P = 0.5 (analytical formula)".into(),
                isoline_t0(&formula_cells, 0.5),
            ),
        ],
    );
    heatmap(&hm, out, "fig2")?;
    crate::progress::note(&format!("wrote {}", out.join("fig2.png").display()));
    Ok(())
}
