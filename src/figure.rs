//! The paper's figures, each reproduced by one function (and one CLI command).
//!
//! # Figure 1
//! Three rows, all d = 512, R = 3, w* = 0.8, w1 = ½, η = 0.05, the same initial means:
//! (i) no annealing, σ(0) = 1; (ii) no annealing, "covering" σ(0) = 10 ≫ R; (iii) exponential
//! annealing β(t) = β_i^(1 − t/t0) with σ(0)² = 1/β_i. Columns 1–4: marginals along μ̂ of π
//! (and π_β) and q at four stages; column 5: σ1, σ2 against the step.
//!
//! The run shown uses the first seed ≥ `--seed` for which rows (i) and (ii) collapse and row
//! (iii) covers both modes (the situation the paper's figure illustrates). So that the
//! choice hides nothing, the command also measures P(collapse) of each row over many seeds
//! (`fig1_outcomes.csv`, Wilson 95% intervals) and prints it.

use crate::config::{Config, NumberOr, ScheduleKind};
use crate::error::{Error, Result};
use crate::metrics::wilson_interval;
use crate::output;
use crate::plot::{
    ErrorBarChart, ErrorBarSeries, Heatmap, LabeledLine, MarginalPanel, SeriesPanel,
};
use crate::sweep::{CellStats, Engine, SweepConfig, SweepOptions, aggregate, read_runs, run_sweep};
use crate::train::{NoObserver, Recorder, run_config};
use rayon::prelude::*;
use std::fmt::Write as _;
use std::path::Path;

mod dim;
mod fig1;
mod partial;
pub use dim::{DimPoint, figure_dim};
pub use fig1::{FIG1_PANEL_HEIGHT, FIG1_PANEL_WIDTH, Fig1Row, draw_fig1};
pub use partial::{SweepProgress, figure4_from};

/// Row (iii)'s annealing: β_i.
pub const FIG1_BETA_I: f64 = 0.05;
/// Row (iii)'s annealing: t0 in SGD steps.
pub const FIG1_T0: f64 = 4000.0;
/// SGD steps of rows (i) and (ii) (converged long before).
pub const FIG1_STEPS_NO_ANNEALING: usize = 2000;

/// The three configurations of Figure 1 (rows i, ii, iii). Row (iii) runs t0 + 1000 steps.
pub fn figure1_configs(seed: u64) -> Vec<(String, Config)> {
    let mut base = Config {
        seed,
        ..Config::default()
    };
    base.record.every = 20;
    let steps = FIG1_STEPS_NO_ANNEALING;
    base.optim.steps = steps;
    let mut r1 = base.clone();
    r1.schedule.kind = ScheduleKind::Constant;
    r1.schedule.beta = 1.0;
    r1.student.sigma0 = NumberOr::Number(1.0);
    r1.record.marginal_steps = vec![0, 20, 100, steps];
    let mut r2 = r1.clone();
    r2.student.sigma0 = NumberOr::Number(10.0);
    r2.record.marginal_steps = vec![0, 3, 100, steps];
    let mut r3 = base;
    let steps = FIG1_T0 as usize + 1000;
    r3.optim.steps = steps;
    r3.schedule.kind = ScheduleKind::Exponential;
    r3.schedule.beta_i = FIG1_BETA_I;
    r3.schedule.t0 = FIG1_T0;
    r3.student.sigma0 = NumberOr::Name("schedule".into());
    let t0 = FIG1_T0 as usize;
    r3.record.marginal_steps = vec![0, t0 / 2, (3 * t0) / 4, steps];
    vec![
        ("(i) no annealing, σ(0)=1".into(), r1),
        ("(ii) no annealing, σ(0)=10".into(), r2),
        (
            format!("(iii) exponential annealing, β_i={FIG1_BETA_I}, t0={FIG1_T0}"),
            r3,
        ),
    ]
}

