//! The `annealvi` command line: a thin layer over the library.

use annealvi::bench::{FlowBench, GmmBench};
use annealvi::config::{Config, Engine};
use annealvi::error::{Error, Result};
use annealvi::family::realnvp::Precision;
use annealvi::figure;
use annealvi::output;
use annealvi::run::run_config;
use annealvi::sweep::{self, Shard, SweepConfig, SweepOptions};
use annealvi::train::Recorder;
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
    /// Reproduce a figure of the paper (1 to 5).
    Figure {
        /// Figure: 1 to 5 (the paper's), or `dim` (P(collapse) against the dimension d).
        number: String,
        /// Smaller, faster version.
        #[arg(long, conflicts_with = "full")]
        quick: bool,
        /// Paper-scale version (the default; figure 4 at this scale is meant for a cluster/GPU).
        #[arg(long)]
        full: bool,
        /// Figure 5: the scale of its RealNVP panel's sweep, run (or resumed) in OUT/fig4:
        /// quick (default), full, or none (no RealNVP panel).
        #[arg(long, value_enum, default_value_t = FlowScale::Quick)]
        flow: FlowScale,
        /// Where the RealNVP sweep trains its flows: cpu, or gpu (a build with --features gpu).
        #[arg(long, value_enum, default_value_t = EngineArg::Cpu)]
        engine: EngineArg,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Base seed.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Worker threads (0 = all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Figure 4 only: draw from the finished runs of the RealNVP sweep in DIR (sweep.toml,
        /// runs.jsonl) instead of running a sweep; unfinished cells are crossed out.
        #[arg(long, value_name = "DIR")]
        from: Option<PathBuf>,
    },
    /// Collapse-probability sweep over (β_i, t0) × seeds; writes runs.jsonl, cells.csv.
    Sweep {
        /// Sweep configuration ([grid] and [run] tables; see configs/fig2-quick.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override a field, e.g. --set grid.seeds=10 or --set run.target.d=64.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Continue the sweep already in --out (skips finished runs).
        #[arg(long)]
        resume: bool,
        /// Run only shard K of N (round-robin over the runs), e.g. 2/8.
        #[arg(long)]
        shard: Option<String>,
        /// Print the number of runs and the estimated time, then exit.
        #[arg(long)]
        dry_run: bool,
        /// Worker threads (0 = all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
        /// Wall-time budget in minutes: start no run (GPU engines: no batch, nor one that would
        /// overrun it at the measured speed) after it; finished runs are kept and the sweep
        /// exits 0 saying how many runs are left (continue with --resume).
        #[arg(long, value_name = "M")]
        max_minutes: Option<f64>,
    },
    /// Collapse probability predicted by the quasi-static summary-statistics ODE on a sweep's
    /// grid (ODE Monte Carlo, same initial means as the sweep's seeds); writes theory.csv.
    Theory {
        /// Sweep configuration (as for `sweep`).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override a field.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Initial conditions per cell (default: the grid's seeds for `paired`, 10000 for
        /// `table`).
        #[arg(long)]
        ics: Option<usize>,
        /// `paired`: the sweep's own initial means, one ODE integration each (compare with
        /// SGD seed by seed); `table`: fresh draws classified by tabulated split thresholds
        /// (fast; fixed equal weights only).
        #[arg(long, default_value = "paired")]
        method: String,
        /// Worker threads (0 = all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// The fastest exponential schedule (β_i, t0) with predicted P(collapse) ≤ EPS (ODE Monte
    /// Carlo), checked by SGD; optionally compares schedule shapes at equal length.
    Design {
        /// Largest acceptable collapse probability, in (0, 1).
        #[arg(long)]
        max_collapse: f64,
        /// Sweep configuration for the model (target, student, optimiser, grid.extra_steps).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Override a field, e.g. --set run.target.d=64.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Initial conditions of the prediction.
        #[arg(long, default_value_t = 4000)]
        ics: usize,
        /// SGD seeds of the check (0 = skip it).
        #[arg(long, default_value_t = 100)]
        check_seeds: usize,
        /// Compare exponential, linear-in-β and linear-in-temperature schedules at these
        /// annealing lengths (comma-separated steps), e.g. 1000,2000,4000.
        #[arg(long, value_delimiter = ',')]
        compare: Vec<f64>,
        /// Also write the report to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Worker threads (0 = all cores).
        #[arg(long, default_value_t = 0)]
        threads: usize,
    },
    /// Merge sweep shards (same configuration) into one directory.
    Merge {
        /// Shard directories.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Every figure available so far, with its data and an index (out/index.md).
    Reproduce {
        /// Quick versions (default).
        #[arg(long, conflicts_with = "full")]
        quick: bool,
        /// Full (paper-scale) versions.
        #[arg(long)]
        full: bool,
        /// Scale of the RealNVP figure (4, and Figure 5's flow panel): quick (default, also
        /// with --full: the paper-scale flow sweep needs ~1.5e7 steps at d = 128, a cluster's
        /// or a GPU's work), full, or none.
        #[arg(long, value_enum, default_value_t = FlowScale::Quick)]
        flow: FlowScale,
        /// Where the RealNVP sweep trains its flows: cpu, or gpu (a build with --features gpu).
        #[arg(long, value_enum, default_value_t = EngineArg::Cpu)]
        engine: EngineArg,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
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

/// Engines for `bench gmm`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum BenchEngine {
    Vector,
    Statistics,
    Both,
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
        /// SGD engine: `vector` (d-dimensional samples), `statistics` (exact simulation in the
        /// summary statistics, cost independent of d) or `both` (vector, then statistics, in
        /// one process, and their ratio).
        #[arg(long, default_value = "vector")]
        engine: BenchEngine,
        /// Rounds: with `--engine both`, the engines alternate this many times and the
        /// median of the per-round ratios is printed (robust to a machine whose speed drifts).
        #[arg(long, default_value_t = 1)]
        rounds: usize,
    },
    /// RealNVP reverse-KL training steps (8 couplings, depth-4 ReLU MLPs, Adam, β = 1):
    /// prints `steps/s: <number>` last (steps per second of one flow).
    Flow {
        /// Dimension d ≥ 2.
        #[arg(long, default_value_t = 16)]
        d: usize,
        /// MLP hidden width h.
        #[arg(long, default_value_t = 64)]
        width: usize,
        /// Batch B.
        #[arg(long, default_value_t = 256)]
        batch: usize,
        /// Timed steps.
        #[arg(long, default_value_t = 200)]
        steps: usize,
        /// Independent flows trained concurrently, one per thread (each single-threaded).
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Precision of the batched passes: f32 or f64.
        #[arg(long, default_value = "f32")]
        precision: String,
    },
    /// RealNVP training steps on CUDA device 0 (feature `gpu`; the `bench flow` model, F flows
    /// batched, device noise, f32): prints `steps/s: <number>` last (one step advances every
    /// flow).
    #[cfg(feature = "gpu")]
    FlowGpu {
        /// Dimension d ≥ 2.
        #[arg(long, default_value_t = 16)]
        d: usize,
        /// MLP hidden width h.
        #[arg(long, default_value_t = 64)]
        width: usize,
        /// Batch B per flow.
        #[arg(long, default_value_t = 256)]
        batch: usize,
        /// Timed steps.
        #[arg(long, default_value_t = 500)]
        steps: usize,
        /// Untimed warm-up steps.
        #[arg(long, default_value_t = 20)]
        warmup: usize,
        /// Independent flows trained at once.
        #[arg(long, default_value_t = 1)]
        flows: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    annealvi::progress::terminal::install();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Scale of the RealNVP sweep behind Figure 4 and Figure 5's flow panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum FlowScale {
    /// configs/fig4-quick.toml (d = 16, minutes on 2 cores).
    Quick,
    /// configs/fig4.toml (the paper's d = 128 flows, 200 runs per cell).
    Full,
    /// No RealNVP figure.
    None,
}

impl FlowScale {
    /// `Some(quick?)`, or `None` for no flow figure.
    fn quick(self) -> Option<bool> {
        match self {
            FlowScale::Quick => Some(true),
            FlowScale::Full => Some(false),
            FlowScale::None => None,
        }
    }
}

/// `--engine` of the figure commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum EngineArg {
    /// One flow per CPU thread.
    Cpu,
    /// Batches of flows on CUDA device 0 (feature `gpu`).
    Gpu,
}

impl EngineArg {
    fn engine(self) -> annealvi::sweep::Engine {
        match self {
            EngineArg::Cpu => annealvi::sweep::Engine::Cpu,
            EngineArg::Gpu => annealvi::sweep::Engine::Gpu,
        }
    }
}

impl Command {
    /// `--threads` of the commands that run on a rayon pool (the benchmarks manage their own
    /// threads).
    fn threads(&self) -> Option<usize> {
        match self {
            Command::Figure { threads, .. }
            | Command::Sweep { threads, .. }
            | Command::Theory { threads, .. }
            | Command::Design { threads, .. }
            | Command::Reproduce { threads, .. } => Some(*threads),
            Command::Train { .. } | Command::Merge { .. } | Command::Bench { .. } => None,
        }
    }
}

/// Runs the command; those with `--threads` run inside one rayon pool of that many threads
/// (0 = all cores), which every parallel loop of the library uses.
fn run(cli: Cli) -> Result<()> {
    match cli.command.threads() {
        Some(threads) => {
            check_threads(threads)?;
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .map_err(|e| Error::Invalid(format!("cannot start {threads} threads: {e}")))?;
            pool.install(|| execute(cli.command))
        }
        None => execute(cli.command),
    }
}

fn execute(command: Command) -> Result<()> {
    match command {
        Command::Train { config, sets, out } => train(config, &sets, &out),
        Command::Figure {
            number,
            quick,
            full: _,
            flow,
            engine,
            out,
            seed,
            threads: _,
            from,
        } => {
            if number == "dim" {
                figure::figure_dim(&out, quick)?;
                return Ok(());
            }
            let number: u32 = number
                .parse()
                .map_err(|_| Error::config("figure", &number, "1, 2, 3, 4, 5 or dim"))?;
            if number == 4 || (number == 5 && flow != FlowScale::None) {
                check_engine(engine)?;
            }
            let engine = engine.engine();
            if let Some(dir) = from {
                if number != 4 {
                    return Err(Error::config(
                        "--from",
                        dir.display(),
                        "only with figure 4 (a RealNVP sweep directory)",
                    ));
                }
                let p = figure::figure4_from(&dir, &out)?;
                println!(
                    "Figure 4 from {}: {}/{} runs ({:.1}%), {}/{} cells, {}/{} training steps \
                     ({:.1}%) done; wrote {}",
                    dir.display(),
                    p.runs_done,
                    p.runs_planned,
                    100.0 * p.fraction(),
                    p.cells_done,
                    p.cells_planned,
                    p.steps_done,
                    p.steps_planned,
                    100.0 * p.steps_done as f64 / p.steps_planned.max(1) as f64,
                    out.join("fig4.png").display()
                );
                return Ok(());
            }
            match number {
                1 => figure::figure1(&out, quick, seed),
                2 => figure::figure2(&out, quick),
                3 => figure::figure3(&out, quick, seed),
                4 => figure::figure4(&out, quick, engine),
                5 => {
                    let dir = out.join("fig4");
                    let flow = flow.quick().map(|q| (dir.as_path(), q, engine));
                    figure::figure5(&out, quick, flow)
                }
                n => Err(Error::config("figure", n, "1, 2, 3, 4, 5 or dim")),
            }
        }
        Command::Sweep {
            config,
            sets,
            out,
            resume,
            shard,
            dry_run,
            threads: _,
            max_minutes,
        } => {
            let budget = max_minutes.map(budget_of).transpose()?;
            let cfg = SweepConfig::load(config.as_deref(), &sets)?;
            let shard = shard.as_deref().map(Shard::parse).transpose()?;
            if dry_run {
                return dry_run_report(&cfg, shard, &out, resume);
            }
            let rep = sweep::run_sweep(
                &cfg,
                &SweepOptions {
                    out: out.clone(),
                    resume,
                    shard,
                    max_runs: None,
                    budget,
                },
            )?;
            println!(
                "{} runs in this sweep{}: {} already done, {} run in {:.1} s; wrote {}",
                rep.planned,
                shard.map_or(String::new(), |s| format!(
                    " (shard {}/{})",
                    s.index, s.count
                )),
                rep.skipped,
                rep.ran,
                rep.seconds,
                out.join("cells.csv").display()
            );
            if rep.remaining > 0 {
                println!(
                    "sweep incomplete: the --max-minutes budget ran out with {} of {} runs left; \
                     run the same command with --resume to continue",
                    rep.remaining, rep.planned
                );
            }
            Ok(())
        }
        Command::Theory {
            config,
            sets,
            out,
            ics,
            method,
            threads: _,
        } => {
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
            if let Some(model) = annealvi::theory::formula::FormulaModel::from_sweep(&cfg) {
                let logs: Vec<f64> = cells
                    .iter()
                    .map(|c| c.cell.rate().ln())
                    .filter(|x| *x > 0.0)
                    .collect();
                let lo = logs.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = logs.iter().copied().fold(0.0, f64::max);
                if lo.is_finite() {
                    let summary = annealvi::theory::formula::write_asymptote(
                        &out,
                        &model,
                        (lo * 0.5, hi * 2.0),
                        40,
                    )?;
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
        Command::Design {
            max_collapse,
            config,
            sets,
            ics,
            check_seeds,
            compare,
            out,
            threads: _,
        } => {
            if !(max_collapse > 0.0 && max_collapse < 1.0) {
                return Err(Error::config(
                    "--max-collapse",
                    max_collapse,
                    "a probability in (0, 1)",
                ));
            }
            check_range("--ics", ics, 100, 1 << 22)?;
            check_range("--check-seeds", check_seeds, 0, 1 << 20)?;
            for (i, &t) in compare.iter().enumerate() {
                if !(t.is_finite() && (1.0..=1e7).contains(&t)) {
                    return Err(Error::config("--compare", t, "steps in [1, 1e7]"));
                }
                if compare[..i].contains(&t) {
                    return Err(Error::config(
                        "--compare",
                        t,
                        "distinct lengths (given twice)",
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
        Command::Merge { dirs, out } => {
            let rep = sweep::merge(&dirs, &out)?;
            for w in &rep.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "merged {} runs from {} directories into {}",
                rep.runs,
                dirs.len(),
                out.display()
            );
            Ok(())
        }
        Command::Reproduce {
            quick: _,
            full,
            flow,
            engine,
            out,
            threads: _,
        } => {
            if flow != FlowScale::None {
                check_engine(engine)?;
            }
            figure::reproduce(&out, !full, flow.quick(), engine.engine())
        }
        Command::Bench {
            which:
                BenchCommand::Gmm {
                    d,
                    seeds,
                    samples,
                    steps,
                    threads,
                    engine,
                    rounds,
                },
        } => {
            check_range("--d", d, 1, 1 << 20)?;
            check_range("--rounds", rounds, 1, 1000)?;
            check_range("--seeds", seeds, 1, 1 << 24)?;
            check_range("--samples", samples, 1, 1 << 20)?;
            check_range("--steps", steps, 1, 1 << 30)?;
            check_threads(threads)?;
            let engines: &[Engine] = match engine {
                BenchEngine::Vector => &[Engine::Vector],
                BenchEngine::Statistics => &[Engine::Statistics],
                BenchEngine::Both => &[Engine::Vector, Engine::Statistics],
            };
            println!(
                "bench gmm: d={d} seeds={seeds} samples/component={samples} steps={steps} threads={}",
                if threads == 0 {
                    rayon::current_num_threads()
                } else {
                    threads
                }
            );
            let mut rates = Vec::new();
            let mut ratios = Vec::new();
            for round in 0..rounds {
                rates.clear();
                for &engine in engines {
                    let b = GmmBench {
                        d,
                        seeds,
                        samples,
                        steps,
                        threads,
                        engine,
                    };
                    let r = b.run()?;
                    let tag = if rounds > 1 {
                        format!(" (round {})", round + 1)
                    } else {
                        String::new()
                    };
                    println!(
                        "engine {engine:?}{tag}: wall {:.3} s; mean light-mode mass {:.4}; {:.1} run-steps/s",
                        r.seconds, r.mean_light_mass, r.run_steps_per_sec
                    );
                    rates.push(r.run_steps_per_sec);
                }
                if let [v, s] = rates[..] {
                    ratios.push(s / v);
                }
            }
            if !ratios.is_empty() {
                ratios.sort_by(f64::total_cmp);
                let median = ratios[ratios.len() / 2];
                if ratios.len() > 1 {
                    println!(
                        "statistics / vector: {median:.2}x (median of {} rounds; range {:.2}-{:.2})",
                        ratios.len(),
                        ratios[0],
                        ratios[ratios.len() - 1]
                    );
                } else {
                    println!("statistics / vector: {median:.2}x");
                }
            }
            println!("run-steps/s: {:.1}", rates[rates.len() - 1]);
            Ok(())
        }
        Command::Bench {
            which:
                BenchCommand::Flow {
                    d,
                    width,
                    batch,
                    steps,
                    threads,
                    precision,
                },
        } => {
            check_range("--d", d, 2, 1 << 16)?;
            check_range("--width", width, 1, 1 << 16)?;
            check_range("--batch", batch, 1, 1 << 20)?;
            check_range("--steps", steps, 1, 1 << 30)?;
            check_range("--threads", threads, 1, 1024)?;
            let precision = match precision.as_str() {
                "f32" => Precision::F32,
                "f64" => Precision::F64,
                other => return Err(Error::config("--precision", other, "f32 or f64")),
            };
            let b = FlowBench {
                d,
                width,
                batch,
                steps,
                threads,
                precision,
            };
            println!(
                "bench flow: d={d} width={width} batch={batch} steps={steps} threads={threads} precision={precision:?} (8 couplings, depth-4 relu MLPs, Adam 1e-3)"
            );
            let r = b.run()?;
            println!(
                "wall (flow 0): {:.3} s; loss {:.3} -> {:.3}; run-steps/s (all flows): {:.2}",
                r.seconds, r.loss.0, r.loss.1, r.run_steps_per_sec
            );
            println!("steps/s: {:.3}", r.steps_per_sec);
            Ok(())
        }
        #[cfg(feature = "gpu")]
        Command::Bench {
            which:
                BenchCommand::FlowGpu {
                    d,
                    width,
                    batch,
                    steps,
                    warmup,
                    flows,
                },
        } => {
            check_range("--d", d, 2, 1 << 16)?;
            check_range("--width", width, 1, 1 << 16)?;
            check_range("--batch", batch, 1, 1 << 20)?;
            check_range("--steps", steps, 1, 1 << 30)?;
            check_range("--warmup", warmup, 0, 1 << 30)?;
            check_range("--flows", flows, 1, 1 << 16)?;
            println!(
                "bench flow-gpu: d={d} width={width} batch={batch} steps={steps} flows={flows} (8 couplings, depth-4 relu MLPs, Adam 1e-3, f32)"
            );
            let r = annealvi::family::realnvp_gpu::bench_training(
                d, width, batch, steps, flows, warmup, false,
            )?;
            println!(
                "device: {}; wall {:.3} s; loss (flow 0) {:.3} -> {:.3}; run-steps/s (all flows): {:.2}",
                r.device, r.seconds, r.loss.0, r.loss.1, r.run_steps_per_sec
            );
            println!("steps/s: {:.3}", r.steps_per_sec);
            Ok(())
        }
    }
}

/// `--dry-run`: the number of runs left and an estimate of the time, from a short timed run.
fn dry_run_report(
    cfg: &SweepConfig,
    shard: Option<Shard>,
    out: &std::path::Path,
    resume: bool,
) -> Result<()> {
    let cells = cfg.cells();
    let all = cfg.runs();
    let done: std::collections::HashSet<(u64, u64, usize)> = if resume {
        sweep::read_runs(&out.join("runs.jsonl"), false)?
            .iter()
            .map(|r| (r.beta_i.to_bits(), r.t0.to_bits(), r.seed))
            .collect()
    } else {
        Default::default()
    };
    let todo: Vec<sweep::RunSpec> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| shard.is_none_or(|s| s.contains(*i)))
        .map(|(_, r)| *r)
        .filter(|r| {
            let c = cells[r.cell];
            !done.contains(&(c.beta_i.to_bits(), c.t0.to_bits(), r.seed))
        })
        .collect();
    let steps = cfg.total_steps(&todo, &cells);
    // calibrate: one short run of the first cell's configuration
    let mut probe = cfg.cell_config(&cells[0]);
    probe.optim.steps = 300;
    let t = Instant::now();
    if probe.student.family == annealvi::config::FamilyKind::Realnvp {
        annealvi::run::run_flow_with_streams(&probe, (0, 0), &mut annealvi::train::NoObserver)?;
    } else {
        annealvi::run::run_config(&probe, 0, &mut annealvi::train::NoObserver);
    }
    let per_step = t.elapsed().as_secs_f64() / 300.0;
    let workers = rayon::current_num_threads();
    let secs = steps as f64 * per_step / workers as f64;
    println!(
        "{} cells x {} seeds = {} runs; {} to run{} ({} training steps)",
        cells.len(),
        cfg.grid.seeds,
        all.len(),
        todo.len(),
        shard.map_or(String::new(), |s| format!(
            " in shard {}/{}",
            s.index, s.count
        )),
        steps
    );
    if cfg.grid.engine == annealvi::sweep::Engine::Cpu {
        println!(
            "estimated time on this machine: {:.0} s ({:.1} min) with {workers} threads",
            secs,
            secs / 60.0
        );
    } else {
        println!(
            "estimated time with the CPU engine: {:.0} s ({:.1} min) with {workers} threads \
             (no estimate for the GPU engine: time one batch, e.g. scripts/gpu-check.sh)",
            secs,
            secs / 60.0
        );
    }
    Ok(())
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

/// Refuses `--engine gpu` in a build without the `gpu` feature, before any work.
fn check_engine(engine: EngineArg) -> Result<()> {
    if engine == EngineArg::Gpu && !cfg!(feature = "gpu") {
        return Err(Error::config(
            "--engine",
            "gpu",
            "cpu in this build (the GPU engine, grid.engine = \"gpu\", needs `cargo build --release --features gpu`)",
        ));
    }
    Ok(())
}

/// `--max-minutes M` as a duration: M in [0, 525600] (a year).
fn budget_of(m: f64) -> Result<std::time::Duration> {
    if !(0.0..=525_600.0).contains(&m) {
        return Err(Error::config("--max-minutes", m, "minutes in [0, 525600]"));
    }
    Ok(std::time::Duration::from_secs_f64(m * 60.0))
}

fn check_threads(t: usize) -> Result<()> {
    check_range("--threads", t, 0, 1024)
}

/// Checks, before any work, that a report can be written at `p`: its directory is created
/// if missing and must be writable, and `p` must not be a directory.
fn check_writable_file(p: &std::path::Path) -> Result<()> {
    if p.is_dir() {
        return Err(Error::config(
            "--out",
            p.display(),
            "a file path (it is a directory)",
        ));
    }
    match p.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => output::ensure_dir(d),
        None => output::ensure_dir(std::path::Path::new(".")),
    }
}

fn train(config: Option<PathBuf>, sets: &[String], out: &std::path::Path) -> Result<()> {
    let mut cfg = Config::load(config.as_deref(), sets)?;
    if cfg.record.marginal_steps.is_empty() {
        let t = cfg.optim.steps;
        cfg.record.marginal_steps = vec![0, t / 4, t / 2, t];
    }
    output::ensure_dir(out)?;
    output::write_text(&out.join("config.toml"), &cfg.to_toml())?;
    if cfg.student.family == annealvi::config::FamilyKind::Realnvp {
        return train_flow(&cfg, out);
    }
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
            "{} after {} steps (light-mode mass {:.4}, KL(q||pi) {}); {:.2} s; wrote {}",
            res.outcome.label(),
            res.final_step,
            res.light_mode_mass,
            if final_kl.is_finite() {
                format!("{final_kl:.4}")
            } else {
                "not recorded".into()
            },
            wall,
            out.display()
        ),
    }
    Ok(())
}

/// `train` for the RealNVP student: trajectory.jsonl (one record per line) and summary.json.
fn train_flow(cfg: &Config, out: &std::path::Path) -> Result<()> {
    let start = Instant::now();
    let mut rec = Recorder::default();
    let (_q, res) = annealvi::run::run_flow_with_streams(cfg, (0, 0), &mut rec)?;
    let wall = start.elapsed().as_secs_f64();
    let mut lines = String::new();
    for r in &rec.flow_records {
        lines.push_str(&serde_json::to_string(r).unwrap_or_default());
        lines.push('\n');
    }
    output::write_text(&out.join("trajectory.jsonl"), &lines)?;
    let summary = serde_json::json!({
        "seed": cfg.seed,
        "wall_seconds": wall,
        "result": res,
    });
    output::write_text(
        &out.join("summary.json"),
        &format!(
            "{}\n",
            serde_json::to_string_pretty(&summary).unwrap_or_default()
        ),
    )?;
    println!(
        "{} after {} steps (light-mode mass {:.4}, ESS/N {:.3}, KL(q||pi) {:.4}); {:.2} s; wrote {}",
        res.outcome.label(),
        res.final_step,
        res.light_mode_mass,
        res.stats.ess_fraction,
        res.stats.kl,
        wall,
        out.display()
    );
    Ok(())
}
