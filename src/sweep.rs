//! Collapse-probability sweeps over a grid of exponential schedules (β_i, t0) × seeds.
//!
//! A sweep configuration has two tables: `[grid]` (the cells and the number of seeds) and
//! `[run]` (any `train` configuration; its schedule is replaced per cell by
//! β(t) = β_i^(1 − t/t0), and each run lasts t0 + `extra_steps` steps).
//!
//! Robustness:
//! * each finished run is appended to `DIR/runs.jsonl` as one line, written with a single
//!   `write` and flushed, so a SIGKILL loses at most the run in flight;
//! * `--resume` reads `runs.jsonl`, drops a torn last line (no trailing newline or not JSON),
//!   skips the runs already there, and appends the rest: no duplicates;
//! * a failed append (full disk) stops the sweep and is cut back, so the file holds only whole
//!   lines; one process at a time writes a directory (an exclusive lock, [`lock_dir`]);
//! * runs are keyed by (β_i, t0, seed index), and their random streams are derived from
//!   (base seed, seed index) for the initialisation (shared across cells: common random
//!   numbers) and from (base seed, cell, seed index) for the SGD noise, so results do not
//!   depend on thread count, sharding or order (the runs execute on the caller's rayon pool:
//!   install one to choose the number of threads);
//! * `--shard K/N` runs every N-th run (round-robin over the grid), `merge` combines shards
//!   and refuses shards of different configurations.
//!
//! `DIR/cells.csv` aggregates the runs per cell with Wilson 95% intervals.
//!
//! Engines (`grid.engine`): `cpu` (default) runs every run on its own thread; `gpu` (cargo
//! feature `gpu`, RealNVP students) trains the runs of a cell as one batch of flows on the CUDA
//! device (module `gpu`), `gpu_emulator` the same on the CPU emulator of that device (slow; for
//! tests). The GPU engines draw each run's noise from the run's own CPU stream, so they train
//! the same runs as the CPU engine up to f32 rounding; a cell's runs are appended when the
//! whole batch finishes.

use crate::config::FamilyKind;
use crate::config::{Config, ScheduleKind};
use crate::error::{Error, Result};
use crate::family::gmm::Stats;
use crate::metrics::{Outcome, OutcomeKind, wilson_interval};
use crate::output;
use crate::run::{run_flow_with_streams_cancellable, run_with_streams_cancellable};
use crate::seed::mix;
use crate::train::{NoObserver, RunResult};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The most runs (cells × seeds) one sweep may hold: its run list lives in memory.
pub const MAX_RUNS: usize = 10_000_000;

/// A sweep configuration file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SweepConfig {
    /// The grid.
    pub grid: GridConfig,
    /// The run configuration shared by all cells.
    pub run: Config,
}

/// One axis of the grid: an explicit list, or `{ start, stop, num, log }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Axis {
    /// Explicit values.
    List(Vec<f64>),
    /// `num` values from `start` to `stop` inclusive, evenly spaced (in log if `log`).
    Range(RangeSpec),
}

/// A range of values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RangeSpec {
    /// First value.
    pub start: f64,
    /// Last value.
    pub stop: f64,
    /// Number of values (≥ 1).
    pub num: usize,
    /// Geometric spacing.
    #[serde(default)]
    pub log: bool,
}

impl Axis {
    /// The values.
    pub fn values(&self) -> Vec<f64> {
        match self {
            Axis::List(v) => v.clone(),
            Axis::Range(r) => (0..r.num)
                .map(|i| {
                    let f = if r.num == 1 {
                        0.0
                    } else {
                        i as f64 / (r.num - 1) as f64
                    };
                    let v = if r.log {
                        (r.start.ln() + f * (r.stop.ln() - r.start.ln())).exp()
                    } else {
                        r.start + f * (r.stop - r.start)
                    };
                    round_significant(v, 12)
                })
                .collect(),
        }
    }
}

/// `v` rounded to `digits` significant digits (so that 0.003 is not 0.002999999999999999).
fn round_significant(v: f64, digits: i32) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let e = digits - 1 - v.abs().log10().floor() as i32;
    let p = 10f64.powi(e.abs());
    if e >= 0 {
        (v * p).round() / p
    } else {
        (v / p).round() * p
    }
}

/// The grid of a sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GridConfig {
    /// Initial inverse temperatures β_i ∈ (0, 1].
    pub beta_i: Axis,
    /// Annealing times t0 (SGD steps, ≥ 1).
    pub t0: Axis,
    /// Also run the "no annealing" cell (β = 1 throughout; reported as β_i = 1, t0 = 0).
    pub no_annealing: bool,
    /// Seeds (random initialisations) per cell.
    pub seeds: usize,
    /// Steps after t0 (at β = 1) before the outcome is read.
    pub extra_steps: usize,
    /// Where the runs are trained: `cpu`, `gpu` or `gpu_emulator` (see the module docs).
    #[serde(skip_serializing_if = "Engine::is_cpu")]
    pub engine: Engine,
    /// GPU engines: at most this many flows per device batch (the runs of a cell are split
    /// into batches of this size), in [1, 100000].
    #[serde(skip_serializing_if = "is_default_gpu_flows")]
    pub gpu_flows: usize,
}

