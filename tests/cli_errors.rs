//! Bad input to the `annealvi` binary: every case must exit with status 2 and a clear
//! `error: ...` message naming the problem, never panic, and never print a NaN on stdout.
//!
//! Config cases run `train --out <dir>/o --config <dir>/cfg.toml` with small settings
//! (target.d = 4, optim.steps = 5) besides the bad field, so a case that wrongly succeeds ends
//! fast. Every case runs in its own directory under a unique temp dir.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One bad invocation.
struct Case {
    name: &'static str,
    /// Arguments; `{dir}` is replaced by the case's own directory.
    args: Vec<String>,
    /// Written to `{dir}/cfg.toml` when present.
    config: Option<&'static str>,
    /// Substrings that stderr must all contain.
    expect: &'static [&'static str],
}

/// A `train` case with a configuration file.
fn cfg(name: &'static str, config: &'static str, expect: &'static [&'static str]) -> Case {
    Case {
        name,
        args: strings(&["train", "--out", "{dir}/o", "--config", "{dir}/cfg.toml"]),
        config: Some(config),
        expect,
    }
}

/// A case given by its arguments alone.
fn cli(name: &'static str, args: &[&str], expect: &'static [&'static str]) -> Case {
    Case {
        name,
        args: strings(args),
        config: None,
        expect,
    }
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Valid small settings for `--set`, so that the run would be quick if it got that far.
const SMALL: [&str; 4] = ["--set", "target.d=4", "--set", "optim.steps=5"];

fn with_small(args: &[&str]) -> Vec<String> {
    let mut v = strings(args);
    v.extend(strings(&SMALL));
    v
}

fn cases() -> Vec<Case> {
    let mut c = vec![
        // ---- target ----
        cfg(
            "d = 0",
            "[target]\nd = 0\n[optim]\nsteps = 5\n",
            &["target.d", "≥ 1"],
        ),
        cfg(
            "d too large",
            "[target]\nd = 16777217\n[optim]\nsteps = 5\n",
            &["target.d", "16777216"],
        ),
        cfg(
            "w_star = 0",
            "[target]\nd = 4\nw_star = 0.0\n[optim]\nsteps = 5\n",
            &["target.w_star", "(0, 1)"],
        ),
        cfg(
            "w_star = 1",
            "[target]\nd = 4\nw_star = 1.0\n[optim]\nsteps = 5\n",
            &["target.w_star", "(0, 1)"],
        ),
        cfg(
            "w_star = 1.5",
            "[target]\nd = 4\nw_star = 1.5\n[optim]\nsteps = 5\n",
            &["target.w_star", "(0, 1)"],
        ),
        cfg(
            "w_star = nan",
            "[target]\nd = 4\nw_star = nan\n[optim]\nsteps = 5\n",
            &["target.w_star", "(0, 1)"],
        ),
        cfg(
            "r = -1",
            "[target]\nd = 4\nr = -1.0\n[optim]\nsteps = 5\n",
            &["target.r", "≥ 0"],
        ),
        cfg(
            "r = inf",
            "[target]\nd = 4\nr = inf\n[optim]\nsteps = 5\n",
            &["target.r", "≥ 0"],
        ),
        cfg(
            "d wrong type",
            "[target]\nd = \"abc\"\n[optim]\nsteps = 5\n",
            &["target.d", "invalid type"],
        ),
        cfg(
            "unknown target kind",
            "[target]\nd = 4\nkind = \"trimodal\"\n[optim]\nsteps = 5\n",
            &["target.kind", "unknown variant `trimodal`"],
        ),
        cfg(
            "diagonal direction with the mixture student",
            "[target]\nd = 4\ndirection = \"diagonal\"\n[optim]\nsteps = 5\n",
            &["target.direction", "realnvp"],
        ),
        cfg(
            "diagonal direction with a mixture target",
            "[target]\nd = 4\nkind = \"mixture\"\nmeans = [[1.0]]\ndirection = \"diagonal\"\n[optim]\nsteps = 5\n",
            &["target.direction", "\"axis\""],
        ),
        cfg(
            "unknown direction",
            "[target]\nd = 4\ndirection = \"random\"\n[optim]\nsteps = 5\n",
            &["target.direction", "unknown variant `random`"],
        ),
        cfg(
            "mixture without means",
            "[target]\nd = 4\nkind = \"mixture\"\n[optim]\nsteps = 5\n",
            &["target.means", "at least one mean"],
        ),
        cfg(
            "mixture mean longer than d",
            "[target]\nd = 4\nkind = \"mixture\"\nmeans = [[1, 2, 3, 4, 5]]\n[optim]\nsteps = 5\n",
            &["target.means[0]", "at most target.d = 4"],
        ),
        cfg(
            "mixture mean not finite",
            "[target]\nd = 4\nkind = \"mixture\"\nmeans = [[1.0, nan]]\n[optim]\nsteps = 5\n",
            &["target.means[0][1]", "finite"],
        ),
        cfg(
            "mixture weights not summing to 1",
            "[target]\nd = 4\nkind = \"mixture\"\nmeans = [[1.0], [-1.0]]\nweights = [0.5, 0.6]\n\
             [optim]\nsteps = 5\n",
            &["target.weights", "summing to 1"],
        ),
        cfg(
            "mixture variances wrong length",
            "[target]\nd = 4\nkind = \"mixture\"\nmeans = [[1.0], [-1.0]]\nvariances = [1.0]\n\
             [optim]\nsteps = 5\n",
            &["target.variances", "one per mean"],
        ),
        cfg(
            "mixture variance = 0",
            "[target]\nd = 4\nkind = \"mixture\"\nmeans = [[1.0], [-1.0]]\nvariances = [1.0, 0.0]\n\
             [optim]\nsteps = 5\n",
            &["target.variances[1]", "> 0"],
        ),
        // ---- student ----
        cfg(
            "sigma0 = -1",
            "[target]\nd = 4\n[student]\nsigma0 = -1.0\n[optim]\nsteps = 5\n",
            &["student.sigma0", "> 0"],
        ),
        cfg(
            "sigma0 = 0",
            "[target]\nd = 4\n[student]\nsigma0 = 0.0\n[optim]\nsteps = 5\n",
            &["student.sigma0", "> 0"],
        ),
        cfg(
            "sigma0 = \"bogus\"",
            "[target]\nd = 4\n[student]\nsigma0 = \"bogus\"\n[optim]\nsteps = 5\n",
            &["student.sigma0", "\"schedule\""],
        ),
        cfg(
            "components = 0",
            "[target]\nd = 4\n[student]\ncomponents = 0\n[optim]\nsteps = 5\n",
            &["student.components", "[1, 64]"],
        ),
        cfg(
            "student weights not summing to 1",
            "[target]\nd = 4\n[student]\nweights = [0.5, 0.6]\n[optim]\nsteps = 5\n",
            &["student.weights", "summing to 1"],
        ),
        cfg(
            "student weights wrong length",
            "[target]\nd = 4\n[student]\nweights = [0.2, 0.3, 0.5]\n[optim]\nsteps = 5\n",
            &["student.weights", "2 entries"],
        ),
        cfg(
            "student weight = 0",
            "[target]\nd = 4\n[student]\nweights = [0.0, 1.0]\n[optim]\nsteps = 5\n",
            &["student.weights[0]", "(0, 1]"],
        ),
        cfg(
            "student means wrong count",
            "[target]\nd = 4\n[student]\nmeans = [[1.0]]\n[optim]\nsteps = 5\n",
            &["student.means", "student.components = 2"],
        ),
        cfg(
            "init_mean_scale = \"bogus\"",
            "[target]\nd = 4\n[student]\ninit_mean_scale = \"bogus\"\n[optim]\nsteps = 5\n",
            &["student.init_mean_scale", "inv_sqrt_d"],
        ),
        // ---- schedule ----
        cfg(
            "beta_i = 0",
            "[target]\nd = 4\n[schedule]\nkind = \"exponential\"\nbeta_i = 0.0\n[optim]\nsteps = 5\n",
            &["schedule.beta_i", "(0, 1]"],
        ),
        cfg(
            "beta_i = 1.5",
            "[target]\nd = 4\n[schedule]\nkind = \"linear\"\nbeta_i = 1.5\n[optim]\nsteps = 5\n",
            &["schedule.beta_i", "(0, 1]"],
        ),
        cfg(
            "t0 = -5",
            "[target]\nd = 4\n[schedule]\nkind = \"exponential\"\nt0 = -5.0\n[optim]\nsteps = 5\n",
            &["schedule.t0", "≥ 0"],
        ),
        cfg(
            "constant beta = 0",
            "[target]\nd = 4\n[schedule]\nkind = \"constant\"\nbeta = 0.0\n[optim]\nsteps = 5\n",
            &["schedule.beta", "(0, 1]"],
        ),
        cfg(
            "points not increasing",
            "[target]\nd = 4\n[schedule]\nkind = \"points\"\npoints = [[0, 0.1], [10, 0.5], [10, 1.0]]\n\
             [optim]\nsteps = 5\n",
            &["schedule.points[2]", "strictly larger"],
        ),
        cfg(
            "points empty",
            "[target]\nd = 4\n[schedule]\nkind = \"points\"\npoints = []\n[optim]\nsteps = 5\n",
            &["schedule.points", "at least one"],
        ),
        cfg(
            "points beta > 1",
            "[target]\nd = 4\n[schedule]\nkind = \"points\"\npoints = [[0, 0.5], [10, 1.5]]\n\
             [optim]\nsteps = 5\n",
            &["schedule.points[1]", "(0, 1]"],
        ),
        cfg(
            "unknown schedule kind",
            "[target]\nd = 4\n[schedule]\nkind = \"cosine\"\n[optim]\nsteps = 5\n",
            &["schedule.kind", "unknown variant `cosine`"],
        ),
        // ---- objective ----
        cfg(
            "unknown estimator",
            "[target]\nd = 4\n[objective]\nestimator = \"bogus\"\n[optim]\nsteps = 5\n",
            &["objective.estimator", "unknown variant `bogus`"],
        ),
        cfg(
            "samples = 0",
            "[target]\nd = 4\n[objective]\nsamples = 0\n[optim]\nsteps = 5\n",
            &["objective.samples", "[1, 1048576]"],
        ),
        cfg(
            "exact estimator with 3 components",
            "[target]\nd = 4\n[student]\ncomponents = 3\n[objective]\nestimator = \"exact\"\n\
             [optim]\nsteps = 5\n",
            &["objective.estimator", "at most 2 components"],
        ),
        cfg(
            "exact estimator with mixture target",
            "[target]\nd = 4\nkind = \"mixture\"\nmeans = [[1.0], [-1.0]]\n\
             [objective]\nestimator = \"exact\"\n[optim]\nsteps = 5\n",
            &["objective.estimator", "target.kind = \"bimodal\""],
        ),
        // ---- optim ----
        cfg(
            "lr = 0",
            "[target]\nd = 4\n[optim]\nlr = 0.0\nsteps = 5\n",
            &["optim.lr", "> 0"],
        ),
        cfg(
            "lr negative",
            "[target]\nd = 4\n[optim]\nlr = -0.1\nsteps = 5\n",
            &["optim.lr", "> 0"],
        ),
        cfg(
            "lr = nan",
            "[target]\nd = 4\n[optim]\nlr = nan\nsteps = 5\n",
            &["optim.lr", "> 0"],
        ),
        cfg(
            "steps = 0",
            "[target]\nd = 4\n[optim]\nsteps = 0\n",
            &["optim.steps", "[1, 100000000]"],
        ),
        cfg(
            "max_log_sigma_step negative",
            "[target]\nd = 4\n[optim]\nmax_log_sigma_step = -1.0\nsteps = 5\n",
            &["optim.max_log_sigma_step", "> 0"],
        ),
        cfg(
            "max_log_sigma_step = nan",
            "[target]\nd = 4\n[optim]\nmax_log_sigma_step = nan\nsteps = 5\n",
            &["optim.max_log_sigma_step", "> 0"],
        ),
        cfg(
            "adam_beta1 = 1",
            "[target]\nd = 4\n[optim]\nkind = \"adam\"\nadam_beta1 = 1.0\nsteps = 5\n",
            &["optim.adam_beta1", "[0, 1)"],
        ),
        // ---- record ----
        cfg(
            "record.every = -1",
            "[target]\nd = 4\n[optim]\nsteps = 5\n[record]\nevery = -1\n",
            &["every"],
        ),
        cfg(
            "marginal_steps beyond optim.steps",
            "[target]\nd = 4\n[optim]\nsteps = 5\n[record]\nmarginal_steps = [0, 6]\n",
            &["record.marginal_steps[1]", "optim.steps = 5"],
        ),
        cfg(
            "marginal_points = 1",
            "[target]\nd = 4\n[optim]\nsteps = 5\n[record]\nmarginal_points = 1\n",
            &["record.marginal_points", "[2, 100000]"],
        ),
        cfg(
            "kl_samples = 0",
            "[target]\nd = 4\n[optim]\nsteps = 5\n[record]\nkl_samples = 0\n",
            &["record.kl_samples", "≥ 1"],
        ),
        // ---- file-level ----
        cfg(
            "unknown top-level key",
            "foo = 1\n[target]\nd = 4\n[optim]\nsteps = 5\n",
            &["unknown field `foo`"],
        ),
        cfg(
            "unknown nested key",
            "[target]\nd = 4\nfoo = 1\n[optim]\nsteps = 5\n",
            &["unknown field `foo`", "target"],
        ),
        cfg(
            "negative seed",
            "seed = -1\n[target]\nd = 4\n[optim]\nsteps = 5\n",
            &["seed", "u64"],
        ),
        cfg(
            "malformed TOML",
            "[target\nd = 4\n",
            &["cannot parse", "cfg.toml", "line 1"],
        ),
        cli(
            "missing config file",
            &[
                "train",
                "--out",
                "{dir}/o",
                "--config",
                "{dir}/no-such-file.toml",
            ],
            &["cannot read", "no-such-file.toml"],
        ),
        // ---- --set ----
        Case {
            name: "--set without =",
            args: with_small(&["train", "--out", "{dir}/o", "--set", "target.d"]),
            config: None,
            expect: &["--set target.d", "key=value"],
        },
        Case {
            name: "--set unknown key",
            args: with_small(&["train", "--out", "{dir}/o", "--set", "target.foo=1"]),
            config: None,
            expect: &["unknown field `foo`", "target"],
        },
        Case {
            name: "--set empty key segment",
            args: with_small(&["train", "--out", "{dir}/o", "--set", "target..d=4"]),
            config: None,
            expect: &["--set target..d=4", "dotted path"],
        },
        Case {
            name: "--set below a non-table",
            args: strings(&[
                "train",
                "--out",
                "{dir}/o",
                "--set",
                "target.d=4",
                "--set",
                "target.d.x=1",
                "--set",
                "optim.steps=5",
            ]),
            config: None,
            expect: &["`d` is not a table"],
        },
        Case {
            name: "--set bad value",
            args: with_small(&["train", "--out", "{dir}/o", "--set", "target.w_star=2"]),
            config: None,
            expect: &["target.w_star", "(0, 1)"],
        },
        // ---- output ----
        Case {
            name: "unwritable output dir under /proc",
            args: with_small(&["train", "--out", "/proc/annealvi-test"]),
            config: None,
            expect: &["cannot create directory", "/proc/annealvi-test"],
        },
        Case {
            name: "output dir below a regular file",
            args: with_small(&["train", "--out", "{dir}/file/sub"]),
            config: None,
            expect: &["cannot create directory", "file/sub"],
        },
        // ---- figure / bench / clap ----
        cli(
            "figure 7",
            &["figure", "7", "--quick", "--out", "{dir}/o"],
            &[
                "invalid value for `figure`: 7",
                "1, 2, 3, 4, 5, dim, schedules, schedules-flow or adaptive",
            ],
        ),
        cli(
            "figure schedules-flow --seeds 0",
            &[
                "figure",
                "schedules-flow",
                "--quick",
                "--seeds",
                "0",
                "--out",
                "{dir}/o",
            ],
            &["--seeds", "at least 1"],
        ),
        cli(
            "figure adaptive --seeds 0",
            &[
                "figure", "adaptive", "--quick", "--seeds", "0", "--out", "{dir}/o",
            ],
            &["--seeds", "at least 1"],
        ),
        cli(
            "bench formula --repeat 0",
            &["bench", "formula", "--repeat", "0"],
            &["--repeat", "[1, 1000]"],
        ),
        cli(
            "figure --threads 5000",
            &[
                "figure",
                "1",
                "--quick",
                "--threads",
                "5000",
                "--out",
                "{dir}/o",
            ],
            &["--threads", "[0, 1024]"],
        ),
        cli(
            "figure number not a number",
            &["figure", "seven", "--out", "{dir}/o"],
            &["invalid value for `figure`: seven"],
        ),
        cli(
            "bench gmm --d 0",
            &["bench", "gmm", "--d", "0", "--seeds", "1", "--steps", "1"],
            &["--d", "[1, 1048576]"],
        ),
        cli(
            "bench gmm --seeds 0",
            &["bench", "gmm", "--d", "4", "--seeds", "0", "--steps", "1"],
            &["--seeds", "[1, 16777216]"],
        ),
        cli(
            "bench gmm --samples 0",
            &[
                "bench",
                "gmm",
                "--d",
                "4",
                "--seeds",
                "1",
                "--samples",
                "0",
                "--steps",
                "1",
            ],
            &["--samples", "[1, 1048576]"],
        ),
        cli(
            "bench gmm --steps 0",
            &["bench", "gmm", "--d", "4", "--seeds", "1", "--steps", "0"],
            &["--steps", "[1, 1073741824]"],
        ),
        cli(
            "bench gmm --threads 5000",
            &[
                "bench",
                "gmm",
                "--d",
                "4",
                "--seeds",
                "1",
                "--steps",
                "1",
                "--threads",
                "5000",
            ],
            &["--threads", "[0, 1024]"],
        ),
        cli(
            "bench gmm --d negative",
            &["bench", "gmm", "--d=-3"],
            &["invalid value '-3'", "--d"],
        ),
        cli(
            "unknown subcommand",
            &["frobnicate"],
            &["unrecognized subcommand 'frobnicate'"],
        ),
        cli(
            "unknown bench",
            &["bench", "nope"],
            &["unrecognized subcommand 'nope'"],
        ),
        cli(
            "bench flow d = 1",
            &["bench", "flow", "--d", "1", "--steps", "1"],
            &["--d", "[2, 65536]"],
        ),
        cli(
            "bench flow bad precision",
            &["bench", "flow", "--precision", "f16", "--steps", "1"],
            &["--precision", "f32 or f64"],
        ),
        // ---- RealNVP student ----
        cfg(
            "realnvp d = 1",
            "[target]\nd = 1\n[student]\nfamily = \"realnvp\"\n[optim]\nsteps = 5\n",
            &["target.d", "≥ 2"],
        ),
        cfg(
            "realnvp layers = 0",
            "[target]\nd = 4\n[student.realnvp]\nlayers = 0\n[optim]\nsteps = 5\n",
            &["student.realnvp.layers", "[1, 256]"],
        ),
        cfg(
            "realnvp scale_bound",
            "[target]\nd = 4\n[student.realnvp]\nscale_bound = -1.0\n[optim]\nsteps = 5\n",
            &["student.realnvp.scale_bound", "(0, 20]"],
        ),
        cfg(
            "realnvp sigma0 name",
            "[target]\nd = 4\n[student.realnvp]\nsigma0 = \"wide\"\n[optim]\nsteps = 5\n",
            &["student.realnvp.sigma0", "schedule"],
        ),
        cfg(
            "realnvp collapse_threshold",
            "[target]\nd = 4\n[student.realnvp]\ncollapse_threshold = 0.7\n[optim]\nsteps = 5\n",
            &["student.realnvp.collapse_threshold", "(0, 0.5]"],
        ),
        cfg(
            "realnvp exact estimator",
            "[target]\nd = 4\n[student]\nfamily = \"realnvp\"\n[objective]\nestimator = \"exact\"\n[optim]\nsteps = 5\n",
            &["objective.estimator", "realnvp"],
        ),
        cfg(
            "max_grad_norm = 0",
            "[target]\nd = 4\n[optim]\nsteps = 5\nmax_grad_norm = 0.0\n",
            &["optim.max_grad_norm", "> 0"],
        ),
        cli("train without --out", &["train"], &["--out"]),
        cli(
            "design --max-collapse 1.5",
            &["design", "--max-collapse", "1.5"],
            &["--max-collapse", "(0, 1)"],
        ),
        cli(
            "design --max-collapse NaN",
            &["design", "--max-collapse", "NaN"],
            &["--max-collapse", "(0, 1)"],
        ),
        cli(
            "design --ics 5",
            &["design", "--max-collapse", "0.1", "--ics", "5"],
            &["--ics", "[100, 4194304]"],
        ),
        cli(
            "design --compare 0",
            &["design", "--max-collapse", "0.1", "--compare", "1000,0"],
            &["--compare", "[1, 1e7]"],
        ),
        cli(
            "design with trainable weights",
            &[
                "design",
                "--max-collapse",
                "0.1",
                "--set",
                "run.student.trainable_weights=true",
            ],
            &["fixed equal weights"],
        ),
        cli(
            "theory --method bogus",
            &["theory", "--out", "{dir}/o", "--method", "bogus"],
            &["--method", "paired", "table"],
        ),
        cli(
            "theory --method table with unequal weights",
            &[
                "theory",
                "--out",
                "{dir}/o",
                "--method",
                "table",
                "--set",
                "run.student.weights=[0.3, 0.7]",
            ],
            &["--method table needs fixed equal weights"],
        ),
    ];
    // cases that only make sense with a config file and extra arguments
    c.push(Case {
        name: "--set of an unknown top-level key over a valid file",
        args: strings(&[
            "train",
            "--out",
            "{dir}/o",
            "--config",
            "{dir}/cfg.toml",
            "--set",
            "bogus=1",
        ]),
        config: Some("[target]\nd = 4\n[optim]\nsteps = 5\n"),
        expect: &["unknown field `bogus`"],
    });
    // the GPU engines, in a build without them
    if !cfg!(feature = "gpu") {
        c.push(cli(
            "figure 4 --engine gpu without the gpu feature",
            &[
                "figure", "4", "--quick", "--engine", "gpu", "--out", "{dir}/o",
            ],
            &["grid.device", "--features gpu"],
        ));
        c.push(Case {
            name: "sweep grid.device = gpu without the gpu feature",
            args: strings(&["sweep", "--config", "{dir}/cfg.toml", "--out", "{dir}/o"]),
            config: Some(
                "[grid]\ndevice = \"gpu\"\n[run.student]\nfamily = \"realnvp\"\n[run.optim]\nkind = \"adam\"\n",
            ),
            expect: &["grid.device", "--features gpu"],
        });
    }
    c.push(Case {
        name: "sweep grid.gpu_flows = 0",
        args: strings(&["sweep", "--config", "{dir}/cfg.toml", "--out", "{dir}/o"]),
        config: Some("[grid]\ngpu_flows = 0\n"),
        expect: &["grid.gpu_flows", "[1, 100000]"],
    });
    c
}

/// Runs the binary with a time limit; returns (exit code, stdout, stderr).
fn run(args: &[String], dir: &Path) -> Result<(Option<i32>, String, String), String> {
    let out_path = dir.join("stdout.txt");
    let err_path = dir.join("stderr.txt");
    let stdout = std::fs::File::create(&out_path).map_err(|e| e.to_string())?;
    let stderr = std::fs::File::create(&err_path).map_err(|e| e.to_string())?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_annealvi"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot spawn: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(s) => break s,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("timed out after 120 s (the bad input was probably accepted)".into());
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let read = |p: &PathBuf| std::fs::read_to_string(p).unwrap_or_default();
    Ok((status.code(), read(&out_path), read(&err_path)))
}

#[test]
fn bad_input_gives_a_clear_error_and_exit_status_2() {
    let cases = cases();
    assert!(cases.len() >= 25, "only {} cases", cases.len());
    let mut names: Vec<&str> = cases.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), cases.len(), "case names must be distinct");

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let root = std::env::temp_dir().join(format!(
        "annealvi-cli-errors-{}-{nanos}",
        std::process::id()
    ));
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let dir = root.join(format!("case{i:02}"));
        std::fs::create_dir_all(&dir).expect("create the case directory");
        // a regular file, for the "output below a file" case
        std::fs::write(dir.join("file"), b"not a directory").expect("write a file");
        if let Some(text) = case.config {
            std::fs::write(dir.join("cfg.toml"), text).expect("write the config file");
        }
        let d = dir.display().to_string();
        let args: Vec<String> = case.args.iter().map(|a| a.replace("{dir}", &d)).collect();
        let (code, stdout, stderr) = match run(&args, &dir) {
            Ok(r) => r,
            Err(e) => {
                failures.push(format!("[{}] {args:?}: {e}", case.name));
                continue;
            }
        };
        let mut problems = Vec::new();
        if code != Some(2) {
            problems.push(format!("exit status {code:?}, expected 2"));
        }
        if stderr.contains("panicked") {
            problems.push("panicked".to_string());
        }
        if !stderr.starts_with("error:") {
            problems.push("stderr does not start with `error:`".to_string());
        }
        for want in case.expect {
            if !stderr.contains(want) {
                problems.push(format!("stderr lacks {want:?}"));
            }
        }
        if stdout.contains("NaN") {
            problems.push("stdout contains NaN".to_string());
        }
        if !problems.is_empty() {
            failures.push(format!(
                "[{}] {args:?}: {}\n    stdout: {}\n    stderr: {}",
                case.name,
                problems.join("; "),
                stdout.trim_end(),
                stderr.trim_end().replace('\n', "\n            "),
            ));
        }
    }
    if failures.is_empty() {
        let _ = std::fs::remove_dir_all(&root);
    }
    assert!(
        failures.is_empty(),
        "{} of {} bad-input cases failed (files kept in {}):\n{}",
        failures.len(),
        cases.len(),
        root.display(),
        failures.join("\n")
    );
}
