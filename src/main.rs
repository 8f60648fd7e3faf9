//! The `annealvi` command line: a thin layer over the library.

use annealvi::bench::GmmBench;
use annealvi::config::Config;
use annealvi::error::{Error, Result};
use annealvi::figure;
use annealvi::output;
use annealvi::train::{Recorder, run_config};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Annealed variational inference and mode collapse (Fogliani, Loureiro & Gabrié 2026).
#[derive(Parser, Debug)]
#[command(name = "annealvi", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Train one Gaussian-mixture student; writes config.toml, trajectory.csv, summary.json,
    /// marginals.csv into --out.
    Train {
        /// TOML configuration (every field optional; defaults are the paper's setting).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override a field, e.g. --set target.d=64 (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Output directory (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Reproduce a figure of the paper (available: 1).
    Figure {
        /// Figure number.
        number: u32,
        /// Smaller, faster version.
        #[arg(long)]
        quick: bool,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Base seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Worker threads (0 = all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Throughput benchmarks.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// SGD on the paper's problem (no annealing): prints `run-steps/s: <number>` last.
    Gmm {
        /// Dimension d.
        #[arg(long, default_value_t = 512)]
        d: usize,
        /// Independent runs S.
        #[arg(long, default_value_t = 100)]
        seeds: usize,
        /// Samples per component B.
        #[arg(long, default_value_t = 32)]
        samples: usize,
        /// SGD steps per run T.
        #[arg(long, default_value_t = 200)]
        steps: usize,
        /// Worker threads (0 = all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train { config, sets, out } => train(config, &sets, &out),
        Command::Figure {
            number,
            quick,
            out,
            seed,
            threads,
        } => {
            check_threads(threads)?;
            match number {
                1 => figure::figure1(&out, quick, seed, threads),
                n => Err(Error::config(
                    "figure number",
                    n,
                    "1 (figures 2-5 arrive with the sweep, theory and flow issues)",
                )),
            }
        }
        Command::Bench {
            which:
                BenchCommand::Gmm {
                    d,
                    seeds,
                    samples,
                    steps,
                    threads,
                },
        } => {
            check_range("--d", d, 1, 1 << 20)?;
            check_range("--seeds", seeds, 1, 1 << 24)?;
            check_range("--samples", samples, 1, 1 << 20)?;
            check_range("--steps", steps, 1, 1 << 30)?;
            check_threads(threads)?;
            let b = GmmBench {
                d,
                seeds,
                samples,
                steps,
                threads,
            };
            println!(
                "bench gmm: d={d} seeds={seeds} samples/component={samples} steps={steps} threads={}",
                if threads == 0 {
                    rayon::current_num_threads()
                } else {
                    threads
                }
            );
            let r = b.run()?;
            println!(
                "wall: {:.3} s; mean light-mode mass {:.4}",
                r.seconds, r.mean_light_mass
            );
            println!("run-steps/s: {:.1}", r.run_steps_per_sec);
            Ok(())
        }
    }
}

fn check_range(name: &str, v: usize, lo: usize, hi: usize) -> Result<()> {
    if v < lo || v > hi {
        return Err(Error::config(
            name,
            v,
            &format!("an integer in [{lo}, {hi}]"),
        ));
    }
    Ok(())
}

fn check_threads(t: usize) -> Result<()> {
    check_range("--threads", t, 0, 1024)
}

fn train(config: Option<PathBuf>, sets: &[String], out: &std::path::Path) -> Result<()> {
    let mut cfg = Config::load(config.as_deref(), sets)?;
    if cfg.record.marginal_steps.is_empty() {
        let t = cfg.optim.steps;
        cfg.record.marginal_steps = vec![0, t / 4, t / 2, t];
    }
    output::ensure_dir(out)?;
    output::write_text(&out.join("config.toml"), &cfg.to_toml())?;
    let start = Instant::now();
    let mut rec = Recorder::default();
    let (_q, res) = run_config(&cfg, 0, &mut rec);
    let wall = start.elapsed().as_secs_f64();
    let k = cfg.student.components;
    output::write_text(
        &out.join("trajectory.csv"),
        &output::trajectory_csv(k, &rec.records),
    )?;
    output::write_text(
        &out.join("marginals.csv"),
        &output::marginals_csv(&rec.marginals),
    )?;
    let final_kl = rec.records.last().map_or(f64::NAN, |r| r.kl);
    output::write_text(
        &out.join("summary.json"),
        &output::summary_json(&res, cfg.seed, wall, final_kl),
    )?;
    match res.outcome {
        annealvi::metrics::Outcome::Diverged { step } => println!(
            "diverged at step {step} (a non-finite loss, gradient or parameter); {wall:.2} s; wrote {}",
            out.display()
        ),
        _ => println!(
            "{} after {} steps (light-mode mass {:.4}, KL(q||pi) {:.4}); {:.2} s; wrote {}",
            res.outcome.label(),
            res.final_step,
            res.light_mode_mass,
            final_kl,
            wall,
            out.display()
        ),
    }
    Ok(())
}
