//! The command line's grammar (clap): the commands, their flags, defaults and help texts.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Annealed variational inference and mode collapse (Fogliani, Loureiro & Gabrié 2026).
#[derive(Parser, Debug)]
#[command(name = "annealvi", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train one Gaussian-mixture student; writes config.toml, trajectory.csv, summary.json,
    /// marginals.csv into --out.
    Train(TrainArgs),
    /// Reproduce a figure of the paper (1 to 5).
    Figure(FigureArgs),
    /// Collapse-probability sweep over (β_i, t0) × seeds; writes runs.jsonl, cells.csv.
    Sweep(SweepArgs),
    /// Collapse probability predicted by the quasi-static summary-statistics ODE on a sweep's
    /// grid (ODE Monte Carlo, same initial means as the sweep's seeds); writes theory.csv.
    Theory(TheoryArgs),
    /// The fastest exponential schedule (β_i, t0) with predicted P(collapse) ≤ EPS (ODE Monte
    /// Carlo), checked by SGD; optionally compares schedule shapes at equal length.
    Design(DesignArgs),
    /// Merge sweep shards (same configuration) into a new directory (--out) or into an
    /// existing sweep (--into).
    Merge(MergeArgs),
    /// Every figure available so far, with its data and an index (out/index.md).
    Reproduce(ReproduceArgs),
    /// Throughput benchmarks.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// TOML configuration (every field optional; defaults are the paper's setting).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a field, e.g. --set target.d=64 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Args, Debug)]
