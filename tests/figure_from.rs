//! `annealvi figure 4 --from DIR`: Figure 4 from the finished runs of a partial RealNVP sweep
//! (a small CPU sweep stopped after some of its runs).

use annealvi::figure::figure4_from;
use annealvi::sweep::{SweepConfig, SweepOptions, run_sweep};
use std::path::{Path, PathBuf};
use std::process::Command;

/// 2 × 2 annealed cells + no annealing, 3 runs each: 15 runs of a tiny flow.
const CONFIG: &str = r#"
[grid]
beta_i = [0.1, 0.3]
t0 = [20, 40]
no_annealing = true
seeds = 3
extra_steps = 20

[run]
seed = 11
[run.target]
d = 4
r = 3.0
w_star = 0.8
direction = "diagonal"
[run.student]
family = "realnvp"
[run.student.realnvp]
layers = 2
depth = 1
width = 8
sigma0 = "schedule"
eval_samples = 200
[run.objective]
samples = 16
[run.optim]
kind = "adam"
lr = 0.002
"#;
fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("annealvi-from-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn sweep(out: &Path, max_runs: Option<usize>) {
    let cfg: SweepConfig = toml::from_str(CONFIG).unwrap();
    cfg.validate().unwrap();
    let opts = SweepOptions {
        out: out.to_path_buf(),
        resume: true,
        shard: None,
        max_runs,
        budget: None,
    };
    run_sweep(&cfg, &opts).unwrap();
}

#[test]
fn figure4_from_a_partial_sweep_marks_unfinished_cells() {
    let dir = tmp("partial");
    let (data, fig) = (dir.join("sweep"), dir.join("fig"));
    // cell-major order: the first two cells finished (3 + 3 runs), one run of the third
    sweep(&data, Some(7));
    let p = figure4_from(&data, &fig).unwrap();
    assert_eq!((p.runs_done, p.runs_planned), (7, 15));
    assert_eq!((p.cells_done, p.cells_planned), (2, 5));
    assert!(p.steps_done > 0 && p.steps_done < p.steps_planned, "{p:?}");
    assert!((p.fraction() - 7.0 / 15.0).abs() < 1e-12);
    let progress = std::fs::read_to_string(fig.join("progress.csv")).unwrap();
    let rows: Vec<&str> = progress.lines().collect();
    assert_eq!(rows[0], "beta_i,t0,done,planned");
    assert_eq!(rows.len(), 6);
    let done: Vec<usize> = rows[1..]
        .iter()
        .map(|r| r.split(',').nth(2).unwrap().parse().unwrap())
        .collect();
    assert_eq!(done, vec![3, 3, 1, 0, 0]);
    let svg = std::fs::read_to_string(fig.join("fig4.svg")).unwrap();
    assert!(
        svg.contains("7/15 runs done (47%)"),
        "title with the fraction done"
    );
    assert!(
        svg.contains("unfinished cell"),
        "unfinished cells are marked"
    );
    assert!(fig.join("fig4_light_mass.png").exists());
    assert!(fig.join("cells.csv").exists());

    // finished: nothing marked
    sweep(&data, None);
    let p = figure4_from(&data, &fig).unwrap();
    assert_eq!((p.runs_done, p.cells_done), (15, 5));
    assert_eq!(p.steps_done, p.steps_planned);
    let svg = std::fs::read_to_string(fig.join("fig4.svg")).unwrap();
    assert!(svg.contains("15/15 runs done (100%)"));
    assert!(!svg.contains("unfinished cell"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn figure_from_refuses_what_it_cannot_draw() {
    let dir = tmp("bad");
    let bin = env!("CARGO_BIN_EXE_annealvi");
    let out = dir.join("fig");
    let run = |args: &[&str]| {
        Command::new(bin)
            .args(args)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    // no sweep there
    let o = run(&["figure", "4", "--from", dir.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("sweep.toml"), "{err}");
    // not figure 4
    let o = run(&["figure", "2", "--from", dir.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--from") && err.contains("figure 4"), "{err}");
    // a Gaussian-mixture sweep
    let gmm = dir.join("gmm");
    std::fs::create_dir_all(&gmm).unwrap();
    std::fs::write(
        gmm.join("sweep.toml"),
        "[grid]\nbeta_i = [0.1]\nt0 = [10]\nseeds = 1\n[run.target]\nd = 4\n",
    )
    .unwrap();
    let o = run(&["figure", "4", "--from", gmm.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("--from") && err.contains("realnvp"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
