//! `annealvi merge`: updating a merged sweep from its pieces (`--into`), the Figure 4 piece
//! script on CPU pieces, merges that are atomic under SIGKILL and clean up after killed ones,
//! and the checks of the shards' lines against the grid.

mod common;

use annealvi::sweep::{SweepConfig, SweepOptions};
use common::{TINY, annealvi};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

fn tmp(name: &str) -> PathBuf {
    common::tmp_dir("merge", name)
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("cfg.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn sweep(cfg: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut a: Vec<&std::ffi::OsStr> = vec![
        "sweep".as_ref(),
        "--config".as_ref(),
        cfg.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ];
    a.extend(extra.iter().map(std::ffi::OsStr::new));
    annealvi(&a)
}

/// `annealvi merge DIRS... FLAG TARGET` (FLAG: --out or --into).
fn merge(dirs: &[PathBuf], flag: &str, target: &Path) -> Output {
    let mut a: Vec<&std::ffi::OsStr> = vec!["merge".as_ref()];
    a.extend(dirs.iter().map(|d| d.as_os_str()));
    a.push(flag.as_ref());
    a.push(target.as_os_str());
    annealvi(&a)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: &Output) {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
}

fn runs_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("runs.jsonl")).unwrap_or_default()
}

/// The runs of a directory without their wall time (which differs between two runs of one
/// run), as a set of JSON texts.
fn runs(dir: &Path) -> BTreeSet<String> {
    runs_text(dir)
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("wall_seconds");
            v.to_string()
        })
        .collect()
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
                .zip(l.split(',').map(String::from))
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

fn tiny_config() -> SweepConfig {
    let cfg: SweepConfig = toml::from_str(TINY).unwrap();
    cfg.validate().unwrap();
    cfg
}

/// One piece as `scripts/fig4-paper-piece.sh` makes it, with the budget replaced by a count of
/// runs: the sweep held in `data` is continued in a scratch copy for at most `max_runs` runs,
/// and the lines it added become the sweep directory `piece`, whose cells.csv comes from
/// merging it into itself.
fn make_piece(data: &Path, work: &Path, piece: &Path, max_runs: Option<usize>) {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).unwrap();
    let mut before = 0;
    if data.join("sweep.toml").exists() {
        std::fs::copy(data.join("sweep.toml"), work.join("sweep.toml")).unwrap();
        if data.join("runs.jsonl").exists() {
            std::fs::copy(data.join("runs.jsonl"), work.join("runs.jsonl")).unwrap();
            before = runs_text(work).lines().count();
        }
    }
    let opts = SweepOptions {
        out: work.to_path_buf(),
        resume: true,
        shard: None,
        max_runs,
        budget: None,
    };
    common::run_sweep_on(2, &tiny_config(), &opts).unwrap();
    std::fs::create_dir_all(piece).unwrap();
    std::fs::copy(work.join("sweep.toml"), piece.join("sweep.toml")).unwrap();
    let added: String = runs_text(work)
        .lines()
        .skip(before)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(piece.join("runs.jsonl"), added).unwrap();
    let o = merge(&[piece.to_path_buf()], "--into", piece);
    ok(&o);
    assert!(piece.join("cells.csv").exists());
}

