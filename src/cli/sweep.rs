//! `annealvi sweep` (with its `--dry-run` estimate) and `annealvi merge`.

use super::args::{MergeArgs, SweepArgs};
use super::budget_of;
use annealvi::error::{Error, Result};
use annealvi::sweep::{self, RunPlan, Shard, SweepConfig, SweepOptions};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

/// The signals that stop a sweep cleanly: SIGINT (Ctrl-C), SIGTERM (`kill`, Slurm before a
/// preemption or a time limit) and SIGHUP (a closed terminal). The first sets the sweep's cancel
/// flag; a second one of the same kind ends the process at once.
struct Signals {
    cancel: Arc<AtomicBool>,
    which: Arc<AtomicUsize>,
}

impl Signals {
    fn install() -> Result<Signals> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        use signal_hook::flag;
        let cancel = Arc::new(AtomicBool::new(false));
        let which = Arc::new(AtomicUsize::new(0));
        #[cfg(unix)]
        let sigs = [SIGINT, SIGTERM, signal_hook::consts::SIGHUP];
        #[cfg(not(unix))]
        let sigs = [SIGINT, SIGTERM];
        for sig in sigs {
            let fail = |e: std::io::Error| {
                Error::Invalid(format!("cannot install the handler of signal {sig}: {e}"))
            };
            // order matters: the shutdown check sees the flag as it was before this signal
            flag::register_conditional_shutdown(sig, 130, Arc::clone(&cancel)).map_err(fail)?;
            flag::register_usize(sig, Arc::clone(&which), sig as usize).map_err(fail)?;
            flag::register(sig, Arc::clone(&cancel)).map_err(fail)?;
        }
        Ok(Signals { cancel, which })
    }

    fn name(&self) -> &'static str {
        use signal_hook::consts::{SIGINT, SIGTERM};
        match self.which.load(Ordering::SeqCst) as i32 {
            s if s == SIGINT => "SIGINT",
            s if s == SIGTERM => "SIGTERM",
            _ => "SIGHUP",
        }
    }
}

/// `annealvi sweep` (and its `--dry-run`).
pub fn sweep(a: SweepArgs) -> Result<()> {
    let SweepArgs {
        config,
        sets,
        out,
        resume,
        shard,
        dry_run,
        threads: _,
        max_minutes,
    } = a;
    let budget = max_minutes.map(budget_of).transpose()?;
    let cfg = SweepConfig::load(config.as_deref(), &sets)?;
    let shard = shard.as_deref().map(Shard::parse).transpose()?;
    let opts = SweepOptions {
        resume,
        shard,
        budget,
        ..SweepOptions::new(out.clone())
    };
    if dry_run {
        // refuse exactly what the sweep would refuse, before estimating anything
        sweep::check_sweep_dir(&cfg, &opts)?;
        return dry_run_report(&cfg, shard, &out, resume);
    }
    let signals = Signals::install()?;
    let rep = sweep::run_sweep_cancellable(&cfg, &opts, &signals.cancel)?;
    if signals.cancel.load(Ordering::SeqCst) {
        return Err(Error::Invalid(format!(
            "interrupted by {}: the sweep stopped taking runs and dropped those in flight; {} \
             runs written now, {} of {} done in all, {} left; {} rewritten from runs.jsonl. \
             Continue with the same command and --resume",
            signals.name(),
            rep.ran,
            rep.skipped + rep.ran,
            rep.planned,
            rep.remaining,
            out.join("cells.csv").display()
        )));
    }
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
    if rep.remaining > 0 && rep.ran == 0 {
        println!(
            "sweep incomplete: no run was started, the --max-minutes budget was spent before \
             the first one ({} of {} runs left); run the same command with --resume and a \
             larger budget to continue",
            rep.remaining, rep.planned
        );
    } else if rep.remaining > 0 {
        println!(
            "sweep incomplete: the --max-minutes budget ran out with {} of {} runs left; \
             run the same command with --resume to continue",
            rep.remaining, rep.planned
        );
    }
    Ok(())
}

/// `--dry-run`: the number of runs left and an estimate of the time, from a short timed run.
fn dry_run_report(
    cfg: &SweepConfig,
    shard: Option<Shard>,
    out: &std::path::Path,
    resume: bool,
) -> Result<()> {
    // the runs the sweep would run, by the sweep's own rule (shard, then those not recorded)
    let done = if resume {
        sweep::recorded_runs(&out.join("runs.jsonl"), false)?
    } else {
        Default::default()
    };
    let RunPlan {
        cells,
        all,
        missing: todo,
        ..
    } = RunPlan::new(cfg, shard, &done);
    let steps = cfg.total_steps(&todo, &cells);
    // calibrate: one short run of the first cell's configuration
    let mut probe = cfg.cell_config(&cells[0]);
    probe.optim.steps = 300;
    let t = Instant::now();
    annealvi::run::Trainer::new(&probe.compile()?).run()?;
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
    if cfg.grid.device == annealvi::sweep::Device::Cpu {
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

/// `annealvi merge`.
pub fn merge(a: MergeArgs) -> Result<()> {
    let MergeArgs { dirs, out, into } = a;
    let (rep, summary) = match (out, into) {
        (_, Some(into)) => {
            let rep = sweep::merge_into(&dirs, &into)?;
            let s = format!(
                "added {} new runs from {} directories into {} ({} runs in all)",
                rep.added,
                dirs.len(),
                into.display(),
                rep.runs
            );
            (rep, s)
        }
        (Some(out), None) => {
            let rep = sweep::merge(&dirs, &out)?;
            let s = format!(
                "merged {} runs from {} directories into {}",
                rep.runs,
                dirs.len(),
                out.display()
            );
            (rep, s)
        }
        (None, None) => {
            return Err(annealvi::error::Error::Invalid(
                "merge needs --out DIR (a new sweep) or --into DIR (an existing one)".into(),
            ));
        }
    };
    for n in &rep.notes {
        println!("{n}");
    }
    for w in &rep.warnings {
        eprintln!("warning: {w}");
    }
    println!("{summary}");
    Ok(())
}
