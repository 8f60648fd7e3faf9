//! `annealvi theory` (the ODE's P(collapse) on a sweep's grid) and `annealvi design` (the
//! fastest schedule under a collapse tolerance).

use super::args::{DesignArgs, TheoryArgs};
use super::{check_range, check_writable_file};
use annealvi::error::{Error, Result};
use annealvi::figure;
use annealvi::output;
use annealvi::sweep::SweepConfig;
use std::time::Instant;

/// `annealvi theory`.
pub fn theory(a: TheoryArgs) -> Result<()> {
    let TheoryArgs {
        config,
        sets,
        out,
        ics,
        method,
        threads: _,
    } = a;
    let cfg = SweepConfig::load(config.as_deref(), &sets)?;
    let method = match method.as_str() {
        "paired" => annealvi::theory::grid::IcMethod::Paired,
        "table" => annealvi::theory::grid::IcMethod::Table,
        other => {
            return Err(Error::Invalid(format!(
                "--method: \"{other}\" is not one of \"paired\", \"table\""
            )));
        }
    };
    let n = ics.unwrap_or(match method {
        annealvi::theory::grid::IcMethod::Paired => cfg.grid.seeds,
        annealvi::theory::grid::IcMethod::Table => 10_000,
    });
    check_range("--ics", n, 1, 1 << 24)?;
    output::ensure_dir(&out)?;
    let start = Instant::now();
    let cells = annealvi::theory::grid::theory_grid(&cfg, n, method)?;
    annealvi::theory::grid::write_theory(&out, &cells)?;
    let failed = cells.iter().filter(|c| c.n > 0 && c.failed >= c.n).count();
    if failed > 0 {
        eprintln!(
            "warning: in {failed} of {} cells every ODE integration failed; their \
             p_ode is NaN in theory.csv (column `failed` counts the failures)",
            cells.len()
        );
    }
    figure::theory_map(&out, &cells)?;
    // the sharp formula's largest gap to the ODE Monte Carlo (per cell: theory.csv, column gap)
    let worst = cells
        .iter()
        .filter(|c| c.n > c.failed && c.p_formula.is_finite())
        .map(|c| {
            let p = c.collapsed as f64 / c.n as f64;
            ((p - c.p_formula).abs(), c)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((gap, c)) = worst {
        println!(
            "sharp formula vs ODE: largest |p_formula - p_ode| = {gap:.3} at beta_i = {}, t0 = {} \
             (p_ode {:.3}, p_formula {:.3})",
            c.cell.beta_i,
            c.cell.t0,
            c.collapsed as f64 / c.n as f64,
            c.p_formula
        );
    }
    if let Some(model) = annealvi::theory::formula::FormulaModel::from_sweep(&cfg) {
        let logs: Vec<f64> = cells
            .iter()
            .map(|c| c.cell.rate().ln())
            .filter(|x| *x > 0.0)
            .collect();
        let lo = logs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = logs.iter().copied().fold(0.0, f64::max);
        if lo.is_finite() {
            let summary =
                annealvi::theory::formula::write_asymptote(&out, &model, (lo * 0.5, hi * 2.0), 40)?;
            println!("{summary}; wrote {}", out.join("asymptote.csv").display());
        }
    }
    println!(
        "{} cells x {n} initial conditions in {:.1} s; wrote {}",
        cells.len(),
        start.elapsed().as_secs_f64(),
        out.join("theory.csv").display()
    );
    Ok(())
}

/// `annealvi design`.
pub fn design(a: DesignArgs) -> Result<()> {
    let DesignArgs {
        max_collapse,
        shape,
        budget,
        segments,
        config,
        sets,
        ics,
        check_seeds,
        compare,
        out,
        threads: _,
    } = a;
    if let Some(eps) = max_collapse
        && !(eps > 0.0 && eps < 1.0)
    {
        return Err(Error::config(
            "--max-collapse",
            eps,
            "a probability in (0, 1)",
        ));
    }
    match shape.as_str() {
        "exponential" => {
            if let Some(b) = budget {
                return Err(Error::config(
                    "--budget",
                    b,
                    "no --budget with --shape exponential (it finds the fastest t0 under \
                     --max-collapse); use --shape optimal",
                ));
            }
        }
        "optimal" => {
            return design_optimal(
                max_collapse,
                budget,
                segments,
                config,
                sets,
                (ics, check_seeds),
                out,
            );
        }
        other => {
            return Err(Error::config(
                "--shape",
                format!("\"{other}\""),
                "\"exponential\" or \"optimal\"",
            ));
        }
    }
    let Some(max_collapse) = max_collapse else {
        return Err(Error::Invalid(
            "design needs --max-collapse EPS (or --shape optimal with --budget T)".into(),
        ));
    };
    let ics = ics.unwrap_or(4000);
    check_range("--ics", ics, 100, 1 << 22)?;
    check_range("--check-seeds", check_seeds, 0, 1 << 20)?;
    for (i, &t) in compare.iter().enumerate() {
        if !(t.is_finite() && (1.0..=1e7).contains(&t)) {
            return Err(Error::config("--compare", t, "steps in [1, 1e7]"));
        }
        // lengths are whole steps: 1000 and 1000.4 are the same schedule
        if let Some(u) = compare[..i].iter().find(|u| u.round() == t.round()) {
            return Err(Error::config(
                "--compare",
                t,
                &format!(
                    "distinct lengths in whole steps ({t} rounds to {}, as {u} given before)",
                    t.round()
                ),
            ));
        }
    }
    let cfg = SweepConfig::load(config.as_deref(), &sets)?;
    annealvi::theory::grid::check_theory_applies(&cfg)?;
    if let Some(p) = &out {
        // before the work: the report must have somewhere to go
        check_writable_file(p)?;
    }
    let start = Instant::now();
    let report = annealvi::design::run(
        &cfg,
        &annealvi::design::DesignOptions {
            max_collapse,
            ics,
            check_seeds,
            compare_t0: compare,
        },
    )?;
    print!("{report}");
    println!("({:.1} s)", start.elapsed().as_secs_f64());
    if let Some(p) = out {
        output::write_text(&p, &report)?;
    }
    Ok(())
}

/// `annealvi design --shape optimal`.
fn design_optimal(
    max_collapse: Option<f64>,
    budget: Option<f64>,
    segments: usize,
    config: Option<std::path::PathBuf>,
    sets: Vec<String>,
    (ics, check_seeds): (Option<usize>, usize),
    out: Option<std::path::PathBuf>,
) -> Result<()> {
    check_range("--segments", segments, 2, 64)?;
    match (budget, max_collapse) {
        (None, None) => {
            return Err(Error::Invalid(
                "--shape optimal needs --budget T (the optimal schedule at T steps) or \
                 --max-collapse EPS (the shortest budget reaching EPS)"
                    .into(),
            ));
        }
        (Some(_), Some(_)) => {
            return Err(Error::Invalid(
                "--shape optimal takes --budget or --max-collapse, not both".into(),
            ));
        }
        (Some(b), None) => {
            if !(b.is_finite() && b >= segments as f64 && b <= 1e7) {
                return Err(Error::config(
                    "--budget",
                    b,
                    &format!("a number of steps in [{segments} (= --segments), 1e7]"),
                ));
            }
        }
        (None, Some(_)) => {}
    }
    let ics = ics.unwrap_or(10_000);
    check_range("--ics", ics, 100, 1 << 22)?;
    check_range("--check-seeds", check_seeds, 0, 1 << 20)?;
    let cfg = SweepConfig::load(config.as_deref(), &sets)?;
    annealvi::theory::grid::check_theory_applies(&cfg)?;
    if let Some(p) = &out {
        check_writable_file(p)?;
    }
    let start = Instant::now();
    let rep = annealvi::design::optimal::run(
        &cfg,
        &annealvi::design::optimal::OptimalOptions {
            budget,
            max_collapse,
            segments,
            ics,
            check_seeds,
        },
    )?;
    print!("{}", rep.text);
    let section = rep
        .toml
        .find("[schedule]")
        .map(|i| {
            let rest = &rep.toml[i..];
            let end = rest[1..].find("\n[").map_or(rest.len(), |j| j + 1);
            &rest[..end]
        })
        .unwrap_or(&rep.toml);
    println!("```toml\n{}\n```", section.trim_end());
    println!("({:.1} s)", start.elapsed().as_secs_f64());
    if let Some(p) = out {
        output::write_text(&p, &rep.toml)?;
        println!(
            "wrote {} (annealvi train --config {} --out DIR)",
            p.display(),
            p.display()
        );
    }
    Ok(())
}