pub struct FigureArgs {
    /// Figure: 1 to 5 (the paper's), `dim` (P(collapse) against the dimension d), or
    /// `schedules` (optimal against exponential schedules at equal budgets, predicted and by
    /// SGD), `schedules-flow` (the mixture's optimal shape carried to a RealNVP flow), or
    /// `adaptive` (the adaptive schedule against the alternatives on four problems).
    pub number: String,
    /// Smaller, faster version.
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// Paper-scale version (the default; figure 4 at this scale is meant for a cluster/GPU).
    #[arg(long)]
    pub full: bool,
    /// Figure 5 only: the scale of its RealNVP panel's sweep, run (or resumed) in OUT/fig4:
    /// quick (default), full, or none (no RealNVP panel).
    #[arg(long, value_enum)]
    pub flow: Option<FlowScale>,
    /// Figures 4 and 5 only: where the RealNVP sweep trains its flows: cpu (default), or gpu
    /// (a build with --features gpu). (Formerly --engine, still accepted.)
    #[arg(long, value_enum, alias = "engine")]
    pub device: Option<DeviceArg>,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Figures 1 and 3 only: base seed (default 0).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Figures `schedules`, `schedules-flow` and `adaptive` only: SGD seeds per schedule
    /// (default 100 quick, 2000 full; schedules-flow: runs per schedule, default 16 quick, 64
    /// full; adaptive: evaluation seeds per schedule of every problem).
    #[arg(long, value_name = "N")]
    pub seeds: Option<usize>,
    /// Figure `schedules` only: annealing budgets T in steps, comma-separated (default 500,
    /// 1000, 2000 quick; nine budgets from 1000 to 4000, and 8000 full).
    #[arg(long, value_name = "T1,T2,...", value_delimiter = ',')]
    pub budgets: Option<Vec<f64>>,
    /// Figure 4 only: draw from the finished runs of the RealNVP sweep in DIR (sweep.toml,
    /// runs.jsonl) instead of running a sweep; unfinished cells are crossed out.
    #[arg(long, value_name = "DIR")]
    pub from: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Sweep configuration ([grid] and [run] tables; see configs/fig2-quick.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a field, e.g. --set grid.seeds=10 or --set run.target.d=64.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Continue the sweep already in --out (skips finished runs).
    #[arg(long)]
    pub resume: bool,
    /// Run only shard K of N (round-robin over the runs), e.g. 2/8.
    #[arg(long)]
    pub shard: Option<String>,
    /// Print the number of runs and the estimated time, then exit.
    #[arg(long)]
    pub dry_run: bool,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Wall-time budget in minutes: start no run (GPU engines: no batch, nor one that would
    /// overrun it at the measured speed) after it; finished runs are kept and the sweep
    /// exits 0 saying how many runs are left (continue with --resume).
    #[arg(long, value_name = "M")]
    pub max_minutes: Option<f64>,
}

#[derive(Args, Debug)]
pub struct TheoryArgs {
    /// Sweep configuration (as for `sweep`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a field.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Initial conditions per cell (default: the grid's seeds for `paired`, 10000 for
    /// `table`).
    #[arg(long)]
    pub ics: Option<usize>,
    /// `paired`: the sweep's own initial means, one ODE integration each (compare with
    /// SGD seed by seed); `table`: fresh draws classified by tabulated split thresholds
    /// (fast; fixed equal weights only).
    #[arg(long, default_value = "paired")]
    pub method: String,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

#[derive(Args, Debug)]
pub struct DesignArgs {
    /// Largest acceptable collapse probability, in (0, 1): the fastest exponential schedule
    /// reaching it, or with --shape optimal the shortest budget whose optimal schedule does.
    #[arg(long)]
    pub max_collapse: Option<f64>,
    /// exponential (the fastest (β_i, t0) under --max-collapse) or optimal (the monotone
    /// schedule, piecewise linear in ln β, minimising the predicted P(collapse) at --budget,
    /// or reaching --max-collapse soonest).
    #[arg(long, default_value = "exponential")]
    pub shape: String,
    /// With --shape optimal: the annealing budget T (steps to reach β = 1).
    #[arg(long)]
    pub budget: Option<f64>,
    /// With --shape optimal: equal time slices of the schedule (β(0) and SEGMENTS − 1 inner
    /// knots are free).
    #[arg(long, default_value_t = 10)]
    pub segments: usize,
    /// Sweep configuration for the model (target, student, optimiser, grid.extra_steps).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Override a field, e.g. --set run.target.d=64.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Initial conditions of the prediction (default 4000; 10000 with --shape optimal).
    #[arg(long)]
    pub ics: Option<usize>,
    /// SGD seeds of the check (0 = skip it); with --shape optimal, of the optimal and the best
    /// exponential schedule at the budget.
    #[arg(long, default_value_t = 100)]
    pub check_seeds: usize,
    /// Compare exponential, linear-in-β and linear-in-temperature schedules at these
    /// annealing lengths (comma-separated steps), e.g. 1000,2000,4000.
    #[arg(long, value_delimiter = ',')]
    pub compare: Vec<f64>,
    /// Also write the report to this file; with --shape optimal, write the designed
    /// schedule's training configuration (TOML, `schedule.kind = "points"`) there instead.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Shard directories.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Output directory: a new sweep (refused if it already holds runs).
    #[arg(long, required_unless_present = "into", conflicts_with = "into")]
    pub out: Option<PathBuf>,
    /// An existing sweep of the same configuration: add the runs it does not hold yet
    /// (merging the same shards again adds nothing).
    #[arg(long)]
    pub into: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct ReproduceArgs {
    /// Quick versions (default).
    #[arg(long, conflicts_with = "full")]
    pub quick: bool,
    /// Full (paper-scale) versions.
    #[arg(long)]
    pub full: bool,
    /// Scale of the RealNVP figure (4, and Figure 5's flow panel): quick (default, also
    /// with --full: the paper-scale flow sweep needs ~1.5e7 steps at d = 128, a cluster's
    /// or a GPU's work), full, or none.
    #[arg(long, value_enum, default_value_t = FlowScale::Quick)]
    pub flow: FlowScale,
    /// Where the RealNVP sweep trains its flows: cpu, or gpu (a build with --features gpu).
    /// (Formerly --engine, still accepted.)
    #[arg(long, value_enum, default_value_t = DeviceArg::Cpu, alias = "engine")]
    pub device: DeviceArg,
    /// Output directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
}

/// `--simulation` of `bench gmm`.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum BenchSimulation {
    Vector,
    Statistics,
    Both,
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// SGD on the paper's problem (no annealing): prints `run-steps/s: <number>` last.
    Gmm(GmmArgs),
    /// RealNVP reverse-KL training steps (8 couplings, depth-4 ReLU MLPs, Adam, β = 1):
    /// prints `steps/s: <number>` last (steps per second of one flow).
    Flow(FlowArgs),
    /// The sharp collapse formula (docs/theory.md §9) on every annealed cell of a sweep's grid,
    /// on one thread, default settings against the reference ones: prints `ms/cell: <number>`
    /// last (default settings).
    Formula(FormulaArgs),
    /// RealNVP training steps on CUDA device 0 (feature `gpu`; the `bench flow` model, F flows
    /// batched, device noise, f32): prints `steps/s: <number>` last (one step advances every
    /// flow).
    #[cfg(feature = "gpu")]
    FlowGpu(FlowGpuArgs),
}

#[derive(Args, Debug)]
pub struct FormulaArgs {
    /// Sweep configuration whose grid and model are used (default: configs/fig2.toml's).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Passes over the grid per measurement.
    #[arg(long, default_value_t = 1)]
    pub repeat: usize,
    /// Alternating measurements of each setting (the medians are reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

#[derive(Args, Debug)]
pub struct GmmArgs {
    /// Dimension d.
    #[arg(long, default_value_t = 512)]
    pub d: usize,
    /// Independent runs S.
    #[arg(long, default_value_t = 100)]
    pub seeds: usize,
    /// Samples per component B.
    #[arg(long, default_value_t = 32)]
    pub samples: usize,
    /// SGD steps per run T.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Worker threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// How SGD is simulated (`student.simulation`): `vector` (d-dimensional samples),
    /// `statistics` (exact simulation in the summary statistics, cost independent of d) or
    /// `both` (vector, then statistics, in one process, and their ratio). (Formerly
    /// --engine, still accepted.)
    #[arg(long, default_value = "vector", alias = "engine")]
    pub simulation: BenchSimulation,
    /// Rounds: with `--simulation both`, the two this many times and the
    /// median of the per-round ratios is printed (robust to a machine whose speed drifts).
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
}

#[derive(Args, Debug)]
pub struct FlowArgs {
    /// Dimension d ≥ 2.
    #[arg(long, default_value_t = 16)]
    pub d: usize,
    /// MLP hidden width h.
    #[arg(long, default_value_t = 64)]
    pub width: usize,
    /// Batch B.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Independent flows trained concurrently, one per thread (each single-threaded).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Precision of the batched passes: f32 or f64.
    #[arg(long, default_value = "f32")]
    pub precision: String,
}

#[cfg(feature = "gpu")]
#[derive(Args, Debug)]
pub struct FlowGpuArgs {
    /// Dimension d ≥ 2.
    #[arg(long, default_value_t = 16)]
    pub d: usize,
    /// MLP hidden width h.
    #[arg(long, default_value_t = 64)]
    pub width: usize,
    /// Batch B per flow.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 500)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Independent flows trained at once.
    #[arg(long, default_value_t = 1)]
    pub flows: usize,
}

/// Scale of the RealNVP sweep behind Figure 4 and Figure 5's flow panel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FlowScale {
    /// configs/fig4-quick.toml (d = 16, the quick setting).
    Quick,
    /// configs/fig4.toml (the paper's d = 128 flows, 200 runs per cell).
    Full,
    /// No RealNVP figure.
    None,
}

impl FlowScale {
    /// `Some(quick?)`, or `None` for no flow figure.
    pub fn quick(self) -> Option<bool> {
        match self {
            FlowScale::Quick => Some(true),
            FlowScale::Full => Some(false),
            FlowScale::None => None,
        }
    }
}

/// `--device` of the figure commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// One flow per CPU thread.
    Cpu,
    /// Batches of flows on CUDA device 0 (feature `gpu`).
    Gpu,
}

impl DeviceArg {
    pub fn device(self) -> annealvi::sweep::Device {
        match self {
            DeviceArg::Cpu => annealvi::sweep::Device::Cpu,
            DeviceArg::Gpu => annealvi::sweep::Device::Gpu,
        }
    }
}

impl Command {
    /// `--threads` of the commands that run on a rayon pool (the benchmarks manage their own
    /// threads).
    pub fn threads(&self) -> Option<usize> {
        match self {
            Command::Figure(FigureArgs { threads, .. })
            | Command::Sweep(SweepArgs { threads, .. })
            | Command::Theory(TheoryArgs { threads, .. })
            | Command::Design(DesignArgs { threads, .. })
            | Command::Reproduce(ReproduceArgs { threads, .. }) => Some(*threads),
            Command::Train(_) | Command::Merge(_) | Command::Bench { .. } => None,
        }
    }
}