/// Where a sweep's runs are trained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// One run per CPU thread.
    #[default]
    Cpu,
    /// A cell's runs as one batch of flows on CUDA device 0 (feature `gpu`).
    Gpu,
    /// The GPU engine's code on its CPU emulator (feature `gpu`; for tests).
    GpuEmulator,
}

impl Engine {
    fn is_cpu(&self) -> bool {
        *self == Engine::Cpu
    }
}

const DEFAULT_GPU_FLOWS: usize = 256;

fn is_default_gpu_flows(v: &usize) -> bool {
    *v == DEFAULT_GPU_FLOWS
}

impl Default for GridConfig {
    fn default() -> Self {
        Self {
            beta_i: Axis::List(vec![0.01, 0.1]),
            t0: Axis::List(vec![100.0, 1000.0]),
            no_annealing: true,
            seeds: 10,
            extra_steps: 1000,
            engine: Engine::Cpu,
            gpu_flows: DEFAULT_GPU_FLOWS,
        }
    }
}

/// One cell of the grid.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    /// β_i (1 for the no-annealing cell).
    pub beta_i: f64,
    /// t0 (0 for the no-annealing cell).
    pub t0: f64,
}

impl Cell {
    /// The annealing rate r = β_i^(−1/t0) (growth factor of β per step); 1 without annealing.
    pub fn rate(&self) -> f64 {
        crate::schedule::Exponential {
            beta_i: self.beta_i,
            t0: self.t0,
        }
        .rate()
    }
    /// A key that identifies the cell independently of its position in the grid.
    pub fn key(&self) -> u64 {
        mix(self.beta_i.to_bits() ^ mix(self.t0.to_bits()))
    }
}

/// One run of the sweep.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RunSpec {
    /// Index of the cell in the grid.
    pub cell: usize,
    /// Seed index within the cell.
    pub seed: usize,
}

/// A finished run, one line of runs.jsonl.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunLine {
    /// β_i of the cell.
    pub beta_i: f64,
    /// t0 of the cell.
    pub t0: f64,
    /// Seed index.
    pub seed: usize,
    /// covered / collapsed / partial / diverged.
    pub outcome: OutcomeKind,
    /// For collapses: the mode (0 = heavy for the bimodal target).
    pub mode: Option<usize>,
    /// For divergences: the step.
    pub diverged_step: Option<usize>,
    /// Steps run.
    pub steps: usize,
    /// Student mass on the lighter mode (null if diverged).
    pub light_mode_mass: Option<f64>,
    /// Final m_k.
    pub m: Vec<f64>,
    /// Final σ_k.
    pub sigma: Vec<f64>,
    /// Final q_kl (k ≤ l).
    pub q: Vec<f64>,
    /// Final w_k.
    pub w: Vec<f64>,
    /// Flow students: |light-mode mass − true light weight| (Monte Carlo; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode_weight_error: Option<f64>,
    /// Flow students: importance-sampling ESS / N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ess_fraction: Option<f64>,
    /// Flow students: Monte-Carlo KL(q‖π) in nats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl: Option<f64>,
    /// Wall time of the run in seconds.
    pub wall_seconds: f64,
}

