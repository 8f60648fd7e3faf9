//! Helpers shared by integration tests (a module of each test that declares `mod common;`).
// each test crate uses a part of these
#![allow(dead_code)]

use annealvi::sweep::{SweepConfig, SweepOptions, SweepReport};
use std::path::PathBuf;
use std::process::{Command, Output};

/// A tiny CPU sweep: 2 × 2 cells + no annealing, 3 seeds (15 runs), d = 16, tens of steps.
pub const TINY: &str = r#"
[grid]
beta_i = [0.05, 0.2]
t0 = [50, 100]
no_annealing = true
seeds = 3
extra_steps = 20

[run]
seed = 7
[run.target]
d = 16
[run.student]
sigma0 = "schedule"
[run.objective]
samples = 8
"#;

/// A fresh, empty temporary directory for test `group`, case `name` (this process's own).
pub fn tmp_dir(group: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("annealvi-{group}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs the `annealvi` program built with the tests.
pub fn annealvi<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_annealvi"))
        .args(args)
        .output()
        .unwrap()
}

/// [`annealvi::sweep::run_sweep`] on a rayon pool of `threads` threads: the library runs on
/// its caller's pool, so a test that times runs one after another installs a pool of 1.
pub fn run_sweep_on(
    threads: usize,
    cfg: &SweepConfig,
    opts: &SweepOptions,
) -> annealvi::Result<SweepReport> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(|| annealvi::sweep::run_sweep(cfg, opts))
}