/// Reproduces Figure 1 into `out` (fig1.png, fig1.svg and the CSV data behind them).
pub fn figure1(out: &Path, quick: bool, seed: u64, threads: usize) -> Result<()> {
    output::ensure_dir(out)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::Invalid(format!("cannot start {threads} threads: {e}")))?;
    let n_stat = if quick { 10 } else { 48 };
    let configs = figure1_configs(seed);

    // Collapse statistics per row over n_stat seeds (runs 0..n_stat of each config).
    let bar = crate::progress::bar((3 * n_stat) as u64, "figure 1");
    let outcomes: Vec<Vec<crate::metrics::Outcome>> = pool.install(|| {
        configs
            .iter()
            .map(|(_, c)| {
                let mut light = c.clone();
                light.record.every = 0;
                light.record.marginal_steps.clear();
                (0..n_stat as u64)
                    .into_par_iter()
                    .map(|run| {
                        let (_, r) = run_config(&light, run, &mut NoObserver);
                        bar.inc(1);
                        r.outcome
                    })
                    .collect()
            })
            .collect()
    });
    bar.finish_and_clear();

    // The run shown: the first run index whose outcomes match the paper's illustration.
    let shown = (0..n_stat)
        .find(|&i| {
            outcomes[0][i].is_collapsed()
                && outcomes[1][i].is_collapsed()
                && outcomes[2][i].label() == "covered"
        })
        .unwrap_or(0);

    let mut rows = Vec::new();
    let mut marg_csv = String::from("row,step,beta,s,q,pi,pi_beta\n");
    let mut traj_csv = format!("row,{}\n", output::trajectory_header(2));
    let mut out_csv =
        String::from("row,label,n,collapsed,covered,diverged,p_collapse,ci_low,ci_high\n");
    for (i, (label, cfg)) in configs.iter().enumerate() {
        let mut rec = Recorder::default();
        let (_, res) = run_config(cfg, shown as u64, &mut rec);
        output::marginals_rows(&mut marg_csv, &format!("{},", i + 1), &rec.marginals);
        for r in &rec.records {
            let _ = writeln!(traj_csv, "{},{}", i + 1, output::trajectory_row(r));
        }
        let n = outcomes[i].len();
        let collapsed = outcomes[i].iter().filter(|o| o.is_collapsed()).count();
        let covered = outcomes[i]
            .iter()
            .filter(|o| o.label() == "covered")
            .count();
        let diverged = outcomes[i]
            .iter()
            .filter(|o| o.label() == "diverged")
            .count();
        let (lo, hi) = wilson_interval(collapsed, n);
        let p = collapsed as f64 / n as f64;
        let _ = writeln!(
            out_csv,
            "{},\"{}\",{n},{collapsed},{covered},{diverged},{p},{lo},{hi}",
            i + 1,
            label
        );
        println!(
            "row {}: {label}: shown run {} -> {}; P(collapse) = {p:.2} [{lo:.2}, {hi:.2}] over {n} seeds",
            i + 1,
            shown,
            res.outcome.label()
        );
        rows.push(Fig1Row {
            label: label.clone(),
            marginals: rec
                .marginals
                .iter()
                .map(|m| MarginalPanel {
                    title: format!("step {}, β={:.3}", m.step, m.beta),
                    s: m.s.clone(),
                    target: m.target.clone(),
                    target_tempered: if (m.beta - 1.0).abs() < 1e-12 {
                        None
                    } else {
                        m.target_tempered.clone()
                    },
                    student: m.q.clone(),
                })
                .collect(),
            variances: SeriesPanel {
                title: "σ1, σ2".into(),
                x_label: "SGD step".into(),
                y_label: "σ".into(),
                log_y: true,
                styles: Vec::new(),
                series: (0..2)
                    .map(|k| {
                        (
                            format!("σ{}", k + 1),
                            rec.records
                                .iter()
                                .map(|r| (r.step as f64, r.stats.sigma[k]))
                                .collect(),
                        )
                    })
                    .chain(std::iter::once((
                        "1/√β".to_string(),
                        rec.records
                            .iter()
                            .map(|r| (r.step as f64, 1.0 / r.beta.sqrt()))
                            .collect(),
                    )))
                    .collect(),
            },
        });
    }
    output::write_text(&out.join("fig1_marginals.csv"), &marg_csv)?;
    output::write_text(&out.join("fig1_trajectory.csv"), &traj_csv)?;
    output::write_text(&out.join("fig1_outcomes.csv"), &out_csv)?;
    draw_fig1(&rows, out, "fig1").map_err(|e| Error::Invalid(e.to_string()))?;
    println!("wrote {}", out.join("fig1.png").display());
    Ok(())
}

/// The paper-scale Figure 2 sweep (configs/fig2.toml, embedded in the binary).
pub const FIG2_FULL: &str = include_str!("../configs/fig2.toml");
/// The quick Figure 2 sweep (configs/fig2-quick.toml).
pub const FIG2_QUICK: &str = include_str!("../configs/fig2-quick.toml");