impl SweepConfig {
    /// Reads a sweep file with `--set` overrides (keys like `grid.seeds` or `run.target.d`).
    pub fn load(path: Option<&Path>, sets: &[String]) -> Result<SweepConfig> {
        let cfg: SweepConfig = crate::config::load_toml(path, sets, "sweep configuration")?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks the grid and the run configuration.
    pub fn validate(&self) -> Result<()> {
        let g = &self.grid;
        for (name, axis, lo_ok) in [
            (
                "grid.beta_i",
                &g.beta_i,
                (|v: f64| v > 0.0 && v <= 1.0) as fn(f64) -> bool,
            ),
            ("grid.t0", &g.t0, |v: f64| (1.0..=1e8).contains(&v)),
        ] {
            if let Axis::Range(r) = axis {
                if r.num == 0 || r.num > 10_000 {
                    return Err(Error::config(
                        &format!("{name}.num"),
                        r.num,
                        "an integer in [1, 10000]",
                    ));
                }
                if r.log && !(r.start > 0.0 && r.stop > 0.0) {
                    return Err(Error::config(
                        name,
                        format!("{{start = {}, stop = {}}}", r.start, r.stop),
                        "positive start and stop for a log range",
                    ));
                }
            }
            let vals = axis.values();
            if vals.is_empty() {
                return Err(Error::config(name, "[]", "at least one value"));
            }
            for (i, v) in vals.iter().enumerate() {
                if !v.is_finite() || !lo_ok(*v) {
                    let expected = if name == "grid.beta_i" {
                        "values in (0, 1]"
                    } else {
                        "step counts in [1, 1e8]"
                    };
                    return Err(Error::config(&format!("{name}[{i}]"), v, expected));
                }
            }
        }
        if g.seeds == 0 || g.seeds > 1_000_000 {
            return Err(Error::config(
                "grid.seeds",
                g.seeds,
                "an integer in [1, 1000000]",
            ));
        }
        // the run list is held in memory: cap its length before anything builds it
        let cells = usize::from(g.no_annealing) + g.beta_i.values().len() * g.t0.values().len();
        if (cells as u128) * (g.seeds as u128) > MAX_RUNS as u128 {
            return Err(Error::config(
                "grid.seeds",
                g.seeds,
                &format!(
                    "at most {MAX_RUNS} runs in all: {cells} cells x {} seeds = {} runs \
                     (use fewer cells or seeds, or split the grid into several sweeps)",
                    g.seeds,
                    cells as u128 * g.seeds as u128
                ),
            ));
        }
        if g.extra_steps > 100_000_000 {
            return Err(Error::config(
                "grid.extra_steps",
                g.extra_steps,
                "an integer in [0, 100000000]",
            ));
        }
        if g.gpu_flows == 0 || g.gpu_flows > 100_000 {
            return Err(Error::config(
                "grid.gpu_flows",
                g.gpu_flows,
                "an integer in [1, 100000]",
            ));
        }
        if g.engine != Engine::Cpu {
            self.validate_gpu()?;
        }
        self.run.validate().map_err(|e| match e {
            Error::Config {
                field,
                value,
                expected,
            } => Error::Config {
                field: format!("run.{field}"),
                value,
                expected,
            },
            other => other,
        })
    }

    /// What the GPU engines support: RealNVP students, Adam without clipping, the raw loss,
    /// the full or STL estimator; and the build must have the `gpu` feature.
    fn validate_gpu(&self) -> Result<()> {
        use crate::config::{LossScale, OptimKind};
        let engine = match self.grid.engine {
            Engine::Gpu => "gpu",
            _ => "gpu_emulator",
        };
        if !cfg!(feature = "gpu") {
            return Err(Error::config(
                "grid.engine",
                engine,
                "\"cpu\" in this build (the GPU engines need `cargo build --release --features gpu`)",
            ));
        }
        let r = &self.run;
        let need = |field: &str, value: String, expected: &str| {
            Err(Error::config(
                field,
                value,
                &format!("{expected} with grid.engine = \"{engine}\""),
            ))
        };
        if r.student.family != FamilyKind::Realnvp {
            return need(
                "run.student.family",
                format!("{:?}", r.student.family).to_lowercase(),
                "\"realnvp\"",
            );
        }
        if r.optim.kind != OptimKind::Adam {
            return need("run.optim.kind", "sgd".into(), "\"adam\"");
        }
        if r.optim.max_grad_norm.is_finite() {
            return need(
                "run.optim.max_grad_norm",
                r.optim.max_grad_norm.to_string(),
                "inf (no clipping on the device)",
            );
        }
        if r.objective.loss_scale != LossScale::None {
            return need("run.objective.loss_scale", "per_dim".into(), "\"none\"");
        }
        Ok(())
    }

    /// The cells, in order: the no-annealing cell first (if any), then β_i-major. A cell that
    /// occurs twice (a repeated β_i, or t0 values that round to the same step) is kept once,
    /// at its first position, so that no run is repeated.
    pub fn cells(&self) -> Vec<Cell> {
        let mut cells = Vec::new();
        let mut seen = HashSet::new();
        let mut push = |c: Cell| {
            if seen.insert((c.beta_i.to_bits(), c.t0.to_bits())) {
                cells.push(c);
            }
        };
        if self.grid.no_annealing {
            push(Cell {
                beta_i: 1.0,
                t0: 0.0,
            });
        }
        for &b in &self.grid.beta_i.values() {
            for &t in &self.grid.t0.values() {
                push(Cell {
                    beta_i: b,
                    t0: t.round(),
                });
            }
        }
        cells
    }

    /// Every run, cell-major.
    pub fn runs(&self) -> Vec<RunSpec> {
        let n = self.cells().len();
        (0..n)
            .flat_map(|cell| (0..self.grid.seeds).map(move |seed| RunSpec { cell, seed }))
            .collect()
    }

    /// The run configuration of a cell.
    pub fn cell_config(&self, cell: &Cell) -> Config {
        let mut c = self.run.clone();
        c.record.every = 0;
        c.record.marginal_steps.clear();
        if cell.t0 == 0.0 {
            c.schedule.kind = ScheduleKind::Constant;
            c.schedule.beta = 1.0;
            c.optim.steps = self.grid.extra_steps.max(1);
        } else {
            c.schedule.kind = ScheduleKind::Exponential;
            c.schedule.beta_i = cell.beta_i;
            c.schedule.t0 = cell.t0;
            c.optim.steps = cell.t0 as usize + self.grid.extra_steps;
        }
        c
    }

    /// Runs one run of the sweep.
    pub fn run_one(&self, spec: RunSpec, cells: &[Cell]) -> RunLine {
        let never = AtomicBool::new(false);
        match self.run_one_cancellable(spec, cells, &never) {
            Some(line) => line,
            None => unreachable!("a flag nobody sets cancels nothing"),
        }
    }

    /// [`Self::run_one`] that stops once `cancel` is set (`None`: the run is abandoned; see
    /// [`crate::train::train_cancellable`]).
    pub fn run_one_cancellable(
        &self,
        spec: RunSpec,
        cells: &[Cell],
        cancel: &AtomicBool,
    ) -> Option<RunLine> {
        let cell = cells[spec.cell];
        let cfg = self.cell_config(&cell);
        let start = Instant::now();
        let init_index = spec.seed as u64;
        let noise_index = noise_index(&cell, spec.seed);
        let (res, gmm, flow) = if cfg.student.family == FamilyKind::Realnvp {
            let streams = (init_index, noise_index);
            match run_flow_with_streams_cancellable(&cfg, streams, &mut NoObserver, cancel) {
                Ok(None) => return None,
                Ok(Some((_, r))) => {
                    let flow = Some(r.stats.clone());
                    let res = RunResult {
                        outcome: r.outcome,
                        final_step: r.final_step,
                        light_mode_mass: r.light_mode_mass,
                        stats: (),
                    };
                    (res, None, flow)
                }
                // unreachable after validation; recorded as a divergence at step 0, not a panic
                Err(_) => (
                    RunResult {
                        outcome: Outcome::Diverged { step: 0 },
                        final_step: 0,
                        light_mode_mass: f64::NAN,
                        stats: (),
                    },
                    None,
                    None,
                ),
            }
        } else {
            let streams = (init_index, noise_index);
            let (_, r) = run_with_streams_cancellable(&cfg, streams, &mut NoObserver, cancel)?;
            let gmm = Some(r.stats.clone());
            let res = RunResult {
                outcome: r.outcome,
                final_step: r.final_step,
                light_mode_mass: r.light_mode_mass,
                stats: (),
            };
            (res, gmm, None)
        };
        Some(run_line(
            cell,
            spec.seed,
            res,
            gmm,
            flow,
            start.elapsed().as_secs_f64(),
        ))
    }

    /// Total SGD steps of a list of runs.
    pub fn total_steps(&self, runs: &[RunSpec], cells: &[Cell]) -> u64 {
        runs.iter()
            .map(|r| self.cell_config(&cells[r.cell]).optim.steps as u64)
            .sum()
    }
}

/// The noise stream index of seed `seed` in `cell` (the initialisation uses the seed index).
pub fn noise_index(cell: &Cell, seed: usize) -> u64 {
    mix(cell.key() ^ mix(seed as u64 + 0x5eed))
}

/// A runs.jsonl line from a run's result (mixture statistics or flow statistics).
pub fn run_line(
    cell: Cell,
    seed: usize,
    res: RunResult<()>,
    gmm: Option<Stats>,
    flow: Option<crate::family::realnvp::FlowStats>,
    wall_seconds: f64,
) -> RunLine {
    {
        let finite = |v: f64| v.is_finite().then_some(v);
        let (mode, diverged_step) = match &res.outcome {
            Outcome::Collapsed { mode, .. } => (Some(*mode), None),
            Outcome::Diverged { step } => (None, Some(*step)),
            _ => (None, None),
        };
        let gmm = gmm.unwrap_or(Stats {
            m: Vec::new(),
            q: Vec::new(),
            sigma: Vec::new(),
            w: Vec::new(),
        });
        RunLine {
            beta_i: cell.beta_i,
            t0: cell.t0,
            seed,
            outcome: res.outcome.kind(),
            mode,
            diverged_step,
            steps: res.final_step,
            light_mode_mass: finite(res.light_mode_mass),
            m: gmm.m,
            sigma: gmm.sigma,
            q: gmm.q,
            w: gmm.w,
            mode_weight_error: flow.as_ref().and_then(|f| finite(f.mode_weight_error)),
            ess_fraction: flow.as_ref().and_then(|f| finite(f.ess_fraction)),
            kl: flow.as_ref().and_then(|f| finite(f.kl)),
            wall_seconds,
        }
    }
}

#[cfg(feature = "gpu")]
mod gpu;

/// A shard K/N (1-based K).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// K ∈ [1, N].
    pub index: usize,
    /// N ≥ 1.
    pub count: usize,
}

