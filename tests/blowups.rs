//! Runs that blow up: every number of runs.jsonl round-trips bit for bit (±inf, NaN payloads,
//! subnormals), a diverged run never makes a sweep unreadable, overflowing statistics are
//! diverged (both engines, the flow, the ODE), and runs.jsonl is read with bounds.

mod common;

use annealvi::config::Config;
use annealvi::metrics::OutcomeKind;
use annealvi::sweep::{RunLine, read_runs};
use common::{TINY, annealvi};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Output;

fn tmp(name: &str) -> PathBuf {
    common::tmp_dir("blowup", name)
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        String::from_utf8_lossy(&o.stdout)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn line_with(values: &[f64]) -> RunLine {
    RunLine {
        beta_i: values[0],
        t0: values[1],
        seed: 3,
        outcome: OutcomeKind::Collapsed,
        mode: Some(0),
        diverged_step: None,
        steps: 10,
        light_mode_mass: Some(values[2]),
        m: values.to_vec(),
        sigma: values.iter().rev().copied().collect(),
        q: vec![values[3]],
        w: vec![],
        mode_weight_error: Some(values[4]),
        ess_fraction: None,
        kl: Some(values[5]),
        log_z_error: None,
        modes_covered: None,
        emc: None,
        anneal_steps: Some(7),
        wall_seconds: values[6],
    }
}

fn same_bits(a: &RunLine, b: &RunLine) -> bool {
    let bits = |l: &RunLine| -> Vec<u64> {
        let mut v = vec![l.beta_i, l.t0, l.wall_seconds];
        v.extend(l.light_mode_mass);
        v.extend(l.mode_weight_error);
        v.extend(l.ess_fraction);
        v.extend(l.kl);
        v.extend(&l.m);
        v.extend(&l.sigma);
        v.extend(&l.q);
        v.extend(&l.w);
        v.into_iter().map(f64::to_bits).collect()
    };
    bits(a) == bits(b) && a.seed == b.seed && a.outcome == b.outcome
}

/// Property: any f64 — random bit patterns (so NaNs with any payload and sign, subnormals,
/// both zeros) and the special values — is written and read back bit-identically.
#[test]
fn any_f64_round_trips_bit_for_bit_through_a_run_line() {
    let specials = [
        0.0,
        -0.0,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff0_0000_0000_0001), // signalling NaN
        f64::from_bits(0xfff8_dead_beef_0001),
        f64::MIN_POSITIVE,
        f64::MIN_POSITIVE / 2.0, // subnormal
        f64::from_bits(1),       // the smallest subnormal
        -f64::from_bits(1),
        f64::MAX,
        f64::MIN,
        f64::EPSILON,
        1e308,
        5e-324,
    ];
    let check = |vals: &[f64]| {
        let l = line_with(vals);
        let text = l.to_json();
        assert!(!text.contains('\n'));
        let back = RunLine::from_json(text.as_bytes())
            .unwrap_or_else(|e| panic!("cannot read back {text}: {e}"));
        assert!(same_bits(&l, &back), "{text} read back differently");
    };
    for w in specials.windows(7) {
        check(w);
    }
    let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(19);
    for _ in 0..20_000 {
        let vals: Vec<f64> = (0..7).map(|_| f64::from_bits(rng.r#gen::<u64>())).collect();
        check(&vals);
    }
}

/// A line that earlier versions wrote (null for a non-finite number) is read, as NaN, instead
/// of making the whole file unreadable; so is a line with the new spellings.
#[test]
fn null_and_non_finite_numbers_in_runs_jsonl_are_read() {
    let dir = tmp("legacy");
    let p = dir.join("runs.jsonl");
    std::fs::write(
        &p,
        concat!(
            r#"{"beta_i":0.05,"t0":50.0,"seed":0,"outcome":"collapsed","mode":0,"diverged_step":null,"steps":70,"light_mode_mass":null,"m":[null,1e300],"sigma":[1.0,null],"q":[null,null,null],"w":[0.5,0.5],"wall_seconds":0.1}"#,
            "\n",
            r#"{"beta_i":0.05,"t0":50.0,"seed":1,"outcome":"diverged","mode":null,"diverged_step":3,"steps":3,"light_mode_mass":null,"m":["inf","-inf"],"sigma":["NaN","NaN:0x7ff0000000000001"],"q":[1.0,2.0,3.0],"w":[0.5,0.5],"wall_seconds":0.1}"#,
            "\n"
        ),
    )
    .unwrap();
    let runs = read_runs(&p, false).unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs[0].m[0].is_nan() && runs[0].sigma[1].is_nan());
    assert_eq!(runs[1].m, vec![f64::INFINITY, f64::NEG_INFINITY]);
    assert_eq!(runs[1].sigma[1].to_bits(), 0x7ff0_0000_0000_0001);
    // a bad spelling is an error naming the line, not a silent NaN
    std::fs::write(
        &p,
        concat!(
            r#"{"beta_i":0.05,"t0":50.0,"seed":1,"outcome":"diverged","mode":null,"diverged_step":3,"steps":3,"light_mode_mass":null,"m":["infinity"],"sigma":[],"q":[],"w":[],"wall_seconds":0.1}"#,
            "\n"
        ),
    )
    .unwrap();
    let e = read_runs(&p, false).unwrap_err().to_string();
    assert!(e.contains("line 1"), "{e}");
}

/// Items 1 and 2 of issue 19: a sweep whose runs all blow up finishes, writes cells.csv with
/// every run diverged (none counted as collapsed or covered), resumes with nothing to do, and
/// merges.
#[test]
fn a_sweep_of_blown_up_runs_stays_usable_and_counts_them_diverged() {
    let dir = tmp("lr");
    let cfg = dir.join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    let out = dir.join("s");
    let args = |extra: &[&str]| {
        let mut a = vec![
            "sweep",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--threads",
            "1",
            "--set",
            "run.optim.lr=100",
        ];
        a.extend_from_slice(extra);
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        annealvi(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    ok(&run(&[]));
    let runs = read_runs(&out.join("runs.jsonl"), false).unwrap();
    assert_eq!(runs.len(), 15);
    for r in &runs {
        assert_eq!(r.outcome, OutcomeKind::Diverged, "{r:?}");
        assert!(r.diverged_step.is_some());
    }
    let cells = std::fs::read_to_string(out.join("cells.csv")).unwrap();
    assert_eq!(cells.lines().count(), 1 + 5, "{cells}");
    let stdout = ok(&run(&["--resume"]));
    assert!(stdout.contains("15 already done, 0 run"), "{stdout}");
    let merged = dir.join("m");
    ok(&annealvi(&[
        "merge",
        out.to_str().unwrap(),
        "--out",
        merged.to_str().unwrap(),
    ]));
    assert_eq!(
        read_runs(&merged.join("runs.jsonl"), false).unwrap().len(),
        15
    );
}

/// Item 1: a complete (newline-terminated) last line that is not a run is an error, never
/// taken for a torn line and deleted; a last line without its newline is torn and cut.
#[test]
fn only_a_line_without_its_newline_is_torn() {
    let dir = tmp("torn");
    let cfg = dir.join("tiny.toml");
    std::fs::write(&cfg, TINY).unwrap();
    let out = dir.join("s");
    let sweep = |extra: &[&str]| {
        let mut a = vec![
            "sweep",
            "--config",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--threads",
            "1",
            "--set",
            "grid.t0=[50]",
            "--set",
            "grid.no_annealing=false",
        ];
        a.extend_from_slice(extra);
        annealvi(&a)
    };
    ok(&sweep(&[]));
    let runs = out.join("runs.jsonl");
    let good = std::fs::read_to_string(&runs).unwrap();
    std::fs::write(&runs, format!("{good}{{\"beta_i\":0.05,\"t0\":\n")).unwrap();
    let o = sweep(&["--resume"]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("malformed line 7"), "{e}");
    assert!(
        std::fs::read_to_string(&runs)
            .unwrap()
            .ends_with("\"t0\":\n"),
        "the line was deleted"
    );
    std::fs::write(&runs, format!("{good}{{\"beta_i\":0.05,\"t0\":")).unwrap();
    let stdout = ok(&sweep(&["--resume"]));
    assert!(stdout.contains("6 already done, 0 run"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&runs).unwrap(), good);
}

/// Item 11: runs.jsonl that is not a regular file (a link to an endless device) is refused,
/// and an absurdly long line is refused without reading it whole.
#[test]
fn runs_jsonl_is_read_with_bounds() {
    let dir = tmp("bounds");
    let p = dir.join("runs.jsonl");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/dev/zero", &p).unwrap();
        let e = read_runs(&p, false).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::remove_file(&p).unwrap();
    }
    let long = vec![b'x'; annealvi::sweep::MAX_LINE_BYTES + 10];
    std::fs::write(&p, long).unwrap();
    let e = read_runs(&p, true).unwrap_err().to_string();
    assert!(e.contains("longer than"), "{e}");
    assert!(Path::new(&p).metadata().unwrap().len() > 1 << 20, "cut");
}

fn train_outcome(sets: &[&str]) -> annealvi::metrics::Outcome {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let cfg = Config::load(None, &sets).unwrap();
    let exp = cfg.compile().unwrap();
    annealvi::run::Trainer::new(&exp)
        .run()
        .unwrap()
        .outcome()
        .clone()
}

/// Item 2: a run whose means overflow (finite but absurd) is diverged, in both engines; the
/// bound is configuration, and `inf` restores the finiteness-only rule.
#[test]
fn overflowing_statistics_are_diverged_in_both_engines() {
    use annealvi::metrics::Outcome;
    for engine in ["vector", "statistics"] {
        let e = format!("objective.engine=\"{engine}\"");
        let o = train_outcome(&[
            "target.d=16",
            "optim.lr=5",
            "optim.steps=200",
            "record.every=0",
            &e,
        ]);
        assert!(matches!(o, Outcome::Diverged { .. }), "{engine}: {o:?}");
    }
    // a run that does not blow up is untouched by the rule
    let o = train_outcome(&["target.d=16", "optim.steps=200", "record.every=0"]);
    assert!(!matches!(o, Outcome::Diverged { .. }), "{o:?}");
    // an invalid bound names the field and the range
    let e = Config::load(None, &["optim.divergence_bound=10".to_string()])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("optim.divergence_bound") && e.contains("at least"),
        "{e}"
    );
    let e = Config::load(None, &["optim.divergence_bound=-1".to_string()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("a number > 0"), "{e}");
}

/// Item 2, the flow: parameters beyond the bound end the run as diverged (the same run
/// with `inf`, the finiteness-only rule, is not).
#[test]
fn a_flow_out_of_bounds_is_diverged() {
    use annealvi::metrics::Outcome;
    let flow = |bound: &str| {
        train_outcome(&[
            "student.family=\"realnvp\"",
            "target.d=4",
            "optim.kind=\"adam\"",
            "optim.steps=50",
            "optim.lr=0.2",
            &format!("optim.divergence_bound={bound}"),
            "record.every=0",
            "student.realnvp.eval_samples=256",
        ])
    };
    let o = flow("inf");
    assert!(!matches!(o, Outcome::Diverged { .. }), "{o:?}");
    let o = flow("1");
    assert!(matches!(o, Outcome::Diverged { step } if step > 0), "{o:?}");
}

/// Item 2, the theory: an ODE whose statistics overflow ends with `Diverged`, counted as a
/// failed integration, never as a collapse. The bound is the statistics flows' (opted in by
/// `OdeSystem::state_bound`); a system without it integrates on.
#[test]
fn the_ode_calls_overflowing_statistics_diverged() {
    use annealvi::error::IntegrateError;
    use annealvi::theory::{STATE_BOUND, integrate};
    // dx/dt = x: grows past the bound at t = ln(1e12 / 1) ≈ 27.6
    struct Grow;
    impl annealvi::theory::OdeSystem<1> for Grow {
        fn rhs(&self, _t: f64, x: &[f64; 1]) -> [f64; 1] {
            [x[0]]
        }
        fn state_bound(&self) -> f64 {
            STATE_BOUND
        }
    }
    struct Unbounded;
    impl annealvi::theory::OdeSystem<1> for Unbounded {
        fn rhs(&self, _t: f64, x: &[f64; 1]) -> [f64; 1] {
            [x[0]]
        }
    }
    let tol = annealvi::theory::Tolerance {
        rtol: 1e-8,
        atol: 1e-10,
        max_step: 1.0,
    };
    match integrate(&Grow, 0.0, [1.0], &[40.0], tol) {
        Err(IntegrateError::Diverged { tau }) => {
            assert!((tau - STATE_BOUND.ln()).abs() < 1.0, "{tau}")
        }
        other => panic!("{other:?}"),
    }
    assert!(integrate(&Grow, 0.0, [1.0], &[20.0], tol).is_ok());
    let x = integrate(&Unbounded, 0.0, [1.0], &[40.0], tol).unwrap()[0][0];
    assert!((x.ln() - 40.0).abs() < 1e-4, "{x}");
}
