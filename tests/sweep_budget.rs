//! The wall-time budget of a sweep (`--max-minutes`, `SweepOptions::budget`): no run starts
//! after it, finished runs are kept, the report says how many are left, and `--resume`
//! completes the sweep to exactly the runs of an uninterrupted one.

mod common;

use annealvi::sweep::{SweepConfig, SweepOptions};
use common::run_sweep_on;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CONFIG: &str = r#"
[grid]
beta_i = { start = 0.01, stop = 0.3, num = 3, log = true }
t0 = [20, 60, 150]
no_annealing = true
seeds = 6
extra_steps = 400

[run]
seed = 7
[run.target]
d = 64
[run.student]
sigma0 = "schedule"
[run.objective]
samples = 8
"#;
fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("annealvi-budget-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The lines of runs.jsonl without their wall time, and the number of lines.
fn lines(dir: &Path) -> (BTreeSet<String>, usize) {
    let text = std::fs::read_to_string(dir.join("runs.jsonl")).unwrap_or_default();
    let set: BTreeSet<String> = text
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("wall_seconds");
            v.to_string()
        })
        .collect();
    (set, text.lines().count())
}

fn opts(out: &Path, resume: bool, budget: Option<Duration>) -> SweepOptions {
    SweepOptions {
        out: out.to_path_buf(),
        resume,
        shard: None,
        max_runs: None,
        budget,
    }
}

#[test]
fn budget_stops_between_runs_and_resume_completes_the_sweep() {
    let cfg: SweepConfig = toml::from_str(CONFIG).unwrap();
    cfg.validate().unwrap();
    let dir = tmp("lib");
    let t = Instant::now();
    let full = run_sweep_on(1, &cfg, &opts(&dir.join("full"), false, None)).unwrap();
    let wall = t.elapsed();
    assert_eq!(full.remaining, 0);
    assert_eq!(full.ran, full.planned);

    // a quarter of the uninterrupted sweep's time: some runs, not all
    let part = run_sweep_on(1, &cfg, &opts(&dir.join("part"), false, Some(wall / 4))).unwrap();
    eprintln!(
        "budget {:?} of {:?}: {} of {} runs, {} left",
        wall / 4,
        wall,
        part.ran,
        part.planned,
        part.remaining
    );
    assert!(part.ran >= 1, "{part:?}");
    assert!(part.remaining >= 1, "{part:?}");
    assert_eq!(part.ran + part.remaining, part.planned);
    let (got, n) = lines(&dir.join("part"));
    assert_eq!(n, part.ran, "every started run is written whole");
    assert_eq!(got.len(), n);

    // resumed without a budget: the runs of the uninterrupted sweep, each once
    let rest = run_sweep_on(1, &cfg, &opts(&dir.join("part"), true, None)).unwrap();
    assert_eq!(rest.skipped, part.ran);
    assert_eq!(rest.ran, part.remaining);
    assert_eq!(rest.remaining, 0);
    let (all, n) = lines(&dir.join("part"));
    assert_eq!(n, full.planned);
    assert_eq!(all, lines(&dir.join("full")).0);
    let _ = std::fs::remove_dir_all(&dir);
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_annealvi"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn max_minutes_zero_runs_nothing_and_says_how_to_continue() {
    let dir = tmp("cli");
    let cfg = dir.join("sweep-config.toml");
    std::fs::write(&cfg, CONFIG).unwrap();
    let (cfg, out) = (cfg.to_str().unwrap(), dir.join("out"));
    let out = out.to_str().unwrap();
    let base = [
        "sweep",
        "--config",
        cfg,
        "--set",
        "grid.seeds=2",
        "--out",
        out,
    ];
    let o = cli(&[&base[..], &["--max-minutes", "0"]].concat());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("sweep incomplete") && stdout.contains("20 of 20 runs left"),
        "{stdout}"
    );
    assert!(stdout.contains("--resume"), "{stdout}");
    assert!(dir.join("out/sweep.toml").exists());
    assert_eq!(lines(&dir.join("out")).1, 0);
    let o = cli(&[&base[..], &["--resume", "--max-minutes", "60"]].concat());
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}");
    assert!(!stdout.contains("incomplete"), "{stdout}");
    assert_eq!(lines(&dir.join("out")).1, 20);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_max_minutes_is_a_clear_error() {
    for bad in ["-1", "NaN", "1e9"] {
        let o = cli(&["sweep", "--out", "unused", &format!("--max-minutes={bad}")]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.contains("--max-minutes") && err.contains("[0, 525600]"),
            "{bad}: {err}"
        );
    }
}