impl Shard {
    /// Parses "K/N".
    pub fn parse(s: &str) -> Result<Shard> {
        let bad = || Error::config("--shard", s, "K/N with 1 ≤ K ≤ N, e.g. 3/8");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let k: usize = k.trim().parse().map_err(|_| bad())?;
        let n: usize = n.trim().parse().map_err(|_| bad())?;
        if n == 0 || k == 0 || k > n {
            return Err(bad());
        }
        Ok(Shard { index: k, count: n })
    }
    /// Whether run number `i` (position in the full run list) belongs to this shard.
    pub fn contains(&self, i: usize) -> bool {
        i % self.count == self.index - 1
    }
}

/// Identity of a run across files: (β_i bits, t0 bits, seed).
pub type RunKey = (u64, u64, usize);

fn key_of(line: &RunLine) -> RunKey {
    (line.beta_i.to_bits(), line.t0.to_bits(), line.seed)
}

/// Reads runs.jsonl. A last line without its newline, or that is not valid JSON, is torn: it is
/// dropped and, when `repair` is set, cut from the file. A malformed line elsewhere is an error.
pub fn read_runs(path: &Path, repair: bool) -> Result<Vec<RunLine>> {
    Ok(read_runs_raw(path, repair)?
        .into_iter()
        .map(|(l, _)| l)
        .collect())
}

