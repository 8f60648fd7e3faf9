//! Theory on a sweep's grid: the ODE Monte Carlo and the analytical formula on every cell of a
//! [`SweepConfig`], the check that the summary-statistics ODE describes the configured training,
//! and DIR/theory.csv. It reads the sweep's configuration and cells; the sweep knows nothing of
//! it. The integrations run in parallel on the caller's rayon pool (install one to choose the
//! number of threads); the results do not depend on it.

use crate::config::FamilyKind;
use crate::error::{Error, IntegrateError, Result};
use crate::metrics::wilson_interval;
use crate::output;
use crate::sweep::{Cell, SweepConfig};
use rayon::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

/// P(collapse) of one cell predicted by theory.
#[derive(Clone, Debug, PartialEq)]
pub struct TheoryCell {
    /// The cell.
    pub cell: Cell,
    /// Initial conditions classified by the ODE.
    pub n: usize,
    /// Of which collapsed.
    pub collapsed: usize,
    /// Of which the integration failed (counted in n, not as collapsed).
    pub failed: usize,
    /// The sharp formula's P(collapse) ([`crate::theory::formula::FormulaModel::sharp`]; NaN
    /// where it does not apply).
    pub p_formula: f64,
}

/// Refuses run settings whose dynamics the summary-statistics ODE does not describe: it is the
/// gradient flow of plain SGD on the raw KL of a Gaussian-mixture student, so Adam, the
/// per-dimension loss scale and the RealNVP student would make `theory` and `design` predict
/// for another training than the one configured.
pub fn check_theory_applies(cfg: &SweepConfig) -> Result<()> {
    use crate::config::{LossScale, OptimKind};
    let why = "(the theory's ODE is the gradient flow of plain SGD on the raw KL of a \
               Gaussian-mixture student)";
    let r = &cfg.run;
    if r.student.family == FamilyKind::Realnvp {
        return Err(Error::config(
            "run.student.family",
            "\"realnvp\"",
            &format!("\"gmm\" for theory and design {why}"),
        ));
    }
    if r.schedule.kind == crate::schedule::ScheduleKind::Adaptive {
        return Err(Error::config(
            "run.schedule.kind",
            "\"adaptive\"",
            "no [run.schedule] for theory and design (the theory predicts the grid's \
             exponential schedules; an adaptive schedule's β(t) is known only by training)",
        ));
    }
    if r.optim.kind != OptimKind::Sgd {
        return Err(Error::config(
            "run.optim.kind",
            "\"adam\"",
            &format!("\"sgd\" for theory and design {why}"),
        ));
    }
    if r.objective.loss_scale != LossScale::None {
        return Err(Error::config(
            "run.objective.loss_scale",
            "\"per_dim\"",
            &format!("\"none\" for theory and design {why}"),
        ));
    }
    Ok(())
}

/// How the ODE Monte Carlo gets its initial conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcMethod {
    /// The initial means of the sweep's seeds 0..n−1 (paired with SGD), one integration each.
    Paired,
    /// n fresh draws per cell, classified by a table of split thresholds
    /// ([`crate::theory::monte_carlo::CollapseTable`]); needs fixed equal weights.
    Table,
}