/// Runs (or resumes, or reuses) the Figure 2 sweep in `out`; returns its cells.
pub fn fig2_sweep(out: &Path, quick: bool, threads: usize) -> Result<Vec<CellStats>> {
    let text = if quick { FIG2_QUICK } else { FIG2_FULL };
    builtin_sweep(text, "Figure 2", out, threads, Engine::Cpu)
}

/// The paper-scale Figure 4 sweep (configs/fig4.toml, RealNVP, meant for a cluster or GPU).
pub const FIG4_FULL: &str = include_str!("../configs/fig4.toml");
/// The quick Figure 4 sweep (configs/fig4-quick.toml, RealNVP at d = 16).
pub const FIG4_QUICK: &str = include_str!("../configs/fig4-quick.toml");

/// Runs (or resumes, or reuses) the Figure 4 (RealNVP) sweep in `out` on `engine`; returns
/// its cells.
pub fn fig4_sweep(
    out: &Path,
    quick: bool,
    threads: usize,
    engine: Engine,
) -> Result<Vec<CellStats>> {
    let text = if quick { FIG4_QUICK } else { FIG4_FULL };
    builtin_sweep(text, "Figure 4", out, threads, engine)
}

/// Parses a built-in sweep configuration.
fn builtin_config(text: &str, name: &str) -> Result<SweepConfig> {
    let cfg: SweepConfig = toml::from_str(text).map_err(|e| Error::Parse {
        source_name: format!("built-in {name} configuration"),
        message: e.to_string(),
    })?;
    cfg.validate()?;
    Ok(cfg)
}

/// Runs a built-in sweep in `out` on `engine` (resuming whatever is there) and aggregates its
/// runs.
fn builtin_sweep(
    text: &str,
    name: &str,
    out: &Path,
    threads: usize,
    engine: Engine,
) -> Result<Vec<CellStats>> {
    let mut cfg = builtin_config(text, name)?;
    cfg.grid.engine = engine;
    cfg.validate()?;
    let opts = SweepOptions {
        out: out.to_path_buf(),
        resume: true,
        shard: None,
        threads,
        max_runs: None,
        budget: None,
    };
    let rep = run_sweep(&cfg, &opts)?;
    println!(
        "{name} sweep: {} runs ({} already done, {} run now in {:.1} s) -> {}",
        rep.planned,
        rep.skipped,
        rep.ran,
        rep.seconds,
        out.join("runs.jsonl").display()
    );
    Ok(aggregate(&read_runs(&out.join("runs.jsonl"), false)?))
}

/// The distinct β_i of the annealed cells, ascending.
fn annealed_betas(cells: &[CellStats]) -> Vec<f64> {
    let mut betas: Vec<f64> = cells
        .iter()
        .filter(|c| c.cell.t0 > 0.0)
        .map(|c| c.cell.beta_i)
        .collect();
    betas.sort_by(f64::total_cmp);
    betas.dedup();
    betas
}

/// The 0.5 isoline of P(collapse) over the (β_i, t0) grid: for each β_i, the t0 where P
/// crosses 0.5 (first crossing from above, interpolated linearly in ln t0).
pub fn isoline_t0(cells: &[CellStats], level: f64) -> Vec<(f64, f64)> {
    let betas = annealed_betas(cells);
    let mut pts = Vec::new();
    for b in betas {
        let mut col: Vec<(f64, f64)> = cells
            .iter()
            .filter(|c| c.cell.beta_i == b && c.cell.t0 > 0.0)
            .map(|c| (c.cell.t0, c.p_collapse()))
            .collect();
        col.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in col.windows(2) {
            let ((t1, p1), (t2, p2)) = (w[0], w[1]);
            if p1 >= level && p2 < level {
                let f = (p1 - level) / (p1 - p2);
                pts.push((b, (t1.ln() + f * (t2.ln() - t1.ln())).exp()));
                break;
            }
        }
    }
    pts
}

/// Theory cells as [`CellStats`]: the ODE Monte Carlo, and the analytical formula as if it were
/// a cell of 10⁶ runs (so that its isoline is interpolated the same way as the simulated ones).
fn theory_as_cells(theory: &[crate::sweep::TheoryCell]) -> (Vec<CellStats>, Vec<CellStats>) {
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
            }
        })
        .collect();
    (ode, formula)
}