/// As [`read_runs`], with each run's line as written (without its newline), so that it can be
/// copied bit for bit.
pub fn read_runs_raw(path: &Path, repair: bool) -> Result<Vec<(RunLine, String)>> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(path, "read", e)),
    };
    let mut lines = Vec::new();
    let mut good_len = 0usize;
    let mut pos = 0usize;
    while pos < text.len() {
        let end = text[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| pos + i);
        let Some(end) = end else { break }; // torn: no newline
        let slice = &text[pos..end];
        if !slice.iter().all(|b| b.is_ascii_whitespace()) {
            match serde_json::from_slice::<RunLine>(slice) {
                Ok(l) => lines.push((l, String::from_utf8_lossy(slice).into_owned())),
                Err(e) => {
                    if end + 1 >= text.len() {
                        break; // torn last line
                    }
                    return Err(Error::Invalid(format!(
                        "{}: malformed line at byte {pos}: {e}",
                        path.display()
                    )));
                }
            }
        }
        pos = end + 1;
        good_len = pos;
    }
    if good_len < text.len() && repair {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::io(path, "open", e))?;
        f.set_len(good_len as u64)
            .map_err(|e| Error::io(path, "truncate", e))?;
    }
    Ok(lines)
}

/// What a sweep did.
#[derive(Clone, Debug)]
pub struct SweepReport {
    /// Runs in this shard.
    pub planned: usize,
    /// Already done before (resume).
    pub skipped: usize,
    /// Run now.
    pub ran: usize,
    /// Wall time.
    pub seconds: f64,
    /// Runs of this shard still missing (the budget ran out, or `max_runs`; 0: complete).
    pub remaining: usize,
}

/// Options of `annealvi sweep`.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    /// Output directory.
    pub out: PathBuf,
    /// Continue a sweep in `out`.
    pub resume: bool,
    /// Shard to run.
    pub shard: Option<Shard>,
    /// Stop after this many new runs (for tests of interruption; None = all).
    pub max_runs: Option<usize>,
    /// Wall-time budget (`--max-minutes`): no run (CPU engine) or batch (GPU engines) starts
    /// once it is spent, nor a GPU batch that the time per flow-step measured so far says
    /// would overrun it; runs in flight finish and are written. None = no limit.
    pub budget: Option<Duration>,
}

const META: &str = "sweep.toml";

/// The lock file of a sweep directory (held while a sweep or a merge writes into it).
pub const LOCK: &str = ".annealvi.lock";

/// Takes the exclusive lock of directory `dir` (an advisory lock on `dir/.annealvi.lock`:
/// `flock` on Unix, `LockFileEx` on Windows), released when the returned file is dropped or
/// the process ends, however it ends. Refuses, without waiting, when another process holds it.
pub fn lock_dir(dir: &Path) -> Result<std::fs::File> {
    let p = dir.join(LOCK);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| Error::io(&p, "open the lock file", e))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Invalid(format!(
            "{} is in use by another annealvi sweep or merge (it holds the lock {}); wait for it \
             to finish, or choose another --out",
            dir.display(),
            p.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(Error::io(&p, "lock", e)),
    }
}

/// Whether `dir/runs.jsonl` exists and is not empty.
fn has_runs(dir: &Path) -> bool {
    std::fs::metadata(dir.join("runs.jsonl")).is_ok_and(|m| m.len() > 0)
}

fn meta_text(cfg: &SweepConfig, shard: Option<Shard>) -> String {
    let mut s = String::new();
    if let Some(sh) = shard {
        let _ = writeln!(s, "# shard {}/{}", sh.index, sh.count);
    }
    s.push_str(&toml::to_string(cfg).unwrap_or_default());
    s
}