/// ODE Monte Carlo and the analytical formula on every cell of a sweep's grid.
///
/// The quasi-static summary-statistics ODE (perfect gradients, σ² = 1/β) is integrated to the
/// end of each cell's run and classified by the signs of m_k. Fixed weights use the tabulated
/// fast flow ([`crate::theory::quasi_static`]); trainable weights the exact-objective one.
/// `Table` draws its initial conditions from stream (seed, cell, Eval), so it is reproducible.
/// Needs the bimodal target and 2 components.
pub fn theory_grid(cfg: &SweepConfig, n: usize, method: IcMethod) -> Result<Vec<TheoryCell>> {
    use crate::objective::ExactObjective;
    use crate::schedule::Exponential;
    use crate::seed::{Purpose, stream};
    use crate::theory::formula::FormulaModel;
    use crate::theory::monte_carlo::CollapseTable;
    use crate::theory::quasi_static::{QuasiStatic, collapses, draw_initial};
    use crate::theory::tables::EntropyTable;
    use crate::theory::{Dynamics, ode_collapses, to_vec};
    check_theory_applies(cfg)?;
    let target = cfg.run.build_target();
    // fail early, with the reason, rather than count every initial condition as failed
    let probe = Exponential {
        beta_i: 1.0,
        t0: 0.0,
    };
    Dynamics::from_config(&cfg.run, &probe, true)?;
    let bimodal = *target
        .as_bimodal()
        .expect("checked by Dynamics::from_config");
    let d = cfg.run.target.d;
    let w1 = cfg.run.fixed_w1();
    let scale = cfg.run.init_scale();
    if method == IcMethod::Table && (w1 != Some(0.5) || scale.is_none()) {
        return Err(Error::Invalid(
            "--method table needs fixed equal weights (student.weights = [0.5, 0.5], \
             trainable_weights = false) and random initial means (no student.means); use \
             --method paired"
                .into(),
        ));
    }
    let entropy = w1.map(EntropyTable::new);
    let formula = FormulaModel::from_sweep(cfg);
    let cells = cfg.cells();
    // one paired integration: initial means of seed i, classified at the end of cell c's run
    let paired = |c: usize, i: usize| -> Result<bool> {
        let cell = cells[c];
        let (cc, sched, tau_end) = cell_run(cfg, &cell);
        let (q, axis) = cc.compile()?.initial_student(i as u64)?;
        let x = to_vec(&ExactObjective::reduce(&q, &axis)?);
        match entropy.as_ref() {
            Some(tab) => {
                let flow = QuasiStatic::new(bimodal, &sched, cc.optim.lr, tab);
                let x5 = [x[0], x[1], x[2], x[3], x[4]];
                Ok(collapses(&flow, x5, cc.optim.lr * cell.t0, tau_end)?)
            }
            None => Ok(ode_collapses(
                &Dynamics::from_config(&cc, &sched, true)?,
                x,
                tau_end,
            )?),
        }
    };
    // fail early when the integrator cannot reach the end of the longest run within its step
    // budget (an absurd learning rate or target scale): every other cell would fail the same
    // way, slowly
    if let Some(longest) = (0..cells.len()).max_by_key(|&c| cfg.cell_config(&cells[c]).optim.steps)
        && let Err(Error::Integrate(source @ IntegrateError::StepBudget { .. })) =
            paired(longest, 0)
    {
        return Err(Error::CellOde {
            beta_i: cells[longest].beta_i,
            t0: cells[longest].t0,
            source,
        });
    }
    let jobs: Vec<(usize, usize)> = match method {
        IcMethod::Paired => (0..cells.len())
            .flat_map(|c| (0..n).map(move |i| (c, i)))
            .collect(),
        IcMethod::Table => (0..cells.len()).map(|c| (c, 0)).collect(),
    };
    let bar = crate::progress::bar(jobs.len() as u64, "theory");
    // (cell, collapsed, failed, classified)
    let results: Vec<(usize, usize, usize, usize)> = jobs
        .par_iter()
        .map(|&(c, i)| {
            let cell = cells[c];
            let (cc, sched, tau_end) = cell_run(cfg, &cell);
            let tau_kink = cc.optim.lr * cell.t0;
            let out = match (method, entropy.as_ref()) {
                (IcMethod::Table, Some(tab)) => {
                    let flow = QuasiStatic::new(bimodal, &sched, cc.optim.lr, tab);
                    let s = scale.unwrap_or(1.0);
                    match CollapseTable::new(&flow, d, s, (tau_kink, tau_end)) {
                        Ok(table) => {
                            let mut rng = stream(cc.seed, c as u64, Purpose::Eval);
                            let col = (0..n)
                                .filter(|_| table.collapses(&draw_initial(&mut rng, d, s)))
                                .count();
                            (c, col, 0, n)
                        }
                        Err(_) => (c, 0, n, n),
                    }
                }
                _ => match paired(c, i) {
                    Ok(true) => (c, 1, 0, 1),
                    Ok(false) => (c, 0, 0, 1),
                    Err(_) => (c, 0, 1, 1),
                },
            };
            bar.inc(1);
            out
        })
        .collect();
    bar.finish_and_clear();
    let mut out: Vec<TheoryCell> = cells
        .iter()
        .map(|&cell| TheoryCell {
            cell,
            n: 0,
            collapsed: 0,
            failed: 0,
            p_formula: formula
                .as_ref()
                .map_or(f64::NAN, |f| f.sharp(cell.beta_i, cell.t0).p),
        })
        .collect();
    for (c, col, failed, k) in results {
        out[c].n += k;
        out[c].collapsed += col;
        out[c].failed += failed;
    }
    Ok(out)
}

/// The run of `cell`: its configuration, its schedule, and the ODE time τ_end = η × steps at
/// its end.
fn cell_run(
    cfg: &SweepConfig,
    cell: &Cell,
) -> (crate::config::Config, crate::schedule::Exponential, f64) {
    let cc = cfg.cell_config(cell);
    let sched = crate::schedule::Exponential {
        beta_i: cell.beta_i,
        t0: cell.t0,
    };
    let tau_end = cc.optim.lr * cc.optim.steps as f64;
    (cc, sched, tau_end)
}

/// Writes DIR/theory.csv: `beta_i,t0,rate,n,p_ode,ci_low,ci_high,failed,p_formula,gap`
/// (gap = p_formula − p_ode). A cell whose every integration failed has p_ode, ci_low, ci_high
/// and gap NaN (nothing was classified).
pub fn write_theory(dir: &Path, cells: &[TheoryCell]) -> Result<()> {
    let mut s = String::from("beta_i,t0,rate,n,p_ode,ci_low,ci_high,failed,p_formula,gap\n");
    for c in cells {
        let (lo, hi) = if c.failed >= c.n {
            (f64::NAN, f64::NAN)
        } else {
            wilson_interval(c.collapsed, c.n)
        };
        let p_ode = if c.failed >= c.n {
            f64::NAN
        } else {
            c.collapsed as f64 / c.n as f64
        };
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{}",
            c.cell.beta_i,
            c.cell.t0,
            c.cell.rate(),
            c.n,
            p_ode,
            lo,
            hi,
            c.failed,
            c.p_formula,
            c.p_formula - p_ode
        );
    }
    output::write_text(&dir.join("theory.csv"), &s)
}
