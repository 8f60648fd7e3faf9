//! The adaptive schedule (`schedule.kind = "adaptive"`): the ESS bisection against a direct
//! computation, β's path (starts at β_i, non-decreasing, 1 no later than the budget), the
//! reported step at which β reached 1, determinism, every student family and simulation,
//! ln π at the statistics engine's samples against the vector engine's in law, sweeps, and
//! configuration errors.

mod common;

use annealvi::family::GmmStudent;
use annealvi::prelude::*;
use annealvi::run::AnyRun;
use annealvi::schedule::{ess, ess_step};
use annealvi::seed::{Purpose, stream};
use annealvi::statistics::StatsStudent;
use annealvi::sweep::{SweepConfig, SweepOptions};
use annealvi::target::{IsotropicMixture, ManyWell};
use annealvi::train::{AnnealedAt, FlowRecorder, Student};
use rand::Rng;

/// The realised β at every recorded step and the step at which β reached 1.
fn betas(toml: &str) -> (Vec<(usize, f64)>, Option<usize>) {
    let exp = Config::from_toml_str(toml).unwrap().compile().unwrap();
    let mut rec = (
        (Recorder::default(), FlowRecorder::default()),
        AnnealedAt::default(),
    );
    Trainer::new(&exp)
        .index(3)
        .observer(&mut rec)
        .run()
        .unwrap();
    let ((mix, flow), at) = rec;
    let mut b: Vec<(usize, f64)> = mix.records.iter().map(|r| (r.step, r.beta)).collect();
    b.extend(flow.records.iter().map(|r| (r.step, r.beta)));
    (b, at.0)
}

/// β starts at β_i, never decreases, is 1 from the reported step on, and that step is at
/// most the budget.
fn check_path(b: &[(usize, f64)], at: Option<usize>, beta_i: f64, t_max: usize) {
    assert_eq!(b[0], (0, beta_i));
    for w in b.windows(2) {
        assert!(w[1].1 >= w[0].1, "β decreased: {w:?}");
    }
    let at = at.expect("β reached 1");
    assert!(at <= t_max, "β reached 1 at {at} > budget {t_max}");
    for &(s, beta) in b {
        assert_eq!(
            beta == 1.0,
            s >= at,
            "step {s}: β = {beta}, reached 1 at {at}"
        );
    }
}