/// The configuration part of a sweep.toml (comment lines such as the shard removed).
fn meta_config(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs (or resumes) a sweep; writes runs.jsonl, cells.csv and sweep.toml into `opts.out`.
pub fn run_sweep(cfg: &SweepConfig, opts: &SweepOptions) -> Result<SweepReport> {
    run_sweep_cancellable(cfg, opts, &AtomicBool::new(false))
}

/// [`run_sweep`] that starts no new run once `cancel` is set (from another thread, e.g. on
/// Ctrl-C in a host language): runs already finished stay in runs.jsonl and cells.csv is
/// written from them, so the sweep can be resumed. `SweepReport::ran` counts the runs done.
pub fn run_sweep_cancellable(
    cfg: &SweepConfig,
    opts: &SweepOptions,
    cancel: &AtomicBool,
) -> Result<SweepReport> {
    run_sweep_with(cfg, opts, cancel, None)
}

/// Trains one run of a sweep (the cells are [`SweepConfig::cells`]); `None` = the run failed
/// and is not recorded (the caller keeps the reason and sets the cancel flag).
pub type RunFn<'a> = dyn Fn(RunSpec, &[Cell]) -> Option<RunLine> + Sync + 'a;

/// [`run_sweep_cancellable`] with the runs trained by `runner` instead of
/// [`SweepConfig::run_one`] (e.g. against a target defined in a host language; CPU engine only).
pub fn run_sweep_with(
    cfg: &SweepConfig,
    opts: &SweepOptions,
    cancel: &AtomicBool,
    runner: Option<&RunFn>,
) -> Result<SweepReport> {
    if runner.is_some() && !cfg.grid.engine.is_cpu() {
        return Err(Error::config(
            "grid.engine",
            format!("{:?}", cfg.grid.engine),
            "\"cpu\" for runs against a user-defined target",
        ));
    }
    output::ensure_dir(&opts.out)?;
    // one writer per directory: a second sweep (or merge) on it is refused
    let _lock = lock_dir(&opts.out)?;
    let meta_path = opts.out.join(META);
    let runs_path = opts.out.join("runs.jsonl");
    let meta = meta_text(cfg, opts.shard);
    match std::fs::read_to_string(&meta_path) {
        Ok(old) => {
            if !opts.resume {
                return Err(Error::Invalid(format!(
                    "{} already holds a sweep; pass --resume to continue it, or choose another --out",
                    opts.out.display()
                )));
            }
            if meta_config(&old) != meta_config(&meta) || old.lines().next() != meta.lines().next()
            {
                if has_runs(&opts.out) {
                    return Err(Error::Invalid(format!(
                        "{} holds a sweep of a different configuration (or shard); it cannot be resumed with this one",
                        opts.out.display()
                    )));
                }
                // no run recorded yet (e.g. a sweep.toml torn by an older version): nothing
                // to protect, start afresh with this configuration
                output::write_text(&meta_path, &meta)?;
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if has_runs(&opts.out) {
                return Err(Error::Invalid(format!(
                    "{} holds runs.jsonl but no sweep.toml, so the configuration of its runs is \
                     unknown; refusing to add to it (move runs.jsonl away, or choose another --out)",
                    opts.out.display()
                )));
            }
            output::write_text(&meta_path, &meta)?
        }
        Err(e) => return Err(Error::io(&meta_path, "read", e)),
    }
    let done: HashSet<RunKey> = read_runs(&runs_path, true)?.iter().map(key_of).collect();
    let cells = cfg.cells();
    let all = cfg.runs();
    let mine: Vec<RunSpec> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| opts.shard.is_none_or(|s| s.contains(*i)))
        .map(|(_, r)| *r)
        .collect();
    let missing: Vec<RunSpec> = mine
        .iter()
        .filter(|r| {
            let c = cells[r.cell];
            !done.contains(&(c.beta_i.to_bits(), c.t0.to_bits(), r.seed))
        })
        .copied()
        .collect();
    let todo = &missing[..missing.len().min(opts.max_runs.unwrap_or(usize::MAX))];
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&runs_path)
        .map_err(|e| Error::io(&runs_path, "open for appending", e))?;
    let writer = Mutex::new(file);
    let bar = crate::progress::bar(todo.len() as u64, "sweep");
    let start = Instant::now();
    let deadline = opts.budget.map(|b| start + b);
    let write_err: Mutex<Option<Error>> = Mutex::new(None);
    // set at the first failed append: no new run starts, and nothing more is written
    let stop = AtomicBool::new(false);
    let written = AtomicUsize::new(0);
    let append = |line: &RunLine| {
        let mut text = serde_json::to_string(line).unwrap_or_default();
        text.push('\n');
        let mut f = writer.lock().unwrap_or_else(|p| p.into_inner());
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let res = f.metadata().map(|m| m.len()).and_then(|len| {
            f.write_all(text.as_bytes())
                .and_then(|_| f.flush())
                // cut a partly written line, so that the file stays a sequence of whole lines
                .map_err(|e| match f.set_len(len) {
                    Ok(()) => e,
                    Err(e2) => std::io::Error::other(format!(
                        "{e}; and cutting the partial line failed too: {e2}"
                    )),
                })
        });
        match res {
            Ok(()) => {
                written.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                stop.store(true, Ordering::SeqCst);
                let mut we = write_err.lock().unwrap_or_else(|p| p.into_inner());
                we.get_or_insert(Error::Invalid(format!(
                    "cannot append to `{}`: {e}; the sweep stopped at this first failed write \
                     ({} runs of this sweep written, the file holds only whole lines); free \
                     space and continue with --resume",
                    runs_path.display(),
                    written.load(Ordering::SeqCst)
                )));
            }
        }
        bar.inc(1);
    };
    match cfg.grid.engine {
        Engine::Cpu => todo.par_iter().for_each(|spec| {
            if !stop.load(Ordering::SeqCst)
                && !cancel.load(Ordering::Relaxed)
                && deadline.is_none_or(|d| Instant::now() < d)
            {
                match runner {
                    None => append(&cfg.run_one(*spec, &cells)),
                    Some(f) => {
                        if let Some(line) = f(*spec, &cells) {
                            append(&line);
                        }
                    }
                }
            }
        }),
        #[cfg(feature = "gpu")]
        engine => gpu::run(cfg, engine, &cells, todo, deadline, &append)?,
        #[cfg(not(feature = "gpu"))]
        _ => {
            // refused by validate(); kept as an error rather than a panic
            return Err(Error::Invalid(
                "the GPU engines need a build with --features gpu".into(),
            ));
        }
    }
    bar.finish_and_clear();
    if let Some(e) = write_err.into_inner().unwrap_or(None) {
        return Err(e);
    }
    write_cells(&opts.out, &read_runs(&runs_path, false)?)?;
    let ran = written.into_inner();
    Ok(SweepReport {
        planned: mine.len(),
        skipped: mine.len() - missing.len(),
        ran,
        seconds: start.elapsed().as_secs_f64(),
        remaining: missing.len() - ran.min(missing.len()),
    })
}

