//! The sweep's configuration: the grid of exponential schedules (β_i, t0) × seeds, its
//! validation, the cells and runs it defines, and the training of one run.

use super::{RunLine, run_line};
use crate::config::{Config, FamilyKind, ScheduleKind};
use crate::error::{Error, Result};
use crate::run::{AnyRun, Trainer};
use crate::seed::mix;
use crate::train::{AnnealedAt, RunResult};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

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
    #[serde(skip_serializing_if = "Device::is_cpu")]
    #[serde(alias = "engine")]
    pub device: Device,
    /// GPU engines: at most this many flows per device batch (the runs of a cell are split
    /// into batches of this size), in [1, 100000].
    #[serde(skip_serializing_if = "is_default_gpu_flows")]
    pub gpu_flows: usize,
}

/// Where a sweep's runs are trained.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    /// One run per CPU thread.
    #[default]
    Cpu,
    /// A cell's runs as one batch of flows on CUDA device 0 (feature `gpu`).
    Gpu,
    /// The GPU engine's code on its CPU emulator (feature `gpu`; for tests).
    GpuEmulator,
}

impl Device {
    pub(super) fn is_cpu(&self) -> bool {
        *self == Device::Cpu
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
            device: Device::Cpu,
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
        if g.device != Device::Cpu {
            self.validate_gpu()?;
        }
        // what the grid sets per cell must not also be set in [run] (it would be recorded in
        // sweep.toml and silently ignored)
        let sched = &self.run.schedule;
        if sched.kind == ScheduleKind::Adaptive {
            // the grid sets β_i and the budget t0; the rule's own keys come from [run.schedule]
            let plain = crate::schedule::ScheduleConfig::default();
            if sched.beta_i != plain.beta_i || sched.t0 != plain.t0 {
                return Err(Error::config(
                    "run.schedule",
                    "beta_i or t0 in an adaptive [run.schedule]",
                    "only kind, rho, every, samples and hold in a sweep's [run.schedule]: each cell's \
                     adaptive schedule starts at grid.beta_i with the budget grid.t0",
                ));
            }
            if g.device != Device::Cpu {
                return Err(Error::config(
                    "grid.device",
                    format!("{:?}", g.device).to_lowercase(),
                    "\"cpu\" with an adaptive schedule (the GPU engines run schedules β(t))",
                ));
            }
        } else if *sched != crate::schedule::ScheduleConfig::default() {
            return Err(Error::config(
                "run.schedule",
                "a [run.schedule] section",
                "no [run.schedule] in a sweep, or one with kind = \"adaptive\": each cell's \
                 schedule is β(t) = β_i^(1 − t/t0) from grid.beta_i and grid.t0 (β = 1 for the \
                 no-annealing cell), or the adaptive rule from β_i with the budget t0",
            ));
        }
        if self.run.optim.steps != crate::optim::OptimConfig::default().steps {
            return Err(Error::config(
                "run.optim.steps",
                self.run.optim.steps,
                "no run.optim.steps in a sweep: each run lasts t0 + grid.extra_steps steps \
                 (set grid.extra_steps)",
            ));
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
        use crate::target::TargetKind;
        let engine = match self.grid.device {
            Device::Gpu => "gpu",
            _ => "gpu_emulator",
        };
        if !cfg!(feature = "gpu") {
            return Err(Error::config(
                "grid.device",
                engine,
                "\"cpu\" in this build (the GPU engines need `cargo build --release --features gpu`)",
            ));
        }
        let r = &self.run;
        let need = |field: &str, value: String, expected: &str| {
            Err(Error::config(
                field,
                value,
                &format!("{expected} with grid.device = \"{engine}\""),
            ))
        };
        if r.student.family != FamilyKind::Realnvp {
            return need(
                "run.student.family",
                format!("{:?}", r.student.family).to_lowercase(),
                "\"realnvp\"",
            );
        }
        if matches!(r.target.kind, TargetKind::Gmm40 | TargetKind::ManyWell) {
            return need(
                "run.target.kind",
                if r.target.kind == TargetKind::Gmm40 {
                    "\"gmm40\"".into()
                } else {
                    "\"many_well\"".into()
                },
                "\"bimodal\" or \"mixture\" (the benchmark targets and their metrics run on \
                 grid.device = \"cpu\")",
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
            if c.schedule.kind != ScheduleKind::Adaptive {
                c.schedule.kind = ScheduleKind::Exponential;
            }
            c.schedule.beta_i = cell.beta_i;
            c.schedule.t0 = cell.t0;
            c.optim.steps = cell.t0 as usize + self.grid.extra_steps;
        }
        c
    }

    /// Runs one run of the sweep: the cell's configuration compiled into an
    /// [`Experiment`](crate::run::Experiment), trained by [`Trainer`] with the streams
    /// (seed, [`noise_index`]).
    pub fn run_one(&self, spec: RunSpec, cells: &[Cell]) -> RunLine {
        let (cell, trainer) = self.trainer_of(spec, cells);
        let start = Instant::now();
        let mut at = AnnealedAt::default();
        let run = trainer.and_then(|(exp, streams)| {
            Trainer::new(&exp)
                .streams(streams.0, streams.1)
                .observer(&mut at)
                .run()
        });
        self.line_of(spec, cell, run, at, start)
    }

    /// [`Self::run_one`] that stops once `cancel` is set (`None`: the run is abandoned; see
    /// [`Trainer::cancel`]).
    pub fn run_one_cancellable(
        &self,
        spec: RunSpec,
        cells: &[Cell],
        cancel: &AtomicBool,
    ) -> Option<RunLine> {
        let (cell, trainer) = self.trainer_of(spec, cells);
        let start = Instant::now();
        let mut at = AnnealedAt::default();
        let run = trainer.and_then(|(exp, streams)| {
            Trainer::new(&exp)
                .streams(streams.0, streams.1)
                .cancel(cancel)
                .observer(&mut at)
                .run()
        });
        if matches!(run, Err(crate::Error::Interrupted)) {
            return None;
        }
        Some(self.line_of(spec, cell, run, at, start))
    }

    /// The cell of a run, its compiled configuration and its stream indices (init, noise).
    #[allow(clippy::type_complexity)]
    fn trainer_of(
        &self,
        spec: RunSpec,
        cells: &[Cell],
    ) -> (Cell, Result<(crate::run::Experiment, (u64, u64))>) {
        let cell = cells[spec.cell];
        let streams = (spec.seed as u64, noise_index(&cell, spec.seed));
        (
            cell,
            self.cell_config(&cell).compile().map(|e| (e, streams)),
        )
    }

    /// The line of a finished run.
    fn line_of(
        &self,
        spec: RunSpec,
        cell: Cell,
        run: Result<AnyRun>,
        at: AnnealedAt,
        start: Instant,
    ) -> RunLine {
        let (res, gmm, flow) = match run {
            Ok(AnyRun::Flow(_, r)) => {
                let (res, flow) = split_stats(r);
                (res, None, Some(flow))
            }
            Ok(AnyRun::Mixture(_, r)) => {
                let (res, gmm) = split_stats(r);
                (res, Some(gmm), None)
            }
            // unreachable after validation; recorded as a divergence at step 0, not a panic
            Err(_) => (RunResult::diverged(0, ()), None, None),
        };
        let mut line = run_line(
            cell,
            spec.seed,
            res,
            gmm,
            flow,
            start.elapsed().as_secs_f64(),
        );
        line.anneal_steps = at.0;
        line
    }

    /// Total SGD steps of a list of runs.
    pub fn total_steps(&self, runs: &[RunSpec], cells: &[Cell]) -> u64 {
        runs.iter()
            .map(|r| self.cell_config(&cells[r.cell]).optim.steps as u64)
            .sum()
    }
}

/// A run's result without its statistics, and the statistics.
fn split_stats<S>(r: RunResult<S>) -> (RunResult<()>, S) {
    let res = RunResult {
        outcome: r.outcome,
        final_step: r.final_step,
        light_mode_mass: r.light_mode_mass,
        stats: (),
    };
    (res, r.stats)
}

/// The noise stream index of seed `seed` in `cell` (the initialisation uses the seed index).
pub fn noise_index(cell: &Cell, seed: usize) -> u64 {
    mix(cell.key() ^ mix(seed as u64 + 0x5eed))
}