#[test]
fn ess_step_matches_a_direct_computation() {
    let mut rng = stream(1, 0, Purpose::Eval);
    let ell: Vec<f64> = (0..300)
        .map(|_| -50.0 * rng.r#gen::<f64>().powi(2))
        .collect();
    let direct = |delta: f64| {
        let w: Vec<f64> = ell.iter().map(|l| (delta * l).exp()).collect();
        let s1: f64 = w.iter().sum();
        let s2: f64 = w.iter().map(|x| x * x).sum();
        s1 * s1 / s2
    };
    for rho in [0.2, 0.5, 0.9] {
        let d = ess_step(&ell, rho, 1.0);
        assert!(d > 0.0 && d < 1.0, "ρ = {rho}: Δβ = {d}");
        let e = direct(d);
        assert!((e / (rho * 300.0) - 1.0).abs() < 1e-6, "ρ = {rho}: ESS {e}");
        // the shifted computation is the direct one
        let top = ell.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        assert!((ess(&ell, top, 0.7 * d) / direct(0.7 * d) - 1.0).abs() < 1e-12);
    }
    // ESS(max) ≥ ρ·n: the whole way at once; all samples equal: ESS = n at any Δβ
    assert_eq!(ess_step(&ell, 0.5, 1e-6), 1e-6);
    assert_eq!(ess_step(&[-3.0; 10], 0.99, 0.4), 0.4);
    // a sample with ln π = −∞ or NaN has weight 0 (counts as lost); fewer than two finite: hold
    let mut lost = ell.clone();
    lost[0] = f64::NEG_INFINITY;
    lost[1] = f64::NAN;
    let d = ess_step(&lost, 0.5, 1.0);
    let finite: Vec<f64> = lost.iter().copied().filter(|l| l.is_finite()).collect();
    let top = finite.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    assert!((ess(&finite, top, d) / 150.0 - 1.0).abs() < 1e-6);
    assert_eq!(ess_step(&[f64::NAN, 1.0], 0.5, 1.0), 0.0);
}

const STATS: &str = "seed = 5\n[target]\nd = 512\n[student]\nsimulation = \"statistics\"\n\
    sigma0 = \"schedule\"\n[objective]\nsamples = 16\n[schedule]\nkind = \"adaptive\"\n\
    beta_i = 0.02\nt0 = 1500\nrho = 0.5\nevery = 10\nsamples = 64\n[optim]\nsteps = 1700\n\
    lr = 0.05\n[record]\nevery = 10";

#[test]
fn statistics_engine_beta_path_is_monotone_ends_by_the_budget_and_is_reproducible() {
    let (b, at) = betas(STATS);
    check_path(&b, at, 0.02, 1500);
    // the rule moved β before the budget (not only the hard end at t0)
    let at = at.unwrap();
    assert!(at < 1500, "β reached 1 only at the budget");
    let mid = b.iter().filter(|&&(_, x)| x > 0.02 && x < 1.0).count();
    assert!(mid >= 3, "β took {mid} intermediate values");
    // same configuration and run index: the same path
    assert_eq!(betas(STATS), (b, Some(at)));
    // another seed: another path (the samples drive it)
    let other = betas(&STATS.replace("seed = 5", "seed = 6"));
    assert_ne!(other.0, betas(STATS).0);
}

#[test]
fn a_tiny_budget_ends_annealing_at_the_budget() {
    // ρ close to 1 moves β by tiny steps: the hard budget sets β = 1 at t0
    let toml = STATS
        .replace("rho = 0.5", "rho = 0.999")
        .replace("t0 = 1500", "t0 = 40")
        .replace("steps = 1700", "steps = 60");
    let (b, at) = betas(&toml);
    check_path(&b, at, 0.02, 40);
    assert_eq!(at, Some(40));
    // budget 0: no annealing at all
    let (b, at) = betas(&toml.replace("t0 = 40", "t0 = 0"));
    assert_eq!(at, Some(0));
    assert!(b.iter().all(|&(_, x)| x == 1.0));
}

#[test]
fn vector_engine_and_flow_train_with_it() {
    let vector = STATS
        .replace("d = 512", "d = 16")
        .replace("simulation = \"statistics\"", "simulation = \"vector\"")
        .replace("t0 = 1500", "t0 = 200")
        .replace("steps = 1700", "steps = 250");
    let (b, at) = betas(&vector);
    check_path(&b, at, 0.02, 200);
    let flow = "seed = 2\n[target]\nd = 2\n[student]\nfamily = \"realnvp\"\n\
        [student.realnvp]\nlayers = 2\ndepth = 2\nwidth = 8\neval_samples = 500\n\
        [objective]\nsamples = 32\n[schedule]\nkind = \"adaptive\"\nbeta_i = 0.1\nt0 = 80\n\
        every = 5\nsamples = 32\n[optim]\nkind = \"adam\"\nlr = 0.005\nsteps = 100\n\
        [record]\nevery = 5\nkl_samples = 64";
    let (b, at) = betas(flow);
    check_path(&b, at, 0.1, 80);
}

#[test]
fn external_targets_train_with_it() {
    // Many Well (an external target: ln π from the batch evaluation), flow and mixture
    let mw = ManyWell::new(4);
    for family in ["realnvp", "gmm"] {
        let toml = format!(
            "seed = 3\n[target]\nd = 4\n[student]\nfamily = \"{family}\"\n\
             [student.realnvp]\nlayers = 2\ndepth = 2\nwidth = 8\neval_samples = 200\n\
             [objective]\nsamples = 16\n[schedule]\nkind = \"adaptive\"\nbeta_i = 0.1\n\
             t0 = 60\nevery = 5\nsamples = 32\n[optim]\nkind = \"adam\"\nlr = 0.005\n\
             steps = 80\n[record]\nevery = 5\nkl_samples = 32"
        );
        let exp = Config::from_toml_str(&toml).unwrap().compile().unwrap();
        let mut rec = (
            (Recorder::default(), FlowRecorder::default()),
            AnnealedAt::default(),
        );
        let run = Trainer::new(&exp)
            .observer(&mut rec)
            .run_on(&mw)
            .ok()
            .unwrap();
        let ((mix, flow), at) = rec;
        let b: Vec<(usize, f64)> = match run {
            AnyRun::Mixture(..) => mix.records.iter().map(|r| (r.step, r.beta)).collect(),
            AnyRun::Flow(..) => flow.records.iter().map(|r| (r.step, r.beta)).collect(),
        };
        assert!(!b.is_empty(), "{family}: no records");
        check_path(&b, at.0, 0.1, 60);
    }
}

/// Mean and standard error of a sample.
fn mean_se(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let m = x.iter().sum::<f64>() / n;
    let v = x.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0);
    (m, (v / n).sqrt())
}

