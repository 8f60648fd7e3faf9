//! The library's sweep hooks used by the Python bindings: cancellation and a custom runner.

use annealvi::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

const CONFIG: &str = r#"
[grid]
beta_i = [0.05, 0.3]
t0 = [50]
no_annealing = true
seeds = 4
extra_steps = 50

[run]
seed = 3
[run.target]
d = 16
[run.objective]
samples = 8
"#;

fn setup(name: &str) -> (SweepConfig, SweepOptions) {
    let dir = std::env::temp_dir().join(format!("annealvi-hooks-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg: SweepConfig = toml::from_str(CONFIG).unwrap();
    cfg.validate().unwrap();
    let opts = SweepOptions {
        out: dir,
        resume: true,
        shard: None,
        max_runs: None,
        budget: None,
    };
    (cfg, opts)
}

#[test]
fn a_cancelled_sweep_starts_no_run_and_resumes_later() {
    let (cfg, opts) = setup("cancel");
    let rep = run_sweep_cancellable(&cfg, &opts, &AtomicBool::new(true)).unwrap();
    assert_eq!((rep.planned, rep.ran), (12, 0));
    assert!(opts.out.join("cells.csv").exists());
    let rep = run_sweep_cancellable(&cfg, &opts, &AtomicBool::new(false)).unwrap();
    assert_eq!((rep.ran, rep.skipped), (12, 0));
    assert_eq!(
        read_runs(&opts.out.join("runs.jsonl"), false)
            .unwrap()
            .len(),
        12
    );
    let _ = std::fs::remove_dir_all(&opts.out);
}

#[test]
fn a_custom_runner_replaces_the_runs_and_may_skip_some() {
    let (cfg, opts) = setup("runner");
    let calls = AtomicUsize::new(0);
    let runner = |spec: RunSpec, cells: &[Cell]| -> Option<RunLine> {
        calls.fetch_add(1, Ordering::Relaxed);
        // the built-in run for even seeds, a failure (not recorded) for odd ones
        spec.seed
            .is_multiple_of(2)
            .then(|| cfg.run_one(spec, cells))
    };
    let rep = run_sweep_with(&cfg, &opts, &AtomicBool::new(false), Some(&runner)).unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 12);
    assert_eq!(rep.ran, 6);
    let runs = read_runs(&opts.out.join("runs.jsonl"), false).unwrap();
    assert!(runs.iter().all(|r| r.seed.is_multiple_of(2)) && runs.len() == 6);
    let cells = aggregate(&runs);
    assert!(cells.iter().all(|c| c.n == 2));
    let _ = std::fs::remove_dir_all(&opts.out);
}
