//! What a hostile user tries (issue 19): dry runs that must refuse what the sweep refuses,
//! options that must not be silently ignored, signals, and messages that name the field.

mod common;

use common::{TINY, annealvi};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tmp(name: &str) -> PathBuf {
    common::tmp_dir("hostile", name)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `o` failed with a message containing every one of `needles`.
fn refused(o: &Output, needles: &[&str]) {
    assert!(!o.status.success(), "accepted: {}", stdout(o));
    let e = stderr(o);
    for n in needles {
        assert!(e.contains(n), "{n:?} not in: {e}");
    }
    assert!(!e.contains("panicked"), "{e}");
}

fn tiny(dir: &Path) -> String {
    let p = dir.join("tiny.toml");
    std::fs::write(&p, TINY).unwrap();
    p.to_str().unwrap().to_string()
}

/// Item 6: whatever the sweep refuses, its dry run refuses with the same message.
#[test]
fn the_dry_run_refuses_what_the_sweep_refuses() {
    let dir = tmp("dry");
    let cfg = tiny(&dir);
    let s0 = dir.join("s0");
    let s0 = s0.to_str().unwrap();
    let o = annealvi(&["sweep", "--config", &cfg, "--out", s0, "--threads", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let afile = dir.join("afile");
    std::fs::write(&afile, "x").unwrap();
    let afile = afile.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        // another configuration
        (
            vec!["--out", s0, "--resume", "--set", "run.seed=99"],
            "run.seed",
        ),
        // a sweep there without --resume
        (vec!["--out", s0], "already holds a sweep"),
        // another shard
        (vec!["--out", s0, "--resume", "--shard", "1/2"], "shard"),
        // a file
        (vec!["--out", afile], "--out"),
    ];
    for (extra, needle) in cases {
        let mut real = vec!["sweep", "--config", &cfg, "--threads", "1"];
        real.extend(&extra);
        let mut dry = real.clone();
        dry.push("--dry-run");
        let (r, d) = (annealvi(&real), annealvi(&dry));
        refused(&r, &[needle]);
        refused(&d, &[needle]);
        assert_eq!(stderr(&r), stderr(&d), "{extra:?}");
    }
    // the dry run wrote nothing into a new directory
    let fresh = dir.join("fresh");
    let o = annealvi(&[
        "sweep",
        "--config",
        &cfg,
        "--out",
        fresh.to_str().unwrap(),
        "--dry-run",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!fresh.exists(), "the dry run created the directory");
}

/// Item 10: a damaged sweep.toml is called damaged, not "a different configuration".
#[test]
fn a_damaged_sweep_toml_is_called_damaged() {
    let dir = tmp("damaged");
    let cfg = tiny(&dir);
    let out = dir.join("s");
    let args = ["sweep", "--config", &cfg, "--out", out.to_str().unwrap()];
    assert!(annealvi(&args).status.success());
    let meta = out.join("sweep.toml");
    let text = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(&meta, &text[..text.len() / 2]).unwrap();
    let mut resume = args.to_vec();
    resume.push("--resume");
    refused(&annealvi(&resume), &["damaged"]);
}

/// Item 7: what a sweep's grid sets per cell cannot also be set in [run]; figure flags that
/// a figure does not use are refused.
#[test]
fn options_that_would_be_ignored_are_refused() {
    let dir = tmp("ignored");
    let cfg = tiny(&dir);
    let out = dir.join("s");
    let out = out.to_str().unwrap();
    for (set, field) in [
        ("run.schedule.kind=\"linear_temperature\"", "run.schedule"),
        ("run.schedule.t0=5", "run.schedule"),
        ("run.optim.steps=10", "run.optim.steps"),
    ] {
        refused(
            &annealvi(&[
                "sweep",
                "--config",
                &cfg,
                "--set",
                set,
                "--out",
                out,
                "--dry-run",
            ]),
            &[field, "grid"],
        );
    }
    let fig = dir.join("fig");
    let fig = fig.to_str().unwrap();
    for extra in [
        vec!["dim", "--device", "gpu"],
        vec!["dim", "--seed", "7"],
        vec!["dim", "--flow", "full"],
        vec!["dim", "--from", "s0"],
        vec!["2", "--seed", "7"],
        vec!["1", "--flow", "none"],
    ] {
        let mut a = vec!["figure"];
        a.extend(&extra);
        a.extend(["--quick", "--out", fig]);
        refused(&annealvi(&a), &[extra[1], "no "]);
    }
    assert!(!Path::new(fig).exists(), "a refused figure wrote something");
}

/// Item 10: messages that name the field and the range.
#[test]
fn messages_name_the_field() {
    let dir = tmp("messages");
    let cfg = tiny(&dir);
    let out = dir.join("s");
    let out = out.to_str().unwrap();
    let sweep = |set: &str| annealvi(&["sweep", "--config", &cfg, "--set", set, "--out", out]);
    refused(&sweep("grid.seeds=-1"), &["grid.seeds", "-1", "integer"]);
    refused(
        &annealvi(&["train", "--set", "optim.lr=abc", "--out", out]),
        &["optim.lr", "abc", "a number"],
    );
    refused(
        &annealvi(&[
            "train",
            "--set",
            "record.marginal_range=1e308",
            "--out",
            out,
        ]),
        &["record.marginal_range", "1e6"],
    );
    refused(
        &annealvi(&[
            "design",
            "--max-collapse",
            "0.2",
            "--compare",
            "1000,1000.4",
        ]),
        &["--compare", "rounds to 1000"],
    );
    let afile = dir.join("afile");
    std::fs::write(&afile, "x").unwrap();
    refused(
        &annealvi(&["train", "--out", afile.to_str().unwrap()]),
        &["not a directory"],
    );
    // a zero budget says that nothing ran
    let o = annealvi(&[
        "sweep",
        "--config",
        &cfg,
        "--out",
        out,
        "--max-minutes",
        "0",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("no run was started"), "{}", stdout(&o));
    // tiny β_i are written in exponent form, not with hundreds of digits
    let tiny_b = dir.join("tb");
    let o = annealvi(&[
        "sweep",
        "--config",
        &cfg,
        "--set",
        "grid.beta_i=[5e-324]",
        "--set",
        "grid.t0=[50]",
        "--set",
        "grid.seeds=1",
        "--out",
        tiny_b.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let cells = std::fs::read_to_string(tiny_b.join("cells.csv")).unwrap();
    assert!(cells.contains("\n5e-324,50,"), "{cells}");
    assert!(cells.lines().all(|l| l.len() < 300), "{cells}");
}

/// Item 10: the last trajectory row has a loss.
#[test]
fn the_last_trajectory_row_has_a_loss() {
    let dir = tmp("lastloss");
    for engine in ["vector", "statistics"] {
        let out = dir.join(engine);
        let o = annealvi(&[
            "train",
            "--set",
            "target.d=16",
            "--set",
            "optim.steps=40",
            "--set",
            "record.every=20",
            "--set",
            &format!("objective.engine=\"{engine}\""),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let t = std::fs::read_to_string(out.join("trajectory.csv")).unwrap();
        let last = t.lines().last().unwrap();
        assert!(last.starts_with("40,"), "{t}");
        let loss: f64 = last.split(',').nth(2).unwrap().parse().unwrap();
        assert!(loss.is_finite(), "{engine}: {last}");
    }
}

/// Item 9: SIGTERM (and SIGINT, SIGHUP) stop a sweep: no new run, cells.csv rewritten from
/// runs.jsonl, a message saying how to resume, a non-zero status; the resume then finishes
/// it with the runs of an uninterrupted sweep.
#[cfg(unix)]
#[test]
fn a_signal_stops_a_sweep_cleanly_and_it_resumes() {
    let dir = tmp("signal");
    let cfg = tiny(&dir);
    for sig in ["TERM", "INT", "HUP"] {
        let out = dir.join(format!("s-{sig}"));
        let out = out.to_str().unwrap();
        let args = [
            "sweep",
            "--config",
            &cfg,
            "--out",
            out,
            "--threads",
            "1",
            "--set",
            "grid.seeds=400",
            "--set",
            "grid.t0=[400]",
        ];
        let child = Command::new(env!("CARGO_BIN_EXE_annealvi"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // wait for some finished runs, then signal
        let runs = Path::new(out).join("runs.jsonl");
        let start = Instant::now();
        while std::fs::metadata(&runs).map_or(0, |m| m.len()) < 2000 {
            assert!(start.elapsed() < Duration::from_secs(60), "no run finished");
            std::thread::sleep(Duration::from_millis(20));
        }
        let st = Command::new("kill")
            .args([&format!("-{sig}"), &child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        let o = child.wait_with_output().unwrap();
        assert!(!o.status.success(), "{sig}: exit 0");
        let e = stderr(&o);
        assert!(
            e.contains(&format!("interrupted by SIG{sig}")) && e.contains("--resume"),
            "{sig}: {e}"
        );
        let lines = std::fs::read_to_string(&runs).unwrap();
        let n = lines.lines().count();
        assert!(n > 0 && n < 1200, "{sig}: {n} runs");
        // cells.csv counts exactly the runs written
        let cells = std::fs::read_to_string(Path::new(out).join("cells.csv")).unwrap();
        let counted: usize = cells
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(3).unwrap().parse::<usize>().unwrap())
            .sum();
        assert_eq!(counted, n, "{sig}: cells.csv is stale");
        if sig == "TERM" {
            let mut resume = args.to_vec();
            resume.push("--resume");
            let o = annealvi(&resume);
            assert!(o.status.success(), "{}", stderr(&o));
            assert!(
                stdout(&o).contains(&format!("{n} already done")),
                "{}",
                stdout(&o)
            );
            let lines = std::fs::read_to_string(&runs).unwrap();
            assert_eq!(lines.lines().count(), 1200);
        }
    }
}