/// The grid axes (annealed cells) and `values[iy][ix]` of P(collapse).
fn grid_values(cells: &[CellStats]) -> (Vec<f64>, Vec<f64>, Vec<Vec<f64>>) {
    let mut xs: Vec<f64> = cells
        .iter()
        .filter(|c| c.cell.t0 > 0.0)
        .map(|c| c.cell.beta_i)
        .collect();
    let mut ys: Vec<f64> = cells
        .iter()
        .filter(|c| c.cell.t0 > 0.0)
        .map(|c| c.cell.t0)
        .collect();
    for v in [&mut xs, &mut ys] {
        v.sort_by(f64::total_cmp);
        v.dedup();
    }
    let values = ys
        .iter()
        .map(|&t| {
            xs.iter()
                .map(|&b| {
                    cells
                        .iter()
                        .find(|c| c.cell.beta_i == b && c.cell.t0 == t)
                        .map_or(f64::NAN, |c| c.p_collapse())
                })
                .collect()
        })
        .collect();
    (xs, ys, values)
}

/// The theory phase diagram of `annealvi theory`: DIR/theory.png (+ SVG), a heat-map of the
/// ODE Monte Carlo's P(collapse) with the ODE's and the formula's 0.5 isolines, and
/// DIR/isoline.csv (`beta_i,t0_ode,t0_formula`; empty where P does not cross 0.5).
pub fn theory_map(out: &Path, theory: &[crate::sweep::TheoryCell]) -> Result<()> {
    let (ode, formula) = theory_as_cells(theory);
    let (xs, ys, values) = grid_values(&ode);
    let iso_ode = isoline_t0(&ode, 0.5);
    let iso_formula = isoline_t0(&formula, 0.5);
    let mut csv = String::from("beta_i,t0_ode,t0_formula\n");
    for &b in &xs {
        let find = |v: &[(f64, f64)]| {
            v.iter()
                .find(|p| p.0 == b)
                .map_or(String::new(), |p| format!("{}", p.1))
        };
        let _ = writeln!(csv, "{b},{},{}", find(&iso_ode), find(&iso_formula));
    }
    output::write_text(&out.join("isoline.csv"), &csv)?;
    let n = theory.first().map_or(0, |t| t.n);
    let hm = Heatmap {
        title: format!("P(collapse), quasi-static ODE, {n} initial conditions/cell"),
        x_label: "initial inverse temperature β_i".into(),
        y_label: "annealing time t0 (SGD steps)".into(),
        x_log: true,
        y_log: true,
        xs,
        ys,
        values,
        isolines: vec![
            ("P = 0.5 (ODE)".into(), iso_ode),
            ("P = 0.5 (analytical formula)".into(), iso_formula),
        ],
    };
    crate::plot::heatmap(&hm, out, "theory").map_err(|e| Error::Invalid(e.to_string()))
}

/// Figure 2: heat-map of P(collapse) over (β_i, t0) with the simulated 0.5 isoline.
pub fn figure2(out: &Path, quick: bool, threads: usize) -> Result<()> {
    let cells = fig2_sweep(out, quick, threads)?;
    let (xs, ys, values) = grid_values(&cells);
    let plain = cells.iter().find(|c| c.cell.t0 == 0.0);
    let title = match plain {
        Some(c) => {
            let (lo, hi) = wilson_interval(c.collapsed, c.n);
            format!(
                "P(collapse), {} seeds/cell; no annealing: {:.2} [{lo:.2}, {hi:.2}]",
                c.n,
                c.p_collapse()
            )
        }
        None => "P(collapse)".to_string(),
    };
    // the quasi-static ODE's prediction from the same initial means (paired with the seeds)
    let cfg = builtin_config(if quick { FIG2_QUICK } else { FIG2_FULL }, "Figure 2")?;
    let theory = crate::sweep::theory_grid(
        &cfg,
        cfg.grid.seeds,
        threads,
        crate::sweep::IcMethod::Paired,
    )?;
    crate::sweep::write_theory(out, &theory)?;

    let (theory_cells, formula_cells) = theory_as_cells(&theory);
    let hm = Heatmap {
        title,
        x_label: "initial inverse temperature β_i".into(),
        y_label: "annealing time t0 (SGD steps)".into(),
        x_log: true,
        y_log: true,
        xs,
        ys,
        values,
        isolines: vec![
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
    };
    crate::plot::heatmap(&hm, out, "fig2").map_err(|e| Error::Invalid(e.to_string()))?;
    println!("wrote {}", out.join("fig2.png").display());
    Ok(())
}

/// P(collapse) against ln r, one error-bar series per β_i of `cells` (annealed cells), with
/// their rows appended to `csv` (`beta_i,t0,log_rate,p_collapse,ci_low,ci_high,n`).
fn rate_series(cells: &[CellStats], csv: &mut String) -> Vec<ErrorBarSeries> {
    annealed_betas(cells)
        .iter()
        .map(|&b| {
            let mut pts: Vec<(f64, f64, f64, f64)> = cells
                .iter()
                .filter(|c| c.cell.beta_i == b && c.cell.t0 > 0.0)
                .map(|c| {
                    let (lo, hi) = wilson_interval(c.collapsed, c.n);
                    let x = c.cell.rate().ln();
                    let _ = writeln!(
                        csv,
                        "{b},{},{x},{},{lo},{hi},{}",
                        c.cell.t0,
                        c.p_collapse(),
                        c.n
                    );
                    (x, c.p_collapse(), lo, hi)
                })
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            ErrorBarSeries {
                label: format!("β_i = {b:.3}"),
                points: pts,
            }
        })
        .collect()
}

/// The x range of a set of series.
fn x_range(series: &[ErrorBarSeries]) -> (f64, f64) {
    series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        })
}

