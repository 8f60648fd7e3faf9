//! `annealvi train`: one run, its trajectory and summary.

use super::args::TrainArgs;
use annealvi::config::Config;
use annealvi::error::Result;
use annealvi::family::realnvp::FlowStats;
use annealvi::output;
use annealvi::run::{AnyRun, Trainer};
use annealvi::train::{AnnealedAt, FlowRecorder, Recorder, RunResult};
use std::path::Path;
use std::time::Instant;

/// `annealvi train`: config.toml, trajectory.csv, marginals.csv and summary.json in --out.
pub fn train(a: TrainArgs) -> Result<()> {
    let TrainArgs { config, sets, out } = a;
    let out = out.as_path();
    let mut cfg = Config::load(config.as_deref(), &sets)?;
    if cfg.record.marginal_steps.is_empty() {
        let t = cfg.optim.steps;
        cfg.record.marginal_steps = vec![0, t / 4, t / 2, t];
    }
    output::ensure_dir(out)?;
    output::write_text(&out.join("config.toml"), &cfg.to_toml())?;
    let start = Instant::now();
    let exp = cfg.compile()?;
    // a recorder of each family's records: the run keeps the ones of its family
    // (and the step at which an adaptive schedule reached β = 1)
    let mut rec = (
        (Recorder::default(), FlowRecorder::default()),
        AnnealedAt::default(),
    );
    let run = Trainer::new(&exp).observer(&mut rec).run()?;
    let wall = start.elapsed().as_secs_f64();
    let ((mix, flow), at) = rec;
    match run {
        AnyRun::Mixture(_, res) => write_mixture(&cfg, out, &mix, &res, at, wall),
        AnyRun::Flow(_, res) => write_flow(&cfg, out, &flow, &res, at, wall),
    }
}

/// The Gaussian-mixture student's files: trajectory.csv, marginals.csv and summary.json.
fn write_mixture(
    cfg: &Config,
    out: &Path,
    rec: &Recorder,
    res: &RunResult,
    at: AnnealedAt,
    wall: f64,
) -> Result<()> {
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
        &output::summary_json(res, cfg.seed, wall, final_kl, at.0),
    )?;
    match res.outcome {
        annealvi::metrics::Outcome::Diverged { step } => println!(
            "diverged at step {step} (a non-finite loss or gradient, or the student out of bounds: see optim.divergence_bound); {wall:.2} s; wrote {}",
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

/// The RealNVP student's files: trajectory.jsonl (one record per line) and summary.json.
fn write_flow(
    cfg: &Config,
    out: &Path,
    rec: &FlowRecorder,
    res: &RunResult<FlowStats>,
    at: AnnealedAt,
    wall: f64,
) -> Result<()> {
    let mut lines = String::new();
    for r in &rec.records {
        lines.push_str(&serde_json::to_string(r).unwrap_or_default());
        lines.push('\n');
    }
    output::write_text(&out.join("trajectory.jsonl"), &lines)?;
    let mut summary = serde_json::json!({
        "seed": cfg.seed,
        "wall_seconds": wall,
        "result": res,
    });
    if let Some(step) = at.0 {
        summary["anneal_steps"] = step.into();
    }
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
    if let Some(b) = &res.stats.benchmark {
        let mut line = format!(
            "benchmark ({} samples): reverse ESS {:.4}, ln Z estimate {:.4} (exact {:.4}, error {:.4})",
            b.samples, b.reverse_ess, b.log_z_estimate, b.log_z, b.log_z_error
        );
        if let (Some(c), Some(k), Some(e)) = (b.modes_covered, b.modes, b.emc) {
            line.push_str(&format!(", modes covered {c}/{k}, EMC {e:.4}"));
        }
        if let (Some(err), Some(want)) = (b.well_mass_error, b.right_well_mass_target) {
            line.push_str(&format!(
                ", right-well mass error {err:.4} (max over copies; exact mass {want:.4})"
            ));
        }
        println!("{line}");
    }
    Ok(())
}