/// Aggregated outcomes of one cell.
#[derive(Clone, Debug, PartialEq)]
pub struct CellStats {
    /// The cell.
    pub cell: Cell,
    /// Runs.
    pub n: usize,
    /// Collapsed runs.
    pub collapsed: usize,
    /// Diverged runs.
    pub diverged: usize,
    /// Covered runs.
    pub covered: usize,
    /// Mean light-mode mass over non-diverged runs.
    pub mean_light_mass: f64,
    /// Flow students: mean |light-mode mass − (1 − w*)| (NaN for the Gaussian mixture).
    pub mean_mode_weight_error: f64,
    /// Flow students: mean importance-sampling ESS / N (NaN for the Gaussian mixture).
    pub mean_ess_fraction: f64,
    /// Flow students: mean Monte-Carlo KL(q‖π) in nats (NaN for the Gaussian mixture).
    pub mean_kl: f64,
}

impl CellStats {
    /// Runs that ended `partial` (covering some but not all modes of a target with more than
    /// two): n − collapsed − diverged − covered.
    pub fn partial(&self) -> usize {
        self.n
            .saturating_sub(self.collapsed + self.diverged + self.covered)
    }

    /// P(collapse) = collapsed / n.
    pub fn p_collapse(&self) -> f64 {
        self.collapsed as f64 / self.n.max(1) as f64
    }
}

/// Aggregates runs per cell, ordered by (β_i, t0). A run key (β_i, t0, seed) that occurs more
/// than once counts once (its first occurrence).
pub fn aggregate(runs: &[RunLine]) -> Vec<CellStats> {
    // a canonical order, so that floating-point sums do not depend on the order in which
    // runs finished (thread count, interruptions)
    let mut seen = HashSet::new();
    let mut sorted: Vec<&RunLine> = runs.iter().filter(|r| seen.insert(key_of(r))).collect();
    sorted.sort_by_key(|r| key_of(r));
    let mut map: BTreeMap<(u64, u64), CellStats> = BTreeMap::new();
    // sums and counts of light-mode mass, mode-weight error, ESS fraction, KL
    let mut means: BTreeMap<(u64, u64), [(f64, usize); 4]> = BTreeMap::new();
    for r in sorted {
        // order keys: β_i then t0 (both positive: bit order = numeric order)
        let k = (r.beta_i.to_bits(), r.t0.to_bits());
        let e = map.entry(k).or_insert(CellStats {
            cell: Cell {
                beta_i: r.beta_i,
                t0: r.t0,
            },
            n: 0,
            collapsed: 0,
            diverged: 0,
            covered: 0,
            mean_light_mass: 0.0,
            mean_mode_weight_error: f64::NAN,
            mean_ess_fraction: f64::NAN,
            mean_kl: f64::NAN,
        });
        e.n += 1;
        match r.outcome {
            OutcomeKind::Collapsed => e.collapsed += 1,
            OutcomeKind::Diverged => e.diverged += 1,
            OutcomeKind::Covered => e.covered += 1,
            OutcomeKind::Partial => {}
        }
        let me = means.entry(k).or_insert([(0.0, 0); 4]);
        for (acc, v) in
            me.iter_mut()
                .zip([r.light_mode_mass, r.mode_weight_error, r.ess_fraction, r.kl])
        {
            if let Some(v) = v {
                acc.0 += v;
                acc.1 += 1;
            }
        }
    }
    let mean = |(s, n): (f64, usize)| if n > 0 { s / n as f64 } else { f64::NAN };
    map.into_iter()
        .map(|(k, mut c)| {
            if let Some(m) = means.get(&k) {
                c.mean_light_mass = mean(m[0]);
                c.mean_mode_weight_error = mean(m[1]);
                c.mean_ess_fraction = mean(m[2]);
                c.mean_kl = mean(m[3]);
            } else {
                c.mean_light_mass = f64::NAN;
            }
            c
        })
        .collect()
}

/// The header of cells.csv.
pub const CELLS_HEADER: &str =
    "beta_i,t0,rate,n,collapsed,diverged,covered,partial,p_collapse,ci_low,ci_high,mean_light_mass";

/// The extra columns of cells.csv for flow students (means over the cell's finished runs).
pub const FLOW_CELLS_COLUMNS: &str = "mean_mode_weight_error,mean_ess_fraction,mean_kl";

