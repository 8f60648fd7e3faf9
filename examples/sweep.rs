//! A collapse-probability sweep from Rust: a 2 × 2 grid of exponential schedules plus the
//! unannealed cell, 32 seeds each, on the paper's problem (d = 512) with the statistics engine
//! (exact SGD in the summary statistics, cost independent of d). Resumable: run it twice and
//! the second call finds every run done.
//!
//!     cargo run --release --example sweep [OUT_DIR]

use annealvi::prelude::*;
use std::path::PathBuf;

fn main() -> Result<()> {
    let out = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("annealvi-example-sweep"));
    let toml = r#"
        [grid]
        beta_i = [0.01, 0.1]
        t0 = [1000, 4000]
        no_annealing = true
        seeds = 32
        extra_steps = 1000
        [run]
        seed = 7
        [run.student]
        simulation = "statistics"
        sigma0 = "schedule"
    "#;
    let path = std::env::temp_dir().join("annealvi-example-sweep.toml");
    std::fs::write(&path, toml).map_err(|e| Error::io(&path, "write", e))?;
    let cfg = SweepConfig::load(Some(&path), &[])?;
    let opts = SweepOptions {
        resume: true,
        ..SweepOptions::new(out.clone())
    };
    let report = run_sweep(&cfg, &opts)?;
    println!(
        "{} runs planned, {} already done, {} run now ({:.1} s); results in {}",
        report.planned,
        report.skipped,
        report.ran,
        report.seconds,
        out.display()
    );
    let runs = read_runs(&out.join("runs.jsonl"), false)?;
    println!("beta_i   t0      P(collapse)  95% interval");
    for c in aggregate(&runs) {
        let (lo, hi) = wilson_interval(c.collapsed, c.n);
        println!(
            "{:<8} {:<7} {:<12.3} [{lo:.3}, {hi:.3}]",
            c.cell.beta_i,
            c.cell.t0,
            c.p_collapse()
        );
    }
    Ok(())
}
