//! Running a sweep: options and report, the checks of the output directory against the
//! sweep it holds, and the parallel execution of the runs left (CPU engine, or the GPU
//! engines of module `gpu`) with each finished run appended to runs.jsonl.

#[cfg(feature = "gpu")]
use super::gpu;
use super::{
    Cell, Device, META, RunLine, RunPlan, RunSpec, Shard, SweepConfig, clean_stale, has_runs,
    lock_dir, meta_config, meta_text, read_runs, recorded_runs, write_cells,
};
use crate::error::{Error, Result};
use crate::output;
use rayon::prelude::*;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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
    /// Runs of this shard still missing (the budget ran out; 0: complete).
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
    /// Stop after this many new runs (for tests of interruption; None = all; cargo feature
    /// `testing`).
    #[cfg(feature = "testing")]
    pub max_runs: Option<usize>,
    /// Wall-time budget (`--max-minutes`): no run (CPU engine) or batch (GPU engines) starts
    /// once it is spent, nor a GPU batch that the time per flow-step measured so far says
    /// would overrun it; runs in flight finish and are written. None = no limit.
    pub budget: Option<Duration>,
}

impl SweepOptions {
    /// A fresh sweep into `out`: no resume, every shard, no time budget.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        Self {
            out: out.into(),
            resume: false,
            shard: None,
            #[cfg(feature = "testing")]
            max_runs: None,
            budget: None,
        }
    }
}

/// Runs (or resumes) a sweep; writes runs.jsonl, cells.csv and sweep.toml into `opts.out`.
pub fn run_sweep(cfg: &SweepConfig, opts: &SweepOptions) -> Result<SweepReport> {
    run_sweep_cancellable(cfg, opts, &AtomicBool::new(false))
}

/// [`run_sweep`] that starts no new run once `cancel` is set (from another thread, e.g. on
/// a signal or on Ctrl-C in a host language); runs in flight stop at their next step and are
/// dropped (CPU engine; the GPU engines finish their batch in flight). Runs already finished
/// stay in runs.jsonl and cells.csv is rewritten from them, so the sweep can be resumed.
/// `SweepReport::ran` counts the runs done.
pub fn run_sweep_cancellable(
    cfg: &SweepConfig,
    opts: &SweepOptions,
    cancel: &AtomicBool,
) -> Result<SweepReport> {
    run_sweep_with(cfg, opts, cancel, None)
}

/// `--out` must be a directory or not exist yet.
fn check_out_dir(out: &Path) -> Result<()> {
    if out.exists() && !out.is_dir() {
        return Err(Error::config(
            "--out",
            out.display(),
            "a directory for the sweep (new, or one to --resume); this path is a file",
        ));
    }
    Ok(())
}

