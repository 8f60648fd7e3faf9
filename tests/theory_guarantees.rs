//! `theory` and `design` end, and say so, when they cannot predict: a step budget for the ODE
//! integrator, NaN for cells where nothing was classified, refusals of settings whose dynamics
//! the ODE does not describe; and the smaller CLI checks.

use annealvi::sweep::Cell;
use annealvi::theory::grid::{TheoryCell, write_theory};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A small grid: 2 cells + no annealing, d = 16.
const SMALL: &str = r#"
[grid]
beta_i = [0.05, 0.3]
t0 = [200]
no_annealing = true
seeds = 4
extra_steps = 100

[run]
[run.target]
d = 16
"#;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("annealvi-thg-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs annealvi; kills it and returns None if it has not finished within `secs`.
fn annealvi_within(secs: u64, args: &[&str]) -> Option<Output> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_annealvi"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return Some(child.wait_with_output().unwrap());
        }
        if t.elapsed() > Duration::from_secs(secs) {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Issue 14.6: absurd learning rates or target scales end with a clear failure instead of
/// integrating for hours.
#[test]
fn theory_and_design_end_on_absurd_settings() {
    let dir = tmp("budget");
    let cfg = dir.join("cfg.toml");
    std::fs::write(&cfg, SMALL).unwrap();
    let c = cfg.to_str().unwrap();
    let out = dir.join("t");
    let o_ = out.to_str().unwrap();
    // (a target of scale 1e10 needs a divergence bound above 1e12: inf here)
    for (set, set2) in [
        ("run.optim.lr=1e300", "run.seed=3"),
        ("run.optim.lr=1e3", "run.seed=3"),
        ("run.target.r=1e10", "run.optim.divergence_bound=inf"),
    ] {
        let o = annealvi_within(
            120,
            &[
                "theory",
                "--config",
                c,
                "--set",
                set,
                "--set",
                set2,
                "--out",
                o_,
                "--threads",
                "2",
            ],
        )
        .unwrap_or_else(|| panic!("theory with {set} still running after 120 s"));
        // either refused with the reason, or finished with the failures reported as such
        let err = stderr(&o);
        if o.status.success() {
            let csv = std::fs::read_to_string(out.join("theory.csv")).unwrap();
            if err.contains("every ODE integration failed") {
                assert!(csv.contains("NaN"), "{set}: {csv}");
            }
        } else {
            assert_eq!(o.status.code(), Some(2), "{set}: {err}");
            assert!(err.contains("budget"), "{set}: {err}");
        }
    }
    let o = annealvi_within(
        120,
        &[
            "design",
            "--max-collapse",
            "0.1",
            "--config",
            c,
            "--set",
            "run.optim.lr=1e3",
            "--check-seeds",
            "0",
            "--ics",
            "200",
        ],
    )
    .expect("design with lr = 1e3 still running after 120 s");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("budget"), "{}", stderr(&o));
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 14.9: a cell where every integration failed reports NaN, not P = 0 [0, 0.49].
#[test]
fn a_cell_with_only_failed_integrations_reports_nan() {
    let dir = tmp("nan");
    let cells = [
        TheoryCell {
            cell: Cell {
                beta_i: 0.1,
                t0: 100.0,
            },
            n: 5,
            collapsed: 0,
            failed: 5,
            p_formula: f64::NAN,
        },
        TheoryCell {
            cell: Cell {
                beta_i: 0.1,
                t0: 200.0,
            },
            n: 5,
            collapsed: 1,
            failed: 0,
            p_formula: f64::NAN,
        },
    ];
    write_theory(&dir, &cells).unwrap();
    let text = std::fs::read_to_string(dir.join("theory.csv")).unwrap();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    // p_ode, ci_low, ci_high
    assert_eq!(&rows[0][4..7], &["NaN", "NaN", "NaN"], "{text}");
    assert_eq!(rows[1][4], "0.2");
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 14.10: theory and design refuse settings the ODE does not describe.
#[test]
fn theory_and_design_refuse_dynamics_they_do_not_model() {
    let dir = tmp("refuse");
    let cfg = dir.join("cfg.toml");
    std::fs::write(&cfg, SMALL).unwrap();
    let c = cfg.to_str().unwrap();
    let out = dir.join("t");
    for (set, field) in [
        ("run.optim.kind=adam", "run.optim.kind"),
        (
            "run.objective.loss_scale=per_dim",
            "run.objective.loss_scale",
        ),
        ("run.student.family=realnvp", "run.student.family"),
    ] {
        let t = annealvi_within(
            120,
            &[
                "theory",
                "--config",
                c,
                "--set",
                set,
                "--out",
                out.to_str().unwrap(),
            ],
        )
        .unwrap();
        assert_eq!(t.status.code(), Some(2), "theory {set}: {}", stderr(&t));
        assert!(stderr(&t).contains(field), "{}", stderr(&t));
        let d = annealvi_within(
            120,
            &[
                "design",
                "--max-collapse",
                "0.1",
                "--config",
                c,
                "--set",
                set,
                "--check-seeds",
                "2",
                "--ics",
                "200",
            ],
        )
        .unwrap();
        assert_eq!(d.status.code(), Some(2), "design {set}: {}", stderr(&d));
        assert!(stderr(&d).contains(field), "{}", stderr(&d));
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Issue 14.11: an unused [student.realnvp] section is not validated against target.d.
#[test]
fn a_large_gaussian_mixture_is_not_refused_for_the_unused_flow_section() {
    let sets = vec!["target.d=262144".to_string()];
    let cfg = annealvi::config::Config::load(None, &sets).expect("d = 262144 with the GMM");
    assert_eq!(cfg.target.d, 262_144);
    // the flow section is still checked when it is used
    let flow = vec![
        "target.d=262144".to_string(),
        "student.family=\"realnvp\"".to_string(),
    ];
    assert!(annealvi::config::Config::load(None, &flow).is_err());
}

/// Issue 14.12: smaller checks of the command line.
#[test]
fn command_line_inputs_are_checked_before_any_work() {
    let dir = tmp("cli");
    let x_path = dir.join("x");
    let x = x_path.to_str().unwrap();
    // a --set value with a line break
    let o = annealvi_within(60, &["train", "--set", "optim.steps=3\nseed=4", "--out", x]).unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line break"), "{}", stderr(&o));
    // a seed above 2^63 - 1: named, with its range
    let o = annealvi_within(
        60,
        &["train", "--set", "seed=9223372036854775808", "--out", x],
    )
    .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("`seed`") && stderr(&o).contains("9223372036854775807"));
    // duplicate --compare lengths
    let o = annealvi_within(
        60,
        &["design", "--max-collapse", "0.1", "--compare", "1000,1000"],
    )
    .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--compare"), "{}", stderr(&o));
    // design --out that cannot be written: refused before the work (nothing printed)
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    let bad = file.join("report.md");
    let cfg = dir.join("cfg.toml");
    std::fs::write(&cfg, SMALL).unwrap();
    let o = annealvi_within(
        120,
        &[
            "design",
            "--max-collapse",
            "0.1",
            "--config",
            cfg.to_str().unwrap(),
            "--check-seeds",
            "2",
            "--ics",
            "200",
            "--out",
            bad.to_str().unwrap(),
        ],
    )
    .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty(), "the work ran before the --out check");
    // --device gpu (here by its former name --engine) in a build without the feature: refused
    // before Figure 1, naming the flag
    if !cfg!(feature = "gpu") {
        let out = dir.join("rep");
        let o = annealvi_within(
            60,
            &[
                "reproduce",
                "--engine",
                "gpu",
                "--out",
                out.to_str().unwrap(),
            ],
        )
        .expect("reproduce ran figures before refusing --engine gpu");
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("--device"), "{}", stderr(&o));
        assert!(!out.join("fig1").exists());
    }
    let _ = std::fs::remove_dir_all(dir);
}