/// A flat dashed line at the no-annealing cell's P(collapse), across the series' x range.
fn no_annealing_line(cells: &[CellStats], series: &[ErrorBarSeries]) -> Option<LabeledLine> {
    let c = cells.iter().find(|c| c.cell.t0 == 0.0)?;
    let (lo, hi) = x_range(series);
    lo.is_finite().then(|| {
        (
            format!("no annealing ({:.2})", c.p_collapse()),
            vec![(lo, c.p_collapse()), (hi, c.p_collapse())],
        )
    })
}

/// Figure 5: P(collapse) against the annealing rate ln r = ln(1/β_i)/t0 (per step), one series
/// per β_i. Left panel: the Gaussian-mixture student (the Figure 2 sweep in `out`) with the
/// formula's β_i → 0 asymptote; right panel (when `flow = Some((dir, flow_quick, engine))`):
/// the RealNVP student (the quick or full Figure 4 sweep in `dir`, run or resumed there). The
/// panels have their own x axes: a step is an SGD step of η = 0.05 for the mixture and an
/// Adam step for the flow.
/// Writes fig5.png/svg, fig5.csv (mixture), fig5_flow.csv (flow), fig5_asymptote.csv.
pub fn figure5(
    out: &Path,
    quick: bool,
    threads: usize,
    flow: Option<(&Path, bool, Engine)>,
) -> Result<()> {
    let cells = fig2_sweep(out, quick, threads)?;
    let mut csv = String::from("beta_i,t0,log_rate,p_collapse,ci_low,ci_high,n\n");
    let series = rate_series(&cells, &mut csv);
    let mut extra: Vec<LabeledLine> = no_annealing_line(&cells, &series).into_iter().collect();
    // the formula's β_i → 0 asymptote, a function of the rate alone
    let cfg = builtin_config(if quick { FIG2_QUICK } else { FIG2_FULL }, "Figure 2")?;
    if let Some(model) = crate::theory::formula::FormulaModel::from_sweep(&cfg) {
        let (lo, hi) = x_range(&series);
        if lo.is_finite() && lo > 0.0 {
            let mut acsv = String::from("log_rate,p_asymptote\n");
            let curve: Vec<(f64, f64)> = (0..=60)
                .map(|i| {
                    let x = lo * (hi / lo).powf(i as f64 / 60.0);
                    let p = crate::theory::formula::asymptote(&model, x.exp()).p;
                    let _ = writeln!(acsv, "{x},{p}");
                    (x, p)
                })
                .filter(|p| p.1.is_finite())
                .collect();
            output::write_text(&out.join("fig5_asymptote.csv"), &acsv)?;
            extra.push(("formula, β_i → 0".to_string(), curve));
        }
    }
    output::write_text(&out.join("fig5.csv"), &csv)?;
    let mut charts = vec![ErrorBarChart {
        title: "Gaussian-mixture student (SGD, η = 0.05)".into(),
        x_label: "annealing rate ln r = ln(1/β_i)/t0 (per SGD step)".into(),
        y_label: "P(collapse)".into(),
        x_log: true,
        y_log: false,
        series,
        extra_lines: extra,
    }];
    if let Some((dir, fquick, engine)) = flow {
        let fcells = fig4_sweep(dir, fquick, threads, engine)?;
        let mut fcsv = String::from("beta_i,t0,log_rate,p_collapse,ci_low,ci_high,n\n");
        let fseries = rate_series(&fcells, &mut fcsv);
        let fextra: Vec<LabeledLine> = no_annealing_line(&fcells, &fseries).into_iter().collect();
        output::write_text(&out.join("fig5_flow.csv"), &fcsv)?;
        let fcfg = builtin_config(if fquick { FIG4_QUICK } else { FIG4_FULL }, "Figure 4")?;
        charts.push(ErrorBarChart {
            title: format!(
                "RealNVP student (Adam, d = {}, {} couplings)",
                fcfg.run.target.d, fcfg.run.student.realnvp.layers
            ),
            x_label: "annealing rate ln r = ln(1/β_i)/t0 (per Adam step)".into(),
            y_label: "P(collapse)".into(),
            x_log: true,
            y_log: false,
            series: fseries,
            extra_lines: fextra,
        });
    }
    crate::plot::errorbar_panels(&charts, out, "fig5")
        .map_err(|e| Error::Invalid(e.to_string()))?;
    println!("wrote {}", out.join("fig5.png").display());
    Ok(())
}

