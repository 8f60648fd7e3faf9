//! The command line's modules: the grammar (`args`), one file per group of commands, and here
//! the dispatch, the rayon pool of `--threads` and the checks shared by several commands.

pub mod args;
mod bench;
mod figure;
mod sweep;
mod theory;
mod train;

use annealvi::error::{Error, Result};
use annealvi::output;
use args::{BenchCommand, Cli, Command, DeviceArg};

/// Runs the command; those with `--threads` run inside one rayon pool of that many threads
/// (0 = all cores), which every parallel loop of the library uses.
pub fn run(cli: Cli) -> Result<()> {
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

/// Runs one command.
fn execute(command: Command) -> Result<()> {
    match command {
        Command::Train(a) => train::train(a),
        Command::Figure(a) => figure::figure(a),
        Command::Sweep(a) => sweep::sweep(a),
        Command::Theory(a) => theory::theory(a),
        Command::Design(a) => theory::design(a),
        Command::Merge(a) => sweep::merge(a),
        Command::Reproduce(a) => figure::reproduce(a),
        Command::Bench { which } => match which {
            BenchCommand::Gmm(a) => bench::gmm(a),
            BenchCommand::Flow(a) => bench::flow(a),
            BenchCommand::Formula(a) => bench::formula(a),
            #[cfg(feature = "gpu")]
            BenchCommand::FlowGpu(a) => bench::flow_gpu(a),
        },
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

/// Refuses `--device gpu` in a build without the `gpu` feature, before any work.
fn check_device(device: DeviceArg) -> Result<()> {
    if device == DeviceArg::Gpu && !cfg!(feature = "gpu") {
        return Err(Error::config(
            "--device",
            "gpu",
            "cpu in this build (the GPU engine, grid.device = \"gpu\", needs `cargo build --release --features gpu`)",
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
