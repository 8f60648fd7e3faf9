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
//!   and refuses shards of different configurations; it builds a new sweep in a temporary
//!   directory renamed into place ([`merge`]) or adds the runs it lacks to an existing one
//!   ([`merge_into`]), ignores lines outside the grid and warns about incomplete cells;
//! * temporaries left by a killed merge or write are removed by the next merge or sweep on
//!   the directory.
//!
//! `DIR/cells.csv` aggregates the runs per cell with Wilson 95% intervals.
//!
//! Engines (`grid.device`): `cpu` (default) runs every run on its own thread; `gpu` (cargo
//! feature `gpu`, RealNVP students) trains the runs of a cell as one batch of flows on the CUDA
//! device (module `gpu`), `gpu_emulator` the same on the CPU emulator of that device (slow; for
//! tests). The GPU engines draw each run's noise from the run's own CPU stream, so they train
//! the same runs as the CPU engine up to f32 rounding; a cell's runs are appended when the
//! whole batch finishes.
//!
//! # Files
//! * `grid` — [`SweepConfig`]: the grid, its cells and runs, one run's training;
//! * `store` — runs.jsonl ([`RunLine`], [`read_runs`]), sweep.toml and the directory lock;
//! * `plan` — [`Shard`] and [`RunPlan`]: the runs of a shard still to be done;
//! * `exec` — [`run_sweep`] and its variants;
//! * `aggregate` — [`aggregate`] per cell and cells.csv;
//! * `merge` — [`merge`] and [`merge_into`] of shards;
//! * `gpu` — the GPU engines (cargo feature `gpu`).

mod aggregate;
mod exec;
#[cfg(feature = "gpu")]
mod gpu;
mod grid;
mod merge;
mod plan;
mod store;

pub use aggregate::{
    BenchmarkMeans, CELLS_HEADER, CellStats, FLOW_CELLS_COLUMNS, LOG_Z_CELLS_COLUMNS,
    MODE_CELLS_COLUMNS, aggregate, write_cells,
};
pub use exec::{
    RunFn, SweepOptions, SweepReport, check_sweep_dir, run_sweep, run_sweep_cancellable,
    run_sweep_with,
};
pub use grid::{
    Axis, Cell, Device, GridConfig, MAX_RUNS, RangeSpec, RunSpec, SweepConfig, noise_index,
};
use merge::clean_stale;
pub use merge::{MergeReport, merge, merge_into};
pub use plan::{RunPlan, Shard, recorded_runs};
pub use store::{
    LOCK, MAX_LINE_BYTES, RunKey, RunLine, lock_dir, read_runs, read_runs_raw, run_line,
};
use store::{META, has_runs, key_of, meta_config, meta_text};
