//! Figure 3: SGD trajectories of the summary statistics (m1, m2, q11, q12, q22, σ1, σ2) of
//! Figure 1's annealed run against the closed ODE (full variance and quasi-static) started
//! from each seed's initial statistics, one panel per statistic.

use super::figure1_configs;
use crate::error::{Error, Result};
use crate::output;
use crate::plot::{SeriesPanel, panels_figure};
use crate::run::Trainer;
use crate::train::Recorder;
use std::fmt::Write as _;
use std::path::Path;

/// Figure 3: SGD trajectories of the summary statistics for the run of Figure 1 row (iii)
/// (several seeds), against the ODE with perfect gradients, full-variance and quasi-static
/// (σ² = 1/β), started from each seed's initial statistics. SGD step t ↔ ODE time τ = η t.
pub fn figure3(out: &Path, quick: bool, seed: u64) -> Result<()> {
    use crate::schedule::Exponential;
    use crate::theory::{Dynamics, Tolerance, integrate, state_from_stats};
    // the statistics without w_1 (fixed here)
    let first_seven = |x: &[f64; 8]| -> [f64; 7] { [x[0], x[1], x[2], x[3], x[4], x[5], x[6]] };
    output::ensure_dir(out)?;
    let (_, mut cfg) = figure1_configs(seed).swap_remove(2);
    cfg.record.every = if quick { 50 } else { 20 };
    cfg.record.marginal_steps.clear();
    let seeds = if quick { 2 } else { 3 };
    let sched = Exponential {
        beta_i: cfg.schedule.beta_i,
        t0: cfg.schedule.t0,
    };
    let names = ["m1", "m2", "q11", "q12", "q22", "sigma1", "sigma2"];
    let mut csv = String::from("source,seed,step,m1,m2,q11,q12,q22,sigma1,sigma2\n");
    let mut panels: Vec<SeriesPanel> = names
        .iter()
        .map(|n| SeriesPanel {
            title: n.to_string(),
            x_label: "SGD step".into(),
            y_label: n.to_string(),
            log_y: matches!(*n, "q11" | "q22" | "sigma1" | "sigma2"),
            series: Vec::new(),
            styles: Vec::new(),
        })
        .collect();
    let exp = cfg.compile()?;
    let bar = crate::progress::bar(seeds as u64, "figure 3");
    for s in 0..seeds {
        let mut rec = Recorder::default();
        Trainer::new(&exp)
            .index(s as u64)
            .observer(&mut rec)
            .run()?;
        let steps: Vec<f64> = rec.records.iter().map(|r| r.step as f64).collect();
        let taus: Vec<f64> = steps.iter().map(|t| t * cfg.optim.lr).collect();
        let x0 = state_from_stats(&rec.records[0].stats);
        let sgd: Vec<[f64; 7]> = rec
            .records
            .iter()
            .map(|r| first_seven(&state_from_stats(&r.stats)))
            .collect();
        let mut curves: Vec<(&str, Vec<[f64; 7]>)> = vec![("SGD", sgd)];
        for (label, quasi) in [("ODE", false), ("ODE quasi-static", true)] {
            let dy = Dynamics::from_config(&cfg, &sched, quasi)?;
            let xs = integrate(&dy, 0.0, x0, &taus, Tolerance::default())
                .map_err(|e| Error::Invalid(format!("ODE integration failed: {e}")))?;
            curves.push((label, xs.iter().map(first_seven).collect()));
        }
        for (ci, (label, rows)) in curves.iter().enumerate() {
            for (t, row) in steps.iter().zip(rows) {
                let _ = writeln!(
                    csv,
                    "{label},{s},{t},{}",
                    row.iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
            for (j, panel) in panels.iter_mut().enumerate() {
                // legend in the first panel only
                panel.series.push((
                    if j == 0 {
                        format!("{label}, seed {s}")
                    } else {
                        String::new()
                    },
                    steps.iter().zip(rows).map(|(t, r)| (*t, r[j])).collect(),
                ));
                // one colour per seed; SGD solid, ODE dashed, quasi-static dashed and lighter
                panel
                    .styles
                    .push((s + if ci == 2 { seeds } else { 0 }, ci > 0));
            }
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    output::write_text(&out.join("fig3.csv"), &csv)?;
    panels_figure(&panels, 4, out, "fig3")?;
    crate::progress::note(&format!("wrote {}", out.join("fig3.png").display()));
    Ok(())
}