#[test]
fn statistics_engine_log_target_agrees_with_the_vector_engine_in_law() {
    // a 2-component student with means off the target's axis, d = 64
    let d = 64;
    let target = IsotropicMixture::bimodal(d, 2.0, 0.7);
    let mut g = stream(9, 0, Purpose::Init);
    let mean = |g: &mut annealvi::seed::Stream, c: f64| -> Vec<f64> {
        (0..d)
            .map(|i| if i == 0 { c } else { 0.3 * g.r#gen::<f64>() })
            .collect()
    };
    let (m1, m2) = (mean(&mut g, 1.5), mean(&mut g, -0.5));
    let mut q = GmmStudent::new(&[m1, m2], &[1.3, 0.8], &[0.35, 0.65], true);
    let mut s = StatsStudent::from_student(&q, &target);
    let n = 40_000;
    let (mut lv, mut ls) = (Vec::new(), Vec::new());
    Student::log_target_at_samples(
        &mut q,
        &target,
        n,
        &mut stream(1, 1, Purpose::Anneal),
        &mut lv,
    );
    Student::log_target_at_samples(
        &mut s,
        &target,
        n,
        &mut stream(1, 2, Purpose::Anneal),
        &mut ls,
    );
    assert_eq!((lv.len(), ls.len()), (n, n));
    let ((a, sa), (b, sb)) = (mean_se(&lv), mean_se(&ls));
    let z = (a - b) / (sa * sa + sb * sb).sqrt();
    assert!(
        z.abs() < 5.0,
        "mean ln π: vector {a} ± {sa}, statistics {b} ± {sb}"
    );
    // the second moment too (it sets the ESS)
    let sq = |x: &[f64]| x.iter().map(|v| v * v).collect::<Vec<f64>>();
    let ((a2, sa2), (b2, sb2)) = (mean_se(&sq(&lv)), mean_se(&sq(&ls)));
    let z2 = (a2 - b2) / (sa2 * sa2 + sb2 * sb2).sqrt();
    assert!(z2.abs() < 5.0, "mean (ln π)²: vector {a2}, statistics {b2}");
    // the test can fail: a student with another width gives another law
    let mut wide = GmmStudent::new(
        &[q.mean(0).to_vec(), q.mean(1).to_vec()],
        &[1.4, 0.8],
        &[0.35, 0.65],
        true,
    );
    let mut lw = Vec::new();
    Student::log_target_at_samples(
        &mut wide,
        &target,
        n,
        &mut stream(1, 3, Purpose::Anneal),
        &mut lw,
    );
    let (c, sc) = mean_se(&lw);
    assert!(((c - b) / (sc * sc + sb * sb).sqrt()).abs() > 5.0);
}

#[test]
fn sweeps_run_the_adaptive_rule_per_cell_and_record_its_steps() {
    let dir = common::tmp_dir("adaptive", "sweep");
    let cfg = common::TINY.replace(
        "[run.objective]",
        "[run.schedule]\nkind = \"adaptive\"\nrho = 0.3\nevery = 5\nsamples = 32\n[run.objective]",
    );
    let path = dir.join("sweep-config.toml");
    std::fs::write(&path, &cfg).unwrap();
    let sweep = SweepConfig::load(Some(&path), &[]).unwrap();
    let out = dir.join("out");
    common::run_sweep_on(1, &sweep, &SweepOptions::new(&out)).unwrap();
    let text = std::fs::read_to_string(out.join("runs.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 15);
    for l in &lines {
        let t0 = l["t0"].as_f64().unwrap();
        let at = l["anneal_steps"].as_u64().map(|s| s as f64);
        if t0 == 0.0 {
            // the no-annealing cell is β = 1 throughout, not an adaptive schedule
            assert_eq!(at, None, "{l}");
        } else {
            let at = at.unwrap_or_else(|| panic!("no anneal_steps: {l}"));
            assert!(at <= t0, "{l}");
        }
    }
    // a sweep's adaptive section may not set what the grid sets
    let bad = cfg.replace("rho = 0.3", "rho = 0.3\nt0 = 100");
    std::fs::write(&path, &bad).unwrap();
    let e = SweepConfig::load(Some(&path), &[]).unwrap_err().to_string();
    assert!(e.contains("run.schedule") && e.contains("grid.t0"), "{e}");
}

#[test]
fn bad_adaptive_settings_name_the_field_and_the_range() {
    let base = "[schedule]\nkind = \"adaptive\"\n";
    for (set, field, range) in [
        ("rho = 1.0", "schedule.rho", "(0, 1)"),
        ("rho = 0.0", "schedule.rho", "(0, 1)"),
        ("rho = nan", "schedule.rho", "(0, 1)"),
        ("every = 0", "schedule.every", "[1, 1000000]"),
        ("samples = 1", "schedule.samples", "[2, 1000000]"),
        ("t0 = -5", "schedule.t0", "[0, 1e9]"),
        ("beta_i = 0.0", "schedule.beta_i", "(0, 1]"),
        ("hold = -1", "schedule.hold", "[0, 100]"),
        ("hold = 101", "schedule.hold", "[0, 100]"),
        ("hold = nan", "schedule.hold", "[0, 100]"),
    ] {
        let e = Config::from_toml_str(&format!("{base}{set}"))
            .and_then(|c| c.compile())
            .unwrap_err()
            .to_string();
        assert!(e.contains(field) && e.contains(range), "{set}: {e}");
    }
    // the defaults are valid
    Config::from_toml_str(base).unwrap().compile().unwrap();
}

/// The hold rule: with ℓ drawn from one fixed law β advances at every update, as without the
/// rule; when ℓ̄ jumps by many standard errors between two updates, that update holds β; with
/// hold = 0 the rule never holds.
#[test]
fn hold_rule_holds_while_the_mean_log_target_moves() {
    use annealvi::schedule::{Adaptive, Annealer};
    let rule = |hold: f64| Adaptive {
        beta_i: 0.1,
        t_max: 1e6,
        rho: 0.9,
        every: 1,
        samples: 200,
        hold,
    };
    // ℓ_i = shift + 10 N(0, 1) (a fixed seed): the ESS step (≈ 0.03 here, so β stays below 1)
    // is the same for any shift
    let draw = |k: u64, shift: f64| -> Vec<f64> {
        let mut rng = stream(11, k, Purpose::Anneal);
        (0..200)
            .map(|_| shift + 10.0 * rng.sample::<f64, _>(rand_distr::StandardNormal))
            .collect()
    };
    let mut steady = Annealer::adaptive(rule(3.0), stream(1, 0, Purpose::Anneal));
    let mut b_prev = steady.beta(0);
    let mut advanced = 0;
    for k in 1..=5u64 {
        steady.update(k as usize, &draw(k, 0.0));
        let b = steady.beta(k as usize);
        advanced += usize::from(b > b_prev);
        b_prev = b;
    }
    // the first update has nothing to compare with; a stationary ℓ̄ moves by a z-score of
    // about N(0, 1) and rarely above 3
    assert!(advanced >= 4, "advanced at {advanced} of 5 updates");

    for (hold, expect_hold) in [(3.0, true), (0.0, false)] {
        let mut a = Annealer::adaptive(rule(hold), stream(1, 0, Purpose::Anneal));
        a.update(1, &draw(1, 0.0));
        let b1 = a.beta(1);
        // ℓ̄ jumps by 50 (50 standard errors of the difference of two 200-sample means)
        a.update(2, &draw(2, 50.0));
        let b2 = a.beta(2);
        assert_eq!(b2 == b1, expect_hold, "hold = {hold}: β {b1} -> {b2}");
        // steady again at the new level: it advances
        a.update(3, &draw(3, 50.0));
        assert!(a.beta(3) > b2, "hold = {hold}: β held at {b2}");
    }
}