/// Writes DIR/cells.csv: [`CELLS_HEADER`], plus [`FLOW_CELLS_COLUMNS`] when the runs are
/// flow runs.
pub fn write_cells(dir: &Path, runs: &[RunLine]) -> Result<Vec<CellStats>> {
    let stats = aggregate(runs);
    let flow = runs.iter().any(|r| r.mode_weight_error.is_some());
    let mut s = String::from(CELLS_HEADER);
    if flow {
        s.push(',');
        s.push_str(FLOW_CELLS_COLUMNS);
    }
    s.push('\n');
    for c in &stats {
        let (lo, hi) = wilson_interval(c.collapsed, c.n);
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{},{},{}",
            c.cell.beta_i,
            c.cell.t0,
            c.cell.rate(),
            c.n,
            c.collapsed,
            c.diverged,
            c.covered,
            c.partial(),
            c.p_collapse(),
            lo,
            hi,
            c.mean_light_mass
        );
        if flow {
            s.pop();
            let _ = writeln!(
                s,
                ",{},{},{}",
                c.mean_mode_weight_error, c.mean_ess_fraction, c.mean_kl
            );
        }
    }
    output::write_text(&dir.join("cells.csv"), &s)?;
    Ok(stats)
}

/// What `merge` did.
#[derive(Clone, Debug, Default)]
pub struct MergeReport {
    /// Distinct runs written.
    pub runs: usize,
    /// Things worth a warning: an incomplete shard set, shards of different counts N.
    pub warnings: Vec<String>,
}

/// The shard "K/N" recorded in the first line of a sweep.toml, if any.
fn meta_shard(text: &str) -> Option<Shard> {
    let first = text.lines().next()?;
    Shard::parse(first.strip_prefix("# shard ")?).ok()
}

/// Merges shard directories into `out` (runs.jsonl sorted by cell and seed, each line copied
/// byte for byte; cells.csv; sweep.toml). Refuses shards whose configurations differ and an
/// `out` that already holds a sweep; drops duplicate runs; warns when the shards do not make a
/// whole set (a shard K/N missing, or shards of different N).
pub fn merge(dirs: &[PathBuf], out: &Path) -> Result<MergeReport> {
    if dirs.is_empty() {
        return Err(Error::Invalid(
            "merge needs at least one sweep directory".into(),
        ));
    }
    if out.join(META).exists() || has_runs(out) {
        return Err(Error::Invalid(format!(
            "{} already holds a sweep; merge writes into a new or empty directory (choose \
             another --out)",
            out.display()
        )));
    }
    let mut config: Option<(String, PathBuf)> = None;
    let mut runs: BTreeMap<RunKey, (RunLine, String)> = BTreeMap::new();
    let mut shards: Vec<Option<Shard>> = Vec::new();
    for d in dirs {
        let p = d.join(META);
        let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, "read", e))?;
        shards.push(meta_shard(&text));
        let c = meta_config(&text);
        match &config {
            None => config = Some((c, d.clone())),
            Some((first, fd)) if *first != c => {
                return Err(Error::Invalid(format!(
                    "{} and {} are sweeps of different configurations; refusing to merge",
                    fd.display(),
                    d.display()
                )));
            }
            _ => {}
        }
        for r in read_runs_raw(&d.join("runs.jsonl"), false)? {
            runs.entry(key_of(&r.0)).or_insert(r);
        }
    }
    let mut warnings = Vec::new();
    if shards.iter().all(Option::is_some) {
        let counts: std::collections::BTreeSet<usize> =
            shards.iter().flatten().map(|s| s.count).collect();
        if counts.len() > 1 {
            warnings.push(format!(
                "the shards split the grid in different numbers of parts (N = {}): some runs \
                 may be missing",
                counts
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        } else if let Some(&n) = counts.iter().next() {
            let have: HashSet<usize> = shards.iter().flatten().map(|s| s.index).collect();
            let missing: Vec<String> = (1..=n)
                .filter(|k| !have.contains(k))
                .map(|k| format!("{k}/{n}"))
                .collect();
            if !missing.is_empty() {
                warnings.push(format!(
                    "incomplete shard set: shard{} {} not given; the merged sweep lacks their runs",
                    if missing.len() > 1 { "s" } else { "" },
                    missing.join(", ")
                ));
            }
        }
    }
    output::ensure_dir(out)?;
    let _lock = lock_dir(out)?;
    let (cfg_text, _) = config.unwrap_or_default();
    let mut lines: Vec<&(RunLine, String)> = runs.values().collect();
    lines.sort_by(|(a, _), (b, _)| {
        (a.beta_i, a.t0, a.seed)
            .partial_cmp(&(b.beta_i, b.t0, b.seed))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut text = String::new();
    for (_, raw) in &lines {
        text.push_str(raw);
        text.push('\n');
    }
    output::write_text(&out.join("runs.jsonl"), &text)?;
    let all: Vec<RunLine> = lines.into_iter().map(|(l, _)| l.clone()).collect();
    write_cells(out, &all)?;
    // last: a directory with sweep.toml is a finished merge
    output::write_text(&out.join(META), &(cfg_text + "\n"))?;
    Ok(MergeReport {
        runs: all.len(),
        warnings,
    })
}