/// Checks the sweep directory `opts.out` against the sweep `cfg`, without writing anything:
/// refuses what [`run_sweep`] refuses (a sweep there without `--resume`; with `--resume`, a
/// sweep of another configuration or shard, a damaged sweep.toml, runs without their
/// sweep.toml). `Ok(true)`: sweep.toml must be (re)written before the runs start.
fn check_meta(cfg: &SweepConfig, opts: &SweepOptions) -> Result<bool> {
    let meta_path = opts.out.join(META);
    let meta = meta_text(cfg, opts.shard);
    match std::fs::read_to_string(&meta_path) {
        Ok(old) => {
            if !opts.resume {
                return Err(Error::Invalid(format!(
                    "{} already holds a sweep; pass --resume to continue it, or choose another --out",
                    opts.out.display()
                )));
            }
            // the same configuration: the same text, or (written by a version that named
            // some keys otherwise, e.g. objective.engine) the same configuration once read
            let same = meta_config(&old) == meta_config(&meta)
                || toml::from_str::<SweepConfig>(&meta_config(&old)).is_ok_and(|o| o == *cfg);
            let shard = |t: &str| {
                t.lines()
                    .next()
                    .filter(|l| l.starts_with('#'))
                    .map(str::to_owned)
            };
            if same && shard(&old) == shard(&meta) {
                return Ok(false);
            }
            if !has_runs(&opts.out) {
                // no run recorded yet (e.g. a sweep.toml torn by an older version): nothing
                // to protect, start afresh with this configuration
                return Ok(true);
            }
            Err(Error::Invalid(meta_mismatch(&opts.out, &old, &meta)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if has_runs(&opts.out) {
                return Err(Error::Invalid(format!(
                    "{} holds runs.jsonl but no sweep.toml, so the configuration of its runs is \
                     unknown; refusing to add to it (move runs.jsonl away, or choose another --out)",
                    opts.out.display()
                )));
            }
            Ok(true)
        }
        Err(e) => Err(Error::io(&meta_path, "read", e)),
    }
}

/// Why the sweep in `dir` (sweep.toml text `old`) cannot be resumed by this one (`new`): a
/// damaged sweep.toml, another shard, or the configuration keys that differ.
fn meta_mismatch(dir: &Path, old: &str, new: &str) -> String {
    let old_cfg = toml::from_str::<toml::Table>(&meta_config(old));
    let Ok(old_cfg) = old_cfg else {
        return format!(
            "{}/sweep.toml is damaged (it is not a valid configuration), so the configuration \
             of the runs there is unknown; it cannot be resumed (move the directory away, or \
             choose another --out)",
            dir.display()
        );
    };
    if old.lines().next() != new.lines().next() && meta_config(old) == meta_config(new) {
        let shard = |t: &str| {
            t.lines()
                .next()
                .and_then(|l| l.strip_prefix("# shard "))
                .unwrap_or("none")
                .to_string()
        };
        return format!(
            "{} holds shard {} of this sweep; it cannot be resumed as shard {}",
            dir.display(),
            shard(old),
            shard(new)
        );
    }
    let new_cfg = toml::from_str::<toml::Table>(&meta_config(new)).unwrap_or_default();
    let mut diffs = Vec::new();
    diff_tables("", &old_cfg, &new_cfg, &mut diffs);
    format!(
        "{} holds a sweep of a different configuration; it cannot be resumed with this one \
         (differs in: {})",
        dir.display(),
        if diffs.is_empty() {
            "the shard".to_string()
        } else {
            diffs.join(", ")
        }
    )
}

/// The dotted keys whose values differ between two TOML tables (at most 8 listed).
fn diff_tables(prefix: &str, a: &toml::Table, b: &toml::Table, out: &mut Vec<String>) {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for k in keys {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (a.get(k), b.get(k)) {
            (Some(toml::Value::Table(x)), Some(toml::Value::Table(y))) => {
                diff_tables(&key, x, y, out)
            }
            (x, y) if x == y => {}
            (x, y) => {
                if out.len() < 8 {
                    let show =
                        |v: Option<&toml::Value>| v.map_or("(absent)".into(), |v| v.to_string());
                    out.push(format!("{key}: {} here, {} given", show(x), show(y)));
                }
            }
        }
    }
}

/// Checks, without writing anything, that a sweep of `cfg` with `opts` could start in
/// `opts.out`: everything [`run_sweep`] refuses before its first run is refused here with
/// the same error (used by `--dry-run`). A directory whose lock another process holds is
/// refused too.
pub fn check_sweep_dir(cfg: &SweepConfig, opts: &SweepOptions) -> Result<()> {
    check_out_dir(&opts.out)?;
    if opts.out.join(super::LOCK).exists() {
        // probe the lock only where it already exists: a dry run creates nothing
        drop(lock_dir(&opts.out)?);
    }
    check_meta(cfg, opts).map(|_| ())
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
    if runner.is_some() && !cfg.grid.device.is_cpu() {
        return Err(Error::config(
            "grid.device",
            format!("{:?}", cfg.grid.device),
            "\"cpu\" for runs against a user-defined target",
        ));
    }
    check_out_dir(&opts.out)?;
    output::ensure_dir(&opts.out)?;
    // one writer per directory: a second sweep (or merge) on it is refused
    let _lock = lock_dir(&opts.out)?;
    // temporaries of a killed merge or write: nobody else writes here while the lock is held
    for n in clean_stale(&opts.out) {
        crate::progress::note(&n);
    }
    let meta_path = opts.out.join(META);
    let runs_path = opts.out.join("runs.jsonl");
    let meta = meta_text(cfg, opts.shard);
    if check_meta(cfg, opts)? {
        output::write_text(&meta_path, &meta)?;
    }
    let RunPlan {
        cells,
        mine,
        missing,
        ..
    } = RunPlan::new(cfg, opts.shard, &recorded_runs(&runs_path, true)?);
    #[cfg(feature = "testing")]
    let todo = &missing[..missing.len().min(opts.max_runs.unwrap_or(usize::MAX))];
    #[cfg(not(feature = "testing"))]
    let todo = &missing[..];
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
        let mut text = line.to_json();
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
    match cfg.grid.device {
        Device::Cpu => todo.par_iter().for_each(|spec| {
            if !stop.load(Ordering::SeqCst)
                && !cancel.load(Ordering::Relaxed)
                && deadline.is_none_or(|d| Instant::now() < d)
            {
                match runner {
                    // a run still in flight when `cancel` is set stops at its next step and is
                    // dropped (not recorded): resume runs it again
                    None => {
                        if let Some(line) = cfg.run_one_cancellable(*spec, &cells, cancel) {
                            append(&line);
                        }
                    }
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