/// Figure 4: P(collapse) over (β_i, t0) for the RealNVP student (heat-map with the simulated
/// 0.5 isoline, fig4.png/svg) and the mean light-mode mass relative to its true weight 1 − w*
/// (fig4_light_mass.png/svg); DIR/cells.csv has the sweep's columns plus the flow metrics
/// (mean mode-weight error, ESS fraction, KL(q‖π)).
/// `engine`: where the flows are trained (`Engine::Gpu` with the `gpu` feature for `--full`).
pub fn figure4(out: &Path, quick: bool, threads: usize, engine: Engine) -> Result<()> {
    let cells = fig4_sweep(out, quick, threads, engine)?;
    let cfg = builtin_config(if quick { FIG4_QUICK } else { FIG4_FULL }, "Figure 4")?;
    let (xs, ys, values) = grid_values(&cells);
    let t = &cfg.run.target;
    let f = &cfg.run.student.realnvp;
    let title = match cells.iter().find(|c| c.cell.t0 == 0.0) {
        Some(c) => {
            let (lo, hi) = wilson_interval(c.collapsed, c.n);
            format!(
                "RealNVP, d = {}, {} runs/cell; no annealing: {:.2} [{lo:.2}, {hi:.2}]",
                t.d,
                c.n,
                c.p_collapse()
            )
        }
        None => format!("RealNVP, d = {}: P(collapse)", t.d),
    };
    let hm = Heatmap {
        title,
        x_label: "initial inverse temperature β_i".into(),
        y_label: "annealing time t0 (Adam steps)".into(),
        x_log: true,
        y_log: true,
        xs: xs.clone(),
        ys: ys.clone(),
        values,
        isolines: vec![("P = 0.5 (RealNVP runs)".into(), isoline_t0(&cells, 0.5))],
    };
    crate::plot::heatmap(&hm, out, "fig4").map_err(|e| Error::Invalid(e.to_string()))?;
    let light = 1.0 - t.w_star;
    let mass: Vec<Vec<f64>> = ys
        .iter()
        .map(|&t0| {
            xs.iter()
                .map(|&b| {
                    cells
                        .iter()
                        .find(|c| c.cell.beta_i == b && c.cell.t0 == t0)
                        .map_or(f64::NAN, |c| c.mean_light_mass / light)
                })
                .collect()
        })
        .collect();
    let hm = Heatmap {
        title: format!(
            "mean light-mode mass / (1 − w*) (collapse: mass < {})",
            f.collapse_threshold
        ),
        x_label: "initial inverse temperature β_i".into(),
        y_label: "annealing time t0 (Adam steps)".into(),
        x_log: true,
        y_log: true,
        xs,
        ys,
        values: mass,
        isolines: Vec::new(),
    };
    crate::plot::heatmap(&hm, out, "fig4_light_mass").map_err(|e| Error::Invalid(e.to_string()))?;
    println!("wrote {}", out.join("fig4.png").display());
    Ok(())
}

