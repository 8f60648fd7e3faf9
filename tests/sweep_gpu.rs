//! The GPU sweep engine (`grid.device = "gpu_emulator"`: the device code path on its CPU
//! emulator) trains the same runs as the CPU engine: same initialisation, same noise, same
//! outcome evaluation; only the f32 arithmetic of the device differs.

#![cfg(feature = "gpu")]

mod common;

use annealvi::sweep::{SweepConfig, SweepOptions, read_runs, run_sweep};
use common::run_sweep_on;

const CONFIG: &str = r#"
[grid]
beta_i = [0.1]
t0 = [30]
no_annealing = true
seeds = 3
extra_steps = 10

[run]
seed = 5
[run.target]
d = 4
direction = "diagonal"
[run.student]
family = "realnvp"
[run.student.realnvp]
layers = 2
depth = 2
width = 8
sigma0 = "schedule"
eval_samples = 2000
[run.objective]
samples = 16
estimator = "ESTIMATOR"
[run.optim]
kind = "adam"
lr = 0.01
"#;
fn sweep(engine: &str, estimator: &str) -> Vec<annealvi::sweep::RunLine> {
    let text = CONFIG.replace("ESTIMATOR", estimator);
    let mut cfg: SweepConfig = toml::from_str(&text).unwrap();
    cfg.grid.device = toml::Value::String(engine.into()).try_into().unwrap();
    cfg.grid.gpu_flows = 2; // batches of 2 flows: 3 seeds = 2 batches per cell
    cfg.validate().unwrap();
    let out = std::env::temp_dir().join(format!(
        "annealvi-sweep-gpu-{}-{engine}-{estimator}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out);
    let opts = SweepOptions {
        out: out.clone(),
        resume: false,
        shard: None,
        max_runs: None,
        budget: None,
    };
    run_sweep(&cfg, &opts).unwrap();
    let mut runs = read_runs(&out.join("runs.jsonl"), false).unwrap();
    let _ = std::fs::remove_dir_all(&out);
    runs.sort_by(|a, b| {
        (a.t0, a.seed)
            .partial_cmp(&(b.t0, b.seed))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    runs
}

#[test]
fn gpu_engine_trains_the_same_runs_as_the_cpu_engine() {
    for est in ["full", "stl"] {
        let cpu = sweep("cpu", est);
        let gpu = sweep("gpu_emulator", est);
        assert_eq!(cpu.len(), 6);
        assert_eq!(gpu.len(), 6);
        for (a, b) in cpu.iter().zip(&gpu) {
            assert_eq!((a.beta_i, a.t0, a.seed), (b.beta_i, b.t0, b.seed));
            assert_eq!(a.steps, b.steps);
            assert_eq!(a.outcome, b.outcome, "{a:?} vs {b:?}");
            let (ma, mb) = (a.light_mode_mass.unwrap(), b.light_mode_mass.unwrap());
            let (ka, kb) = (a.kl.unwrap(), b.kl.unwrap());
            eprintln!(
                "{est} seed {} t0 {}: light mass {ma} / {mb}, KL {ka} / {kb}",
                a.seed, a.t0
            );
            assert!((ma - mb).abs() <= 0.002, "{est}: light mass {ma} vs {mb}");
            assert!(
                (ka - kb).abs() <= 1e-4 * ka.abs().max(0.1),
                "{est}: KL {ka} vs {kb}"
            );
        }
    }
}

#[test]
fn gpu_engine_refuses_what_the_device_does_not_do() {
    let text = CONFIG.replace("ESTIMATOR", "full");
    let base: SweepConfig = toml::from_str(&text).unwrap();
    let mut cfg = base.clone();
    cfg.grid.device = toml::Value::String("gpu_emulator".into())
        .try_into()
        .unwrap();
    cfg.validate().unwrap();
    for (field, edit) in [
        (
            "run.student.family",
            (|c: &mut SweepConfig| c.run.student.family = annealvi::config::FamilyKind::Gmm)
                as fn(&mut SweepConfig),
        ),
        ("run.optim.kind", |c| {
            c.run.optim.kind = annealvi::config::OptimKind::Sgd
        }),
        ("run.optim.max_grad_norm", |c| {
            c.run.optim.max_grad_norm = 1.0
        }),
        ("run.objective.loss_scale", |c| {
            c.run.objective.loss_scale = annealvi::config::LossScale::PerDim
        }),
    ] {
        let mut bad = cfg.clone();
        edit(&mut bad);
        let e = bad.validate().unwrap_err().to_string();
        assert!(e.contains(field) && e.contains("gpu_emulator"), "{e}");
    }
}

#[test]
fn gpu_engine_without_a_device_is_an_error_not_a_panic() {
    let text = CONFIG.replace("ESTIMATOR", "full");
    let mut cfg: SweepConfig = toml::from_str(&text).unwrap();
    cfg.grid.device = toml::Value::String("gpu".into()).try_into().unwrap();
    let out = std::env::temp_dir().join(format!("annealvi-sweep-nogpu-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let opts = SweepOptions {
        out: out.clone(),
        resume: false,
        shard: None,
        max_runs: None,
        budget: None,
    };
    let r = run_sweep_on(1, &cfg, &opts);
    let _ = std::fs::remove_dir_all(&out);
    match r {
        // a machine with a CUDA device trains the sweep
        Ok(rep) => assert_eq!(rep.ran, 6),
        Err(e) => eprintln!("no device, as expected here: {e}"),
    }
}

/// `--max-minutes` on the GPU engine's code path: the budget stops the sweep between batches
/// (every written line a whole run), and `--resume` completes it to the uninterrupted runs.
#[test]
fn gpu_engine_budget_stops_between_batches() {
    use std::time::{Duration, Instant};
    let text = CONFIG.replace("ESTIMATOR", "full");
    let mut cfg: SweepConfig = toml::from_str(&text).unwrap();
    cfg.grid.device = toml::Value::String("gpu_emulator".into())
        .try_into()
        .unwrap();
    cfg.grid.gpu_flows = 1; // 6 batches of 1 flow
    cfg.validate().unwrap();
    let dir =
        std::env::temp_dir().join(format!("annealvi-sweep-gpu-budget-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = |out: &str, resume: bool, budget: Option<Duration>| SweepOptions {
        out: dir.join(out),
        resume,
        shard: None,
        max_runs: None,
        budget,
    };
    let t = Instant::now();
    let full = run_sweep_on(1, &cfg, &opts("full", false, None)).unwrap();
    let wall = t.elapsed();
    assert_eq!((full.ran, full.remaining), (6, 0));
    let zero = run_sweep_on(1, &cfg, &opts("zero", false, Some(Duration::ZERO))).unwrap();
    assert_eq!((zero.ran, zero.remaining), (0, 6));
    let part = run_sweep_on(1, &cfg, &opts("part", false, Some(wall / 3))).unwrap();
    eprintln!(
        "budget {:?} of {wall:?}: {} batches of 1 run, {} left",
        wall / 3,
        part.ran,
        part.remaining
    );
    assert!(part.ran >= 1 && part.remaining >= 1, "{part:?}");
    assert_eq!(
        read_runs(&dir.join("part/runs.jsonl"), false)
            .unwrap()
            .len(),
        part.ran
    );
    let rest = run_sweep_on(1, &cfg, &opts("part", true, None)).unwrap();
    assert_eq!((rest.ran, rest.remaining), (part.remaining, 0));
    let key = |r: &annealvi::sweep::RunLine| {
        let mut v = serde_json::to_value(r).unwrap();
        v.as_object_mut().unwrap().remove("wall_seconds");
        v.to_string()
    };
    let mut a: Vec<String> = read_runs(&dir.join("full/runs.jsonl"), false)
        .unwrap()
        .iter()
        .map(key)
        .collect();
    let mut b: Vec<String> = read_runs(&dir.join("part/runs.jsonl"), false)
        .unwrap()
        .iter()
        .map(key)
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    let _ = std::fs::remove_dir_all(&dir);
}