fn pieces(data: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data.join("pieces"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Issue 19.3: the documented piece workflow, twice over and more: pieces of a sweep merged
/// into a directory that also holds other files (the first time with --out, then with
/// --into), each merge adding only the runs not held yet; merging the same pieces again adds
/// nothing and changes nothing; the end result equals the unsharded sweep.
#[test]
fn piece_cycle_merges_repeatedly_into_the_sweep_and_ends_equal_to_the_unsharded_sweep() {
    let dir = tmp("cycle");
    let cfg = write_config(&dir, TINY);
    let reference = dir.join("reference");
    ok(&sweep(&cfg, &reference, &[]));

    let data = dir.join("data");
    std::fs::create_dir_all(data.join("pieces")).unwrap();
    std::fs::write(data.join("README.md"), "the sweep, built up in pieces\n").unwrap();
    let work = dir.join("work");

    // piece 1, then the first merge: a new sweep in a directory that holds other files
    make_piece(&data, &work, &data.join("pieces/p1"), Some(4));
    let o = merge(&pieces(&data), "--out", &data);
    ok(&o);
    assert!(
        stderr(&o).contains("fewer than grid.seeds"),
        "{}",
        stderr(&o)
    );
    assert_eq!(runs_text(&data).lines().count(), 4);
    assert!(data.join("README.md").exists() && data.join("pieces/p1/runs.jsonl").exists());
    // --out again is refused: the directory holds a sweep now
    let o = merge(&pieces(&data), "--out", &data);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--into"), "{}", stderr(&o));

    // pieces 2 and 3, each merged with all pieces so far --into the sweep
    for (k, max, total) in [(2, Some(5), 9), (3, None, 15)] {
        make_piece(&data, &work, &data.join(format!("pieces/p{k}")), max);
        let added = total - runs_text(&data).lines().count();
        let o = merge(&pieces(&data), "--into", &data);
        ok(&o);
        assert!(
            stdout(&o).contains(&format!("added {added} new runs")),
            "{}",
            stdout(&o)
        );
        assert_eq!(runs_text(&data).lines().count(), total);
        assert_eq!(total_n(&data), total);
        // the same merge again: nothing added, nothing changed
        let before = runs_text(&data);
        let cells_before = std::fs::read_to_string(data.join("cells.csv")).unwrap();
        let o = merge(&pieces(&data), "--into", &data);
        ok(&o);
        assert!(stdout(&o).contains("added 0 new runs"), "{}", stdout(&o));
        assert_eq!(runs_text(&data), before);
        assert_eq!(
            std::fs::read_to_string(data.join("cells.csv")).unwrap(),
            cells_before
        );
    }
    // complete now: no warning, and the same runs and cells as the unsharded sweep
    let o = merge(&pieces(&data), "--into", &data);
    ok(&o);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    assert_eq!(runs(&data), runs(&reference));
    assert_eq!(
        std::fs::read_to_string(data.join("cells.csv")).unwrap(),
        std::fs::read_to_string(reference.join("cells.csv")).unwrap()
    );
    // a fourth piece finds nothing left to run
    make_piece(&data, &work, &data.join("pieces/p4"), None);
    assert_eq!(runs_text(&data.join("pieces/p4")), "");
    let o = merge(&pieces(&data), "--into", &data);
    ok(&o);
    assert!(stdout(&o).contains("added 0 new runs"), "{}", stdout(&o));
    // and the merged sweep resumes as a sweep
    let o = sweep(&cfg, &data, &["--resume"]);
    ok(&o);
    assert!(
        stdout(&o).contains("15 already done, 0 run"),
        "{}",
        stdout(&o)
    );

    // --into refuses a directory without a sweep, a shard, and another configuration
    let o = merge(&pieces(&data), "--into", &dir.join("nothing"));
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("holds no sweep"), "{}", stderr(&o));
    let shard = dir.join("shard");
    ok(&sweep(&cfg, &shard, &["--shard", "1/2"]));
    let o = merge(&pieces(&data), "--into", &shard);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("shard 1/2"), "{}", stderr(&o));
    let other = dir.join("other");
    ok(&sweep(&cfg, &other, &["--set", "grid.seeds=2"]));
    let before = runs_text(&data);
    let o = merge(std::slice::from_ref(&other), "--into", &data);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("another configuration"),
        "{}",
        stderr(&o)
    );
    assert_eq!(runs_text(&data), before);
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 19.3: scripts/fig4-paper-piece.sh itself, on CPU pieces of the tiny configuration:
/// each piece gets its cells.csv, the documented merges (--out the first time, --into after)
/// succeed twice, and a failing step makes the script fail.
#[test]
fn the_piece_script_makes_pieces_with_cells_and_fails_loudly() {
    if Command::new("python3").arg("--version").output().is_err()
        || Command::new("bash").arg("--version").output().is_err()
    {
        eprintln!("skipped: the piece script needs bash and python3");
        return;
    }
    let dir = tmp("script");
    let cfg = write_config(&dir, TINY);
    let data = dir.join("data");
    std::fs::create_dir_all(data.join("pieces")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/fig4-paper-piece.sh");
    let piece = |out: &Path, data: &Path, minutes: &str| {
        Command::new("bash")
            .arg(&script)
            .arg(minutes)
            .env("ANNEALVI", env!("CARGO_BIN_EXE_annealvi"))
            .env("CONFIG", &cfg)
            .env("ENGINE", "cpu")
            .env("DATA", data)
            .env("OUT", out)
            .output()
            .unwrap()
    };
    // 1: a budget of 0 minutes (no run), then 2: the whole grid, then 3: nothing left
    for (k, minutes, new, total) in [(1, "0", 0, 0), (2, "10", 15, 15), (3, "10", 0, 15)] {
        let out = dir.join(format!("out{k}"));
        let o = piece(&out, &data, minutes);
        ok(&o);
        let p = out.join("piece");
        assert_eq!(runs_text(&p).lines().count(), new);
        assert!(p.join("cells.csv").exists(), "piece {k} has no cells.csv");
        assert_eq!(total_n(&p), new);
        copy_dir(&p, &data.join(format!("pieces/{k}")));
        let flag = if data.join("sweep.toml").exists() {
            "--into"
        } else {
            "--out"
        };
        let o = merge(&pieces(&data), flag, &data);
        ok(&o);
        assert_eq!(runs_text(&data).lines().count(), total);
    }
    let reference = dir.join("reference");
    ok(&sweep(
        &cfg,
        &reference,
        &["--set", "grid.gpu_flows=50"], // as the script records it
    ));
    assert_eq!(runs(&data), runs(&reference));
    // a sweep of another configuration in DATA: the sweep fails, and so does the script
    let bad = dir.join("bad");
    ok(&sweep(&cfg, &bad, &["--set", "grid.seeds=2"]));
    let o = piece(&dir.join("out-bad"), &bad, "10");
    assert!(!o.status.success(), "{}", stdout(&o));
    let _ = std::fs::remove_dir_all(dir);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// The three shards of the tiny sweep.
fn shards(dir: &Path, cfg: &Path) -> Vec<PathBuf> {
    (1..=3)
        .map(|k| {
            let s = dir.join(format!("s{k}"));
            ok(&sweep(cfg, &s, &["--shard", &format!("{k}/3")]));
            s
        })
        .collect()
}

/// A line of `line`'s run moved to another key.
fn moved(line: &str, beta_i: f64, t0: f64, seed: usize) -> String {
    let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
    let o = v.as_object_mut().unwrap();
    o.insert("beta_i".into(), beta_i.into());
    o.insert("t0".into(), t0.into());
    o.insert("seed".into(), seed.into());
    v.to_string()
}

/// Issue 19.5: a truncated shard is reported (by the shard and by the cells it leaves
/// incomplete), and lines whose run is not in the grid (a seed ≥ grid.seeds, a cell not in the
/// grid) are ignored with a warning instead of being counted.
#[test]
fn truncated_shards_and_lines_outside_the_grid_are_reported() {
    let dir = tmp("grid");
    let cfg = write_config(&dir, TINY);
    let s = shards(&dir, &cfg);
    // complete: no warning
    let full = dir.join("full");
    let o = merge(&s, "--out", &full);
    ok(&o);
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    assert_eq!(total_n(&full), 15);

    // shard 2 truncated to 2 of its 5 runs; a seed-99 line and a line of a cell not in the
    // grid appended to shard 3
    let two: String = runs_text(&s[1])
        .lines()
        .take(2)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(s[1].join("runs.jsonl"), two).unwrap();
    let first = runs_text(&s[2]).lines().next().unwrap().to_string();
    let extra = format!(
        "{}\n{}\n",
        moved(&first, 0.05, 50.0, 99),
        moved(&first, 0.3, 50.0, 0)
    );
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s[2].join("runs.jsonl"))
        .unwrap();
    std::io::Write::write_all(&mut f, extra.as_bytes()).unwrap();
    drop(f);

    let m = dir.join("m");
    let o = merge(&s, "--out", &m);
    ok(&o);
    let err = stderr(&o);
    assert!(
        err.contains("shard 2/3") && err.contains("2 of its 5 runs"),
        "{err}"
    );
    assert!(
        err.contains("ignored 2 lines") && err.contains("seed 99"),
        "{err}"
    );
    assert!(
        err.contains("cells have fewer than grid.seeds = 3"),
        "{err}"
    );
    assert!(stdout(&o).contains("merged 12 runs"), "{}", stdout(&o));
    let c = cells(&m);
    assert_eq!(c.len(), 5, "a phantom cell: {c:?}");
    assert!(
        c.iter().all(|r| r["n"].parse::<usize>().unwrap() <= 3),
        "{c:?}"
    );
    assert_eq!(total_n(&m), 12);
    assert!(!runs_text(&m).contains("\"seed\":99"));

    // --into ignores them too, and the complete sweep stays complete
    let before = runs_text(&full);
    let o = merge(&s, "--into", &full);
    ok(&o);
    assert!(stderr(&o).contains("ignored 2 lines"), "{}", stderr(&o));
    assert!(stdout(&o).contains("added 0 new runs"), "{}", stdout(&o));
    assert_eq!(runs_text(&full), before);
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 19.4: temporaries left by killed merges and writes (a `.NAME.merging.PID` directory
/// beside the sweep, a `.runs.jsonl.tmpPID` file in it) are removed, with a note, by the next
/// merge, merge --into or sweep on the directory; a directory locked by another process is
/// refused by merge --out and --into.
#[test]
fn stale_temporaries_are_removed_and_locks_hold() {
    let dir = tmp("stale");
    let cfg = write_config(&dir, TINY);
    let s = shards(&dir, &cfg);
    let m = dir.join("m");
    let stale_dir = dir.join(".m.merging.4000000");
    std::fs::create_dir_all(&stale_dir).unwrap();
    std::fs::write(stale_dir.join("runs.jsonl"), "half a merge").unwrap();
    let o = merge(&s, "--out", &m);
    ok(&o);
    assert!(!stale_dir.exists());
    assert!(stdout(&o).contains("interrupted merge"), "{}", stdout(&o));

    for (k, cmd) in ["into", "sweep"].iter().enumerate() {
        let stale = m.join(format!(".runs.jsonl.tmp{}", 4000000 + k));
        std::fs::write(&stale, "half a runs.jsonl").unwrap();
        let o = if *cmd == "into" {
            merge(&s, "--into", &m)
        } else {
            sweep(&cfg, &m, &["--resume"])
        };
        ok(&o);
        assert!(!stale.exists(), "{cmd} left {}", stale.display());
        assert!(stdout(&o).contains("interrupted write"), "{}", stdout(&o));
    }
    assert_eq!(total_n(&m), 15);

    // one writer per directory: merges into a directory locked by someone else are refused
    let held = annealvi::sweep::lock_dir(&m).unwrap();
    let before = runs_text(&m);
    let o = merge(&s, "--into", &m);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("in use"), "{}", stderr(&o));
    let fresh = dir.join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let held2 = annealvi::sweep::lock_dir(&fresh).unwrap();
    let o = merge(&s, "--out", &fresh);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("in use"), "{}", stderr(&o));
    assert!(!fresh.join("runs.jsonl").exists());
    drop((held, held2));
    assert_eq!(runs_text(&m), before);
    ok(&merge(&s, "--out", &fresh));
    assert_eq!(total_n(&fresh), 15);
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 19.4: a merge killed (SIGKILL) at any moment leaves either no runs in --out or the
/// whole merge: never runs.jsonl without sweep.toml, never a temporary left for good; the same
/// merge run again succeeds (or finds the finished merge).
#[test]
fn a_killed_merge_leaves_nothing_or_everything() {
    let dir = tmp("kill");
    let cfg = write_config(&dir, TINY);
    // a large shard set: the tiny grid with 8000 seeds (40 000 runs), written by hand from
    // one real line per cell (merge copies lines, it does not check them further)
    let big_dir = dir.join("big");
    let o = sweep(
        &cfg,
        &big_dir,
        &["--set", "grid.seeds=8000", "--max-minutes", "0"],
    );
    ok(&o);
    let small = dir.join("small");
    ok(&sweep(&cfg, &small, &[]));
    let templates: Vec<String> = runs_text(&small)
        .lines()
        .filter(|l| l.contains("\"seed\":0,"))
        .map(String::from)
        .collect();
    assert_eq!(templates.len(), 5);
    let mut text = String::new();
    for t in &templates {
        let v: serde_json::Value = serde_json::from_str(t).unwrap();
        let (b, t0) = (v["beta_i"].as_f64().unwrap(), v["t0"].as_f64().unwrap());
        for seed in 0..8000 {
            text.push_str(&moved(t, b, t0, seed));
            text.push('\n');
        }
    }
    std::fs::write(big_dir.join("runs.jsonl"), &text).unwrap();
    let n_lines = 40_000;

    // how long a whole merge takes
    let t = Instant::now();
    let reference = dir.join("reference");
    let o = merge(std::slice::from_ref(&big_dir), "--out", &reference);
    ok(&o);
    let whole = t.elapsed();
    assert_eq!(runs_text(&reference).lines().count(), n_lines);

    let complete = |out: &Path| {
        out.join("sweep.toml").exists()
            && out.join("cells.csv").exists()
            && runs_text(out).lines().count() == n_lines
    };
    let mut killed_midway = 0;
    for i in 0..8 {
        let out = dir.join(format!("m{i}"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_annealvi"))
            .arg("merge")
            .arg(&big_dir)
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(whole.mul_f64(0.15 + 0.12 * i as f64));
        let _ = child.kill(); // SIGKILL on Unix
        let status = child.wait().unwrap();
        // what the kill left: nothing of the sweep, or all of it
        let has_runs = out.join("runs.jsonl").exists();
        assert!(
            !has_runs || complete(&out),
            "kill {i} left an incomplete sweep in {}",
            out.display()
        );
        if !status.success() && !has_runs {
            killed_midway += 1;
        }
        // the same merge again: finishes it, or finds it finished
        let o = merge(std::slice::from_ref(&big_dir), "--out", &out);
        if has_runs {
            assert!(
                stderr(&o).contains("already holds a sweep"),
                "{}",
                stderr(&o)
            );
        } else {
            ok(&o);
        }
        assert!(complete(&out));
        assert_eq!(runs_text(&out), runs_text(&reference));
        // nothing temporary left in or beside it
        let leftovers: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .chain(std::fs::read_dir(&out).unwrap())
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".merging.") || n.contains(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "kill {i} left {leftovers:?}");
    }
    eprintln!("{killed_midway} of 8 merges killed before they finished (whole merge {whole:?})");
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 19, item 10: `merge --out` into a directory that is not a sweep but holds a
/// cells.csv is refused, and leaves that file as it was.
#[test]
fn merge_does_not_overwrite_a_foreign_cells_csv() {
    let dir = std::env::temp_dir().join(format!("annealvi-merge-foreign-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("cfg.toml");
    std::fs::write(
        &cfg,
        "[grid]\nbeta_i = [0.1]\nt0 = [20]\nseeds = 2\nextra_steps = 5\n[run.target]\nd = 4\n",
    )
    .unwrap();
    let s = dir.join("s");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_annealvi"))
        .args([
            "sweep",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            s.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let other = dir.join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("cells.csv"), "mine\n").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_annealvi"))
        .args([
            "merge",
            s.to_str().unwrap(),
            "--out",
            other.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("not a sweep"), "{e}");
    assert_eq!(
        std::fs::read_to_string(other.join("cells.csv")).unwrap(),
        "mine\n"
    );
}
