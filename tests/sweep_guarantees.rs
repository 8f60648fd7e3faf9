//! What a sweep promises under hostile conditions: exact resume keys, one writer per
//! directory, a full disk, merges that refuse to overwrite and copy runs bit for bit, bounded
//! grids, duplicate cells, outcomes that add up.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A tiny sweep: 2 cells + no annealing, 3 seeds, d = 8, tens of steps per run.
const SMALL: &str = r#"
[grid]
beta_i = [0.05, 0.3]
t0 = [30]
no_annealing = true
seeds = 3
extra_steps = 20

[run]
seed = 3
[run.target]
d = 8
[run.objective]
samples = 4
"#;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("annealvi-guar-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("cfg.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn annealvi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_annealvi"))
        .args(args)
        .output()
        .unwrap()
}

fn sweep(cfg: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut a = vec![
        "sweep",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    annealvi(&a)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn runs_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("runs.jsonl")).unwrap_or_default()
}

/// cells.csv as rows of column name → value.
fn cells(dir: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(dir.join("cells.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(str::to_string))
                .collect()
        })
        .collect()
}

fn total_n(dir: &Path) -> usize {
    cells(dir)
        .iter()
        .map(|c| c["n"].parse::<usize>().unwrap())
        .sum()
}

/// Issue 14.2: a β_i written at full precision must be read back as the same f64, so that
/// `--resume` recognises its runs as done.
#[test]
fn full_precision_beta_i_is_recognised_on_resume() {
    let dir = tmp("roundtrip");
    let cfg = write_config(&dir, SMALL);
    let out = dir.join("o");
    let set = [
        "--set",
        "grid.beta_i=[0.9946732632283737,0.1]",
        "--set",
        "grid.no_annealing=false",
    ];
    let o = sweep(&cfg, &out, &set);
    assert!(o.status.success(), "{}", stderr(&o));
    let first = runs_text(&out);
    for _ in 0..2 {
        let mut a = set.to_vec();
        a.push("--resume");
        let o = sweep(&cfg, &out, &a);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(runs_text(&out), first, "resume re-ran finished runs");
    assert_eq!(total_n(&out), 6);
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 14.1 and 14.2: merge copies every line byte for byte, refuses a directory that
/// already holds a sweep, and warns about a missing shard or shards of different N.
#[test]
fn merge_copies_lines_exactly_refuses_a_sweep_and_warns_on_missing_shards() {
    let dir = tmp("merge");
    let cfg = write_config(&dir, SMALL);
    let mut shard_lines = std::collections::BTreeSet::new();
    for k in 1..=3 {
        let o = sweep(
            &cfg,
            &dir.join(format!("s{k}")),
            &["--shard", &format!("{k}/3")],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        shard_lines.extend(
            runs_text(&dir.join(format!("s{k}")))
                .lines()
                .map(String::from),
        );
    }
    let s = |k: u32| dir.join(format!("s{k}")).to_str().unwrap().to_string();
    let m = dir.join("m");
    let o = annealvi(&["merge", &s(1), &s(2), &s(3), "--out", m.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let merged: std::collections::BTreeSet<String> =
        runs_text(&m).lines().map(String::from).collect();
    assert_eq!(merged, shard_lines, "merge changed some lines");
    // into an existing sweep: refused, and the sweep is left as it was
    let before = runs_text(&m);
    let o = annealvi(&["merge", &s(1), "--out", m.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("already holds a sweep"),
        "{}",
        stderr(&o)
    );
    assert_eq!(runs_text(&m), before);
    // an incomplete shard set: merged, with a warning naming the missing shard
    let m2 = dir.join("m2");
    let o = annealvi(&["merge", &s(1), &s(2), "--out", m2.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning") && stderr(&o).contains("3/3"),
        "{}",
        stderr(&o)
    );
    // shards of different N
    let o = sweep(&cfg, &dir.join("h"), &["--shard", "1/2"]);
    assert!(o.status.success());
    let m3 = dir.join("m3");
    let h = dir.join("h");
    let o = annealvi(&[
        "merge",
        &s(2),
        h.to_str().unwrap(),
        "--out",
        m3.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("different numbers"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 14.3: a second sweep on a directory in use is refused (exclusive lock); cells.csv
/// counts a run key once even when runs.jsonl holds it twice.
#[test]
fn a_directory_in_use_is_refused_and_duplicate_lines_count_once() {
    let dir = tmp("lock");
    let cfg = write_config(&dir, SMALL);
    let out = dir.join("o");
    // a long sweep holds the directory
    let mut child = Command::new(env!("CARGO_BIN_EXE_annealvi"))
        .args(["sweep", "--config", cfg.to_str().unwrap(), "--out"])
        .arg(&out)
        .args(["--set", "grid.seeds=100000", "--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !out.join("runs.jsonl").exists() && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // the second one must be refused at once (without the lock it would run everything)
    let mut second = Command::new(env!("CARGO_BIN_EXE_annealvi"))
        .args(["sweep", "--config", cfg.to_str().unwrap(), "--out"])
        .arg(&out)
        .args(["--set", "grid.seeds=100000", "--resume", "--threads", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break Some(s);
        }
        if t.elapsed() > Duration::from_secs(60) {
            second.kill().unwrap();
            second.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut second.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.and_then(|s| s.code()), Some(2), "not refused: {err}");
    assert!(err.contains("in use"), "{err}");
    // duplicate lines: counted once
    let d2 = dir.join("dup");
    assert!(sweep(&cfg, &d2, &[]).status.success());
    let text = runs_text(&d2);
    let first = text.lines().next().unwrap().to_string();
    std::fs::write(d2.join("runs.jsonl"), format!("{text}{first}\n")).unwrap();
    let o = sweep(&cfg, &d2, &["--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(total_n(&d2), 9);
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs `annealvi ARGS` with a file-size limit of `kib` KiB (writes past it fail like a full
/// disk: EFBIG, SIGXFSZ ignored).
fn annealvi_limited(kib: u64, args: &[&str]) -> Output {
    let mut cmd = String::from("ulimit -f ");
    cmd.push_str(&kib.to_string());
    cmd.push_str("; trap '' XFSZ; exec \"$0\" \"$@\"");
    Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .arg(env!("CARGO_BIN_EXE_annealvi"))
        .args(args)
        .output()
        .unwrap()
}

/// Issue 14.4 and 14.12 (torn sweep.toml): on a full disk the sweep stops at the first failed
/// append, runs.jsonl keeps only whole lines, and a later --resume completes the same sweep as
/// an undisturbed one.
#[test]
#[cfg(unix)]
fn full_disk_stops_at_the_first_failed_write_and_leaves_whole_lines() {
    let dir = tmp("disk");
    let cfg = write_config(&dir, SMALL);
    let set = ["--set", "grid.seeds=60", "--threads", "1"];
    let full = dir.join("full");
    assert!(sweep(&cfg, &full, &set).status.success());
    let full_len = runs_text(&full).len() as u64;
    assert!(
        full_len > 32 * 1024,
        "the sweep must be larger than the limit"
    );
    let out = dir.join("o");
    let c = cfg.to_str().unwrap();
    let o_ = out.to_str().unwrap();
    let mut args = vec!["sweep", "--config", c, "--out", o_];
    args.extend_from_slice(&set);
    let o = annealvi_limited(16, &args);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("stopped at this first failed write"),
        "{}",
        stderr(&o)
    );
    let text = runs_text(&out);
    assert!(text.len() <= 16 * 1024 && text.ends_with('\n'), "torn file");
    for l in text.lines() {
        serde_json::from_str::<serde_json::Value>(l).expect("a whole line");
    }
    // the space comes back: resume completes the sweep, same runs as undisturbed
    args.push("--resume");
    let o = annealvi(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let strip = |t: &str| -> std::collections::BTreeSet<String> {
        t.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("wall_seconds");
                v.to_string()
            })
            .collect()
    };
    assert_eq!(strip(&runs_text(&out)), strip(&runs_text(&full)));
    assert_eq!(runs_text(&out).lines().count(), 3 * 60);
    // a disk too full for sweep.toml: no torn sweep.toml is left, and the directory resumes
    let t = dir.join("torn");
    let t_ = t.to_str().unwrap();
    let o = annealvi_limited(0, &["sweep", "--config", c, "--out", t_]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(!t.join("sweep.toml").exists(), "a torn sweep.toml was left");
    let o = annealvi(&["sweep", "--config", c, "--out", t_, "--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 14.4: a `train` that cannot finish writing leaves no truncated output file.
#[test]
#[cfg(unix)]
fn failed_train_leaves_no_truncated_files() {
    let dir = tmp("train");
    let out = dir.join("o");
    let o = annealvi_limited(
        16,
        &[
            "train",
            "--set",
            "target.d=8",
            "--set",
            "optim.steps=2000",
            "--set",
            "record.every=1",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let traj = out.join("trajectory.csv");
    if let Ok(t) = std::fs::read_to_string(&traj) {
        // complete or absent: 2001 records and a header
        assert_eq!(t.lines().count(), 2002, "truncated trajectory.csv");
    }
    assert!(!out.join("summary.json").exists());
    assert!(
        out.join("config.toml").exists(),
        "the limit must let config.toml through"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 14.5: a grid that passes the per-axis limits but holds 10^10 runs is refused with a
/// clear error, in --dry-run and in the sweep.
#[test]
fn a_grid_too_large_for_memory_is_refused() {
    let dir = tmp("huge");
    let cfg = write_config(&dir, SMALL);
    let set = [
        "--set",
        "grid.beta_i={start=0.001,stop=1,num=10000,log=true}",
        "--set",
        "grid.t0={start=1,stop=1e8,num=10000,log=true}",
        "--set",
        "grid.seeds=100",
    ];
    for extra in [&["--dry-run"][..], &[][..]] {
        let mut a = set.to_vec();
        a.extend_from_slice(extra);
        let o = sweep(&cfg, &dir.join("o"), &a);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("grid.seeds"), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("at most 10000000 runs"),
            "{}",
            stderr(&o)
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 14.7: a repeated β_i, or t0 values that round to the same step, run each run once.
#[test]
fn duplicate_cells_run_once() {
    let dir = tmp("dupcells");
    let cfg = write_config(&dir, SMALL);
    let out = dir.join("o");
    let o = sweep(
        &cfg,
        &out,
        &[
            "--set",
            "grid.beta_i=[0.1,0.1]",
            "--set",
            "grid.t0=[30,30.2,29.9]",
            "--set",
            "grid.no_annealing=false",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(runs_text(&out).lines().count(), 3);
    let c = cells(&out);
    assert_eq!(c.len(), 1);
    assert_eq!(c[0]["n"], "3");
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 14.8: runs ending `partial` (a 3-mode target) have their column, and
/// collapsed + partial + covered + diverged = n in every cell.
#[test]
fn outcome_columns_add_up_to_n_with_partial_runs() {
    let dir = tmp("partial");
    let cfg = write_config(
        &dir,
        r#"
[grid]
beta_i = [0.1]
t0 = [50]
no_annealing = true
seeds = 6
extra_steps = 100

[run]
[run.target]
kind = "mixture"
d = 2
means = [[6.0, 0.0], [-6.0, 0.0], [0.0, 6.0]]
[run.objective]
samples = 8
"#,
    );
    let out = dir.join("o");
    let o = sweep(&cfg, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut partial = 0;
    for c in cells(&out) {
        let g = |k: &str| c[k].parse::<usize>().unwrap();
        assert_eq!(
            g("collapsed") + g("partial") + g("covered") + g("diverged"),
            g("n")
        );
        partial += g("partial");
    }
    let lines = runs_text(&out);
    assert_eq!(partial, lines.matches("\"partial\"").count());
    assert!(partial > 0, "the test needs partial runs");
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 14.12: a directory with runs.jsonl but no sweep.toml is not adopted.
#[test]
fn runs_without_their_configuration_are_not_adopted() {
    let dir = tmp("nometa");
    let cfg = write_config(&dir, SMALL);
    let out = dir.join("o");
    assert!(sweep(&cfg, &out, &[]).status.success());
    std::fs::remove_file(out.join("sweep.toml")).unwrap();
    for extra in [&["--resume"][..], &[][..]] {
        let mut a = vec!["--set", "grid.seeds=5"];
        a.extend_from_slice(extra);
        let o = sweep(&cfg, &out, &a);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("no sweep.toml"), "{}", stderr(&o));
    }
    assert_eq!(runs_text(&out).lines().count(), 9);
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 14.12: a flow run's final metrics do not depend on `record.every` (records draw from
/// their own stream, not from the final evaluation's).
#[test]
fn flow_outcome_does_not_depend_on_recording() {
    use annealvi::config::Config;
    use annealvi::run::Trainer;
    use annealvi::train::FlowRecorder;
    let sets: Vec<String> = [
        "student.family=\"realnvp\"",
        "target.d=4",
        "target.direction=\"diagonal\"",
        "student.realnvp.layers=2",
        "student.realnvp.width=8",
        "student.realnvp.eval_samples=500",
        "optim.kind=\"adam\"",
        "optim.lr=0.002",
        "optim.steps=40",
        "objective.samples=16",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let quiet = Config::load(None, &sets).unwrap();
    let mut loud = quiet.clone();
    loud.record.every = 5;
    let (quiet, loud) = (quiet.compile().unwrap(), loud.compile().unwrap());
    let (_, a) = Trainer::new(&quiet)
        .streams(1, 2)
        .run()
        .unwrap()
        .into_flow()
        .unwrap();
    let mut rec = FlowRecorder::default();
    let b = Trainer::new(&loud).streams(1, 2).observer(&mut rec).run();
    let (_, b) = b.unwrap().into_flow().unwrap();
    assert!(rec.records.len() > 2, "the second run must record");
    assert_eq!(a.light_mode_mass, b.light_mode_mass);
    assert_eq!(a.stats.kl, b.stats.kl);
    assert_eq!(a.stats.ess_fraction, b.stats.ess_fraction);
}

/// `--dry-run` counts the runs left by the sweep's own rule: on a partly done shard it announces
/// exactly as many runs as `--resume` then runs.
#[test]
fn dry_run_counts_what_the_sweep_then_runs() {
    let dir = tmp("dryrun");
    let cfg = write_config(&dir, SMALL);
    let out = dir.join("o");
    // a repeated cell, so that the grid's runs are not simply cells x seeds
    let set = ["--set", "grid.t0=[30,30.2]", "--shard", "2/4"];
    let o = sweep(&cfg, &out, &set);
    assert!(o.status.success(), "{}", stderr(&o));
    // an interrupted shard: only its first run recorded
    let first = runs_text(&out).lines().next().unwrap().to_string();
    std::fs::write(out.join("runs.jsonl"), first + "\n").unwrap();
    let resume: Vec<&str> = set.iter().copied().chain(["--resume"]).collect();
    let dry: Vec<&str> = resume.iter().copied().chain(["--dry-run"]).collect();
    let o = sweep(&cfg, &out, &dry);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    // "<cells> cells x <seeds> seeds = <runs> runs; <left> to run in shard 2/4 (...)"
    let left: usize = text
        .split("; ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no count in {text:?}"));
    let o = sweep(&cfg, &out, &resume);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    // "<planned> runs in this sweep (shard 2/4): <skipped> already done, <ran> run in ..."
    let ran: usize = text
        .split("already done, ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no count in {text:?}"));
    assert!(left > 0, "{text}");
    assert_eq!(
        left, ran,
        "dry run announced {left} runs, the sweep ran {ran}"
    );
    let _ = std::fs::remove_dir_all(dir);
}
