//! Helpers shared by integration tests (a module of each test that declares `mod common;`).

use annealvi::sweep::{SweepConfig, SweepOptions, SweepReport};

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
