//! Sweeps: interruption and resume, sharding and merging, thread-count independence.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

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
    let d = std::env::temp_dir().join(format!("annealvi-sweep-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config_file(dir: &Path) -> PathBuf {
    let p = dir.join("sweep-config.toml");
    std::fs::write(&p, CONFIG).unwrap();
    p
}

fn sweep(cfg: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_annealvi"))
        .arg("sweep")
        .arg("--config")
        .arg(cfg)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// The lines of runs.jsonl without their wall time (the only field that may differ).
fn lines(dir: &Path) -> BTreeSet<String> {
    let text = std::fs::read_to_string(dir.join("runs.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("wall_seconds");
            v.to_string()
        })
        .collect()
}

fn line_count(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("runs.jsonl"))
        .unwrap()
        .lines()
        .count()
}

#[test]
fn killed_and_resumed_sweep_equals_uninterrupted_sweep() {
    let dir = tmp("kill");
    let cfg = config_file(&dir);
    let full = dir.join("full");
    let t = std::time::Instant::now();
    let o = sweep(&cfg, &full, &["--threads", "2"]);
    // kill times are fractions of the uninterrupted sweep's duration, so the test interrupts
    // runs however fast the build is
    let total_ms = t.elapsed().as_millis() as u64;
    eprintln!("uninterrupted sweep: {total_ms} ms");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = lines(&full);
    assert_eq!(want.len(), 60);
    assert_eq!(line_count(&full), 60);

    let part = dir.join("part");
    // kill at several moments, resuming each time
    let mut killed_midway = 0;
    for (i, pct) in [15u64, 45, 30, 75, 20, 60].iter().enumerate() {
        let ms = total_ms * pct / 100;
        let mut args = vec![
            "sweep".to_string(),
            "--config".into(),
            cfg.display().to_string(),
        ];
        args.extend([
            "--out".into(),
            part.display().to_string(),
            "--threads".into(),
            "2".into(),
        ]);
        if i > 0 {
            args.push("--resume".into());
        }
        let mut child = Command::new(env!("CARGO_BIN_EXE_annealvi"))
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            killed_midway += 1;
        }
        child.wait().unwrap();
    }
    // simulate a torn last line, as a kill during a write would leave
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(part.join("runs.jsonl"))
        .unwrap();
    f.write_all(b"{\"beta_i\":0.01,\"t0\":20.0,\"se").unwrap();
    drop(f);
    let o = sweep(&cfg, &part, &["--resume", "--threads", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        killed_midway >= 1,
        "no run was interrupted; the test did not test anything"
    );
    assert_eq!(line_count(&part), 60, "duplicates or losses");
    assert_eq!(lines(&part), want);
    assert_eq!(
        std::fs::read_to_string(part.join("cells.csv")).unwrap(),
        std::fs::read_to_string(full.join("cells.csv")).unwrap()
    );
    // resuming a finished sweep runs nothing and changes nothing
    let o = sweep(&cfg, &part, &["--resume"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 run in"));
    assert_eq!(line_count(&part), 60);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sharded_and_merged_equals_unsharded_and_threads_do_not_matter() {
    let dir = tmp("shard");
    let cfg = config_file(&dir);
    let one = dir.join("one");
    assert!(sweep(&cfg, &one, &["--threads", "1"]).status.success());
    let two = dir.join("two");
    assert!(sweep(&cfg, &two, &["--threads", "2"]).status.success());
    assert_eq!(lines(&one), lines(&two), "1 thread != 2 threads");

    let mut shards = Vec::new();
    for k in 1..=3 {
        let s = dir.join(format!("shard{k}"));
        let o = sweep(&cfg, &s, &["--shard", &format!("{k}/3")]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(line_count(&s), 20);
        shards.push(s);
    }
    let merged = dir.join("merged");
    let o = Command::new(env!("CARGO_BIN_EXE_annealvi"))
        .arg("merge")
        .args(&shards)
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(lines(&merged), lines(&one));
    assert_eq!(
        std::fs::read_to_string(merged.join("cells.csv")).unwrap(),
        std::fs::read_to_string(one.join("cells.csv")).unwrap()
    );

    // a shard of another configuration is refused
    let other = dir.join("other");
    let o = sweep(&cfg, &other, &["--set", "grid.seeds=2", "--shard", "1/3"]);
    assert!(o.status.success());
    let o = Command::new(env!("CARGO_BIN_EXE_annealvi"))
        .arg("merge")
        .arg(&shards[0])
        .arg(&other)
        .arg("--out")
        .arg(dir.join("bad"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("different configurations"));
    // and so is resuming a directory with another configuration, or reusing it without --resume
    let o = sweep(&cfg, &one, &["--set", "grid.seeds=3", "--resume"]);
    assert_eq!(o.status.code(), Some(2));
    let o = sweep(&cfg, &one, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--resume"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn cells_csv_has_the_documented_columns_and_consistent_counts() {
    let dir = tmp("cells");
    let cfg = config_file(&dir);
    let out = dir.join("o");
    assert!(sweep(&cfg, &out, &[]).status.success());
    let text = std::fs::read_to_string(out.join("cells.csv")).unwrap();
    let mut rows = text.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    for col in [
        "beta_i",
        "t0",
        "rate",
        "n",
        "collapsed",
        "diverged",
        "p_collapse",
        "ci_low",
        "ci_high",
    ] {
        assert!(header.contains(&col), "missing column {col}");
    }
    let idx = |c: &str| header.iter().position(|h| *h == c).unwrap();
    let mut total = 0;
    for r in rows {
        let f: Vec<f64> = r.split(',').map(|x| x.parse().unwrap()).collect();
        let (b, t0, rate) = (f[idx("beta_i")], f[idx("t0")], f[idx("rate")]);
        let want_rate = if t0 == 0.0 { 1.0 } else { b.powf(-1.0 / t0) };
        assert!((rate - want_rate).abs() < 1e-12);
        let n = f[idx("n")];
        assert_eq!(n, 6.0);
        let p = f[idx("p_collapse")];
        assert!((p - f[idx("collapsed")] / n).abs() < 1e-15);
        assert!(f[idx("ci_low")] <= p && p <= f[idx("ci_high")]);
        total += n as usize;
    }
    assert_eq!(total, 60);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn flow_sweeps_do_not_depend_on_threads_and_write_the_flow_columns() {
    let dir = tmp("flow");
    let cfg = dir.join("flow-sweep.toml");
    std::fs::write(
        &cfg,
        r#"
[grid]
beta_i = [0.1]
t0 = [20, 40]
no_annealing = true
seeds = 3
extra_steps = 10

[run]
seed = 11
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
eval_samples = 200
[run.objective]
samples = 16
[run.optim]
kind = "adam"
lr = 0.01
"#,
    )
    .unwrap();
    let one = dir.join("one");
    let o = sweep(&cfg, &one, &["--threads", "1"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let two = dir.join("two");
    assert!(sweep(&cfg, &two, &["--threads", "2"]).status.success());
    assert_eq!(lines(&one), lines(&two), "1 thread != 2 threads");
    assert_eq!(line_count(&one), 9);
    let cells = std::fs::read_to_string(one.join("cells.csv")).unwrap();
    let header = cells.lines().next().unwrap();
    assert!(
        header.ends_with("mean_light_mass,mean_mode_weight_error,mean_ess_fraction,mean_kl"),
        "{header}"
    );
    for row in cells.lines().skip(1) {
        let cols: Vec<&str> = row.split(',').collect();
        assert_eq!(cols.len(), 15, "{row}");
        let ess: f64 = cols[13].parse().unwrap();
        assert!(ess > 0.0 && ess <= 1.0, "{row}");
    }
    let _ = std::fs::remove_dir_all(dir);
}