/// Every figure, their data, and `out/index.md` showing them. `flow_quick`: the scale of the
/// RealNVP Figure 4 (and Figure 5's flow panel), `None` to leave it out.
pub fn reproduce(
    out: &Path,
    quick: bool,
    flow_quick: Option<bool>,
    threads: usize,
    engine: Engine,
) -> Result<()> {
    output::ensure_dir(out)?;
    let start = std::time::Instant::now();
    figure1(&out.join("fig1"), quick, 0, threads)?;
    figure3(&out.join("fig3"), quick, 0)?;
    let f2 = out.join("fig2");
    figure2(&f2, quick, threads)?;
    let f4 = out.join("fig4");
    if let Some(fq) = flow_quick {
        figure4(&f4, fq, threads, engine)?;
    }
    figure5(
        &f2,
        quick,
        threads,
        flow_quick.map(|fq| (f4.as_path(), fq, engine)),
    )?;
    figure_dim(&out.join("dim"), quick, threads)?;
    let mut md = String::new();
    let mode = if quick { "quick" } else { "full" };
    let _ = writeln!(md, "# annealvi: reproduced figures ({mode})\n");
    let _ = writeln!(
        md,
        "Produced by `annealvi reproduce --{mode}` in {:.0} s.\n",
        start.elapsed().as_secs_f64()
    );
    let _ = writeln!(md, "## Figure 1\n\n![Figure 1](fig1/fig1.png)\n");
    if let Ok(t) = std::fs::read_to_string(out.join("fig1/fig1_outcomes.csv")) {
        let _ = writeln!(
            md,
            "Collapse rates per row (`fig1/fig1_outcomes.csv`):\n\n```\n{t}```\n"
        );
    }
    let _ = writeln!(
        md,
        "## Figure 3\n\n![Figure 3](fig3/fig3.png)\n\nData: `fig3/fig3.csv` (SGD and ODE trajectories).\n"
    );
    let _ = writeln!(
        md,
        "## Figure 2\n\n![Figure 2](fig2/fig2.png)\n\nData: `fig2/cells.csv`, `fig2/runs.jsonl` (SGD); `fig2/theory.csv` (quasi-static ODE from the same initial means).\n"
    );
    if let Ok(t) = std::fs::read_to_string(f2.join("cells.csv")) {
        let _ = writeln!(md, "```\n{t}```\n");
    }
    if let Some(fq) = flow_quick {
        let scale = if fq {
            "quick preset, configs/fig4-quick.toml"
        } else {
            "paper scale, configs/fig4.toml"
        };
        let _ = writeln!(
            md,
            "## Figure 4 ({scale})\n\n![Figure 4](fig4/fig4.png)\n\n![Figure 4, light-mode mass](fig4/fig4_light_mass.png)\n\nData: `fig4/cells.csv` (with the flow metrics), `fig4/runs.jsonl`.\n"
        );
        if let Ok(t) = std::fs::read_to_string(f4.join("cells.csv")) {
            let _ = writeln!(md, "```\n{t}```\n");
        }
    }
    let _ = writeln!(
        md,
        "## Figure 5\n\n![Figure 5](fig2/fig5.png)\n\nData: `fig2/fig5.csv` (Gaussian mixture), `fig2/fig5_flow.csv` (RealNVP), `fig2/fig5_asymptote.csv`.\n"
    );
    let _ = writeln!(
        md,
        "## P(collapse) against the dimension d\n\n![P(collapse) vs d](dim/fig_dim.png)\n\nSGD simulated exactly in the summary statistics (statistics engine) against the quasi-static ODE from the same initial conditions. Data: `dim/dim.csv`, one sweep per d in `dim/d<d>/`.\n"
    );
    output::write_text(&out.join("index.md"), &md)?;
    println!(
        "wrote {} ({:.0} s)",
        out.join("index.md").display(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

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
    let bar = crate::progress::bar(seeds as u64, "figure 3");
    for s in 0..seeds {
        let mut rec = Recorder::default();
        run_config(&cfg, s as u64, &mut rec);
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
            let dy = Dynamics::from_config(&cfg, &sched, quasi).map_err(Error::Invalid)?;
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
    crate::plot::panels_figure(&panels, 4, out, "fig3")
        .map_err(|e| Error::Invalid(e.to_string()))?;
    println!("wrote {}", out.join("fig3.png").display());
    Ok(())
}
