//! The statistics engine (`student.simulation = "statistics"`) against the d-dimensional vector
//! engine: two-sample Kolmogorov–Smirnov tests on the statistics after T steps (m_1, q_12,
//! σ_1, light-mode mass; 1000 independent runs of each engine), at d = 16 and d = 512,
//! annealed and not, plus a 3-mode target with a trainable-weight STL student. The tests'
//! power is shown by planted errors that they must catch: the orthogonal noise's degrees of
//! freedom off by 2, and the noise scale off by 5%.

use annealvi::config::{Config, NumberOr, ScheduleKind, Simulation, TargetKind};
use annealvi::family::GmmStudent;
use annealvi::metrics::Outcome;
use annealvi::objective::Estimator;
use annealvi::run::Trainer;
use annealvi::seed::{Purpose, stream};
use annealvi::statistics::{PlantedError, StatsStudent};
use annealvi::train::{NoObserver, Observer, RunResult, Student};

/// Run `run` of `cfg` (Gaussian-mixture student), stream indices (run, run).
fn run_config(cfg: &Config, run: u64, observer: &mut dyn Observer) -> (GmmStudent, RunResult) {
    let exp = cfg.compile().unwrap();
    let r = Trainer::new(&exp).index(run).observer(observer).run();
    r.unwrap().into_mixture().unwrap()
}

/// Trains the initialised student `q` with the noise streams of `run`.
fn run_student<S: Student>(
    cfg: &Config,
    q: &mut S,
    run: u64,
    observer: &mut dyn Observer,
) -> RunResult<S::Stats> {
    let exp = cfg.compile().unwrap();
    let r = Trainer::new(&exp).index(run).observer(observer).train(q);
    r.unwrap()
}
use rayon::prelude::*;

const RUNS: u64 = 1000;

/// The four compared statistics of a run.
fn features(r: &RunResult) -> [f64; 4] {
    [
        r.stats.m[0],
        r.stats.q[1],
        r.stats.sigma[0],
        r.light_mode_mass,
    ]
}

const NAMES: [&str; 4] = ["m_1", "q_12", "sigma_1", "light-mode mass"];

fn vector_runs(cfg: &Config) -> Vec<[f64; 4]> {
    (0..RUNS)
        .into_par_iter()
        .map(|s| features(&run_config(cfg, s, &mut NoObserver).1))
        .collect()
}

/// Statistics-engine runs with their own seed (independent of the vector runs), optionally
/// with a planted error.
fn statistics_runs(cfg: &Config, planted: PlantedError) -> Vec<[f64; 4]> {
    let mut c = cfg.clone();
    c.seed = cfg.seed.wrapping_add(0x5eed);
    c.student.simulation = Simulation::Statistics;
    let target = c.build_target();
    let proto = c.init_student_shape();
    let scale = c.init_scale().expect("random initial means");
    (0..RUNS)
        .into_par_iter()
        .map(|s| {
            let mut init = stream(c.seed, s, Purpose::Init);
            let mut q =
                StatsStudent::random(&target, &proto, scale, &mut init).with_planted_error(planted);
            features(&run_student(&c, &mut q, s, &mut NoObserver))
        })
        .collect()
}

/// Asymptotic p-value of the two-sample Kolmogorov–Smirnov statistic (Stephens' correction).
fn ks_p(a: &[f64], b: &[f64]) -> f64 {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let (mut i, mut j, mut dmax) = (0, 0, 0.0f64);
    while i < a.len() && j < b.len() {
        let x = a[i].min(b[j]);
        while i < a.len() && a[i] <= x {
            i += 1;
        }
        while j < b.len() && b[j] <= x {
            j += 1;
        }
        dmax = dmax.max((i as f64 / na - j as f64 / nb).abs());
    }
    let ne = na * nb / (na + nb);
    let lambda = (ne.sqrt() + 0.12 + 0.11 / ne.sqrt()) * dmax;
    let mut p = 0.0;
    for k in 1..=100 {
        let kf = k as f64;
        let t = 2.0 * (-1f64).powi(k - 1) * (-2.0 * kf * kf * lambda * lambda).exp();
        p += t;
        if t.abs() < 1e-12 {
            break;
        }
    }
    p.clamp(0.0, 1.0)
}

/// p-values of the four statistics.
fn compare(label: &str, x: &[[f64; 4]], y: &[[f64; 4]]) -> [f64; 4] {
    let ps = std::array::from_fn(|f| {
        let a: Vec<f64> = x.iter().map(|r| r[f]).collect();
        let b: Vec<f64> = y.iter().map(|r| r[f]).collect();
        ks_p(&a, &b)
    });
    eprintln!(
        "{label}: {}",
        (0..4)
            .map(|f| format!("{} p = {:.3e}", NAMES[f], ps[f]))
            .collect::<Vec<_>>()
            .join(", ")
    );
    ps
}

/// The engines agree: every p-value above 1e-3 (20 comparisons in this file: a false alarm
/// has probability ≈ 2% for a correct engine, and the seeds are fixed, so the outcome is
/// reproducible).
fn assert_same_law(label: &str, ps: [f64; 4]) {
    for (f, p) in ps.iter().enumerate() {
        assert!(
            *p > 1e-3,
            "{label}: {} differs between engines (KS p = {p:.2e})",
            NAMES[f]
        );
    }
}

/// A planted error is caught: some statistic's p-value below 1e-6.
fn assert_caught(label: &str, ps: [f64; 4]) {
    let min = ps.iter().cloned().fold(1.0, f64::min);
    assert!(
        min < 1e-6,
        "{label}: planted error not detected (min KS p = {min:.2e})"
    );
}

fn plain(d: usize) -> Config {
    let mut c = Config {
        seed: 11,
        ..Config::default()
    };
    c.target.d = d;
    c.optim.steps = 60;
    c.record.every = 0;
    c
}

fn annealed(d: usize) -> Config {
    let mut c = plain(d);
    c.schedule.kind = ScheduleKind::Exponential;
    c.schedule.beta_i = 0.05;
    c.schedule.t0 = 80.0;
    c.student.sigma0 = NumberOr::Name("schedule".into());
    c.optim.steps = 100;
    c
}

#[test]
fn d16_unannealed_same_law_and_planted_wishart_df_caught() {
    let cfg = plain(16);
    let v = vector_runs(&cfg);
    let s = statistics_runs(&cfg, PlantedError::default());
    assert_same_law("d=16 beta=1", compare("d=16 beta=1", &v, &s));
    let bad = statistics_runs(
        &cfg,
        PlantedError {
            wishart_df_shift: 2,
            noise_scale: 1.0,
        },
    );
    assert_caught("d=16 df+2", compare("d=16 planted df+2", &v, &bad));
}

#[test]
fn d512_unannealed_same_law_and_planted_noise_scale_caught() {
    let cfg = plain(512);
    let v = vector_runs(&cfg);
    let s = statistics_runs(&cfg, PlantedError::default());
    assert_same_law("d=512 beta=1", compare("d=512 beta=1", &v, &s));
    let bad = statistics_runs(
        &cfg,
        PlantedError {
            wishart_df_shift: 0,
            noise_scale: 1.05,
        },
    );
    assert_caught(
        "d=512 noise x1.05",
        compare("d=512 planted noise x1.05", &v, &bad),
    );
}

#[test]
fn d16_and_d512_annealed_same_law() {
    for d in [16, 512] {
        let cfg = annealed(d);
        let label = format!("d={d} annealed");
        let v = vector_runs(&cfg);
        let s = statistics_runs(&cfg, PlantedError::default());
        assert_same_law(&label, compare(&label, &v, &s));
        if d == 16 {
            let bad = statistics_runs(
                &cfg,
                PlantedError {
                    wishart_df_shift: 2,
                    noise_scale: 1.0,
                },
            );
            assert_caught(
                "d=16 annealed df+2",
                compare("d=16 annealed df+2", &v, &bad),
            );
        }
    }
}

/// A 3-mode isotropic target, a 3-component STL student with trainable weights, d = 16.
#[test]
fn three_modes_trainable_weights_stl_same_law() {
    let mut cfg = plain(16);
    cfg.target.kind = TargetKind::Mixture;
    cfg.target.means = vec![vec![3.0, 0.0], vec![-1.5, 2.6], vec![-1.5, -2.6]];
    cfg.target.weights = vec![0.5, 0.3, 0.2];
    cfg.target.variances = vec![1.0, 0.8, 1.2];
    cfg.student.components = 3;
    cfg.student.trainable_weights = true;
    cfg.objective.estimator = Estimator::Stl;
    let v = vector_runs(&cfg);
    let s = statistics_runs(&cfg, PlantedError::default());
    assert_same_law("3 modes", compare("3 modes, K=3, STL, trainable w", &v, &s));
}

/// Same configuration and seed → the same numbers, whatever the thread count; explicit
/// initial means are accepted; the frame has dimension min(d, a + K).
#[test]
fn statistics_engine_is_deterministic_and_accepts_explicit_means() {
    let mut cfg = plain(64);
    cfg.student.simulation = Simulation::Statistics;
    let a = run_config(&cfg, 3, &mut NoObserver).1;
    let b = std::thread::spawn({
        let cfg = cfg.clone();
        move || run_config(&cfg, 3, &mut NoObserver).1
    })
    .join()
    .unwrap();
    assert_eq!(a, b);
    cfg.student.means = vec![vec![0.5, 1.0, 0.0, 2.0], vec![-0.5]];
    let r = run_config(&cfg, 0, &mut NoObserver).1;
    assert!(r.stats.m.iter().all(|m| m.is_finite()));
    let q = cfg.init_student(&mut stream(0, 0, Purpose::Init));
    let s = StatsStudent::from_student(&q, &cfg.build_target());
    assert_eq!(s.frame_dim(), 3);
    let st = s.stats();
    let want = q.stats(cfg.build_target().axis());
    for (x, y) in st.q.iter().zip(&want.q) {
        assert!((x - y).abs() < 1e-12, "{x} vs {y}");
    }
    assert_eq!(st.m, want.m);
}

/// d smaller than the frame: every direction is in the frame, no orthogonal noise.
#[test]
fn tiny_dimension_is_exact_without_orthogonal_noise() {
    let cfg = plain(2);
    let v = vector_runs(&cfg);
    let s = statistics_runs(&cfg, PlantedError::default());
    assert_same_law("d=2", compare("d=2", &v, &s));
}

/// P(collapse) of both engines on the quick Figure 2 grid (26 cells × 20 seeds): within 2
/// binomial standard errors of their difference (pooled p) in every cell. About 2 minutes in
/// a release build on 2 cores, so not in the default suite:
/// `cargo test --release --test statistics_engine -- --ignored`.
#[test]
#[ignore]
fn quick_grid_collapse_probabilities_agree() {
    use annealvi::sweep::{SweepConfig, aggregate};
    let text = include_str!("../configs/fig2-quick.toml");
    let vector: SweepConfig = toml::from_str(text).unwrap();
    let mut stats = vector.clone();
    stats.run.student.simulation = Simulation::Statistics;
    let run_all = |cfg: &SweepConfig| {
        let cells = cfg.cells();
        let lines: Vec<_> = cfg
            .runs()
            .into_par_iter()
            .map(|spec| cfg.run_one(spec, &cells))
            .collect();
        aggregate(&lines)
    };
    let (v, s) = (run_all(&vector), run_all(&stats));
    assert_eq!(v.len(), s.len());
    let mut worst: f64 = 0.0;
    for (a, b) in v.iter().zip(&s) {
        assert_eq!(a.cell, b.cell);
        let (pa, pb) = (a.p_collapse(), b.p_collapse());
        let pool = (a.collapsed + b.collapsed) as f64 / (a.n + b.n) as f64;
        let se = (pool * (1.0 - pool) * (1.0 / a.n as f64 + 1.0 / b.n as f64)).sqrt();
        let z = if se > 0.0 { (pa - pb).abs() / se } else { 0.0 };
        worst = worst.max(z);
        eprintln!(
            "beta_i = {:.4}, t0 = {:>5}: vector {pa:.2}, statistics {pb:.2} ({z:.2} SE)",
            a.cell.beta_i, a.cell.t0
        );
        assert!(
            (pa - pb).abs() <= 2.0 * se + 1e-12,
            "cell {:?}: vector {pa} vs statistics {pb} (SE {se:.3})",
            a.cell
        );
    }
    eprintln!("largest gap: {worst:.2} SE");
}

/// The paper's case (K = J = 2, p = 3) has a pass of its own with its sums in registers and
/// the loss's logarithms skipped on steps that record nothing; it must give the general
/// pass's numbers bit for bit: records (losses of recorded steps included) and results,
/// for both estimators, fixed and trainable weights, annealed and not.
#[test]
fn bimodal_pass_equals_general_pass_bit_for_bit() {
    use annealvi::train::Recorder;
    for (d, est, trainable, anneal) in [
        (16, Estimator::Full, false, false),
        (512, Estimator::Full, false, true),
        (64, Estimator::Stl, false, true),
        (64, Estimator::Full, true, false),
        (8, Estimator::Stl, true, true),
    ] {
        let mut cfg = if anneal { annealed(d) } else { plain(d) };
        cfg.record.every = 7;
        cfg.objective.estimator = est;
        cfg.student.trainable_weights = trainable;
        cfg.student.simulation = Simulation::Statistics;
        let target = cfg.build_target();
        let proto = cfg.init_student_shape();
        let scale = cfg.init_scale().expect("random initial means");
        for run in 0..4 {
            let q0 =
                StatsStudent::random(&target, &proto, scale, &mut stream(5, run, Purpose::Init));
            assert_eq!(q0.frame_dim(), 3);
            let (mut fast, mut general) = (q0.clone(), q0.with_general_pass());
            let (mut rf, mut rg) = (Recorder::default(), Recorder::default());
            let a = run_student(&cfg, &mut fast, run, &mut rf);
            let b = run_student(&cfg, &mut general, run, &mut rg);
            let label = format!("d={d} {est:?} trainable={trainable} annealed={anneal} run {run}");
            assert_eq!(a, b, "{label}");
            assert!(!rf.records.is_empty());
            assert_eq!(rf.records.len(), rg.records.len(), "{label}");
            for (x, y) in rf.records.iter().zip(&rg.records) {
                assert_eq!(
                    x.loss.to_bits(),
                    y.loss.to_bits(),
                    "{label}: step {}",
                    x.step
                );
                assert_eq!(x.stats, y.stats, "{label}: step {}", x.step);
            }
        }
    }
    // a run that diverges stops at the same step on both passes (the skipped logarithms'
    // finiteness check)
    let mut cfg = plain(64);
    cfg.student.simulation = Simulation::Statistics;
    cfg.optim.lr = 40.0;
    cfg.optim.steps = 400;
    let target = cfg.build_target();
    let q0 = StatsStudent::random(
        &target,
        &cfg.init_student_shape(),
        cfg.init_scale().unwrap(),
        &mut stream(5, 0, Purpose::Init),
    );
    let a = run_student(&cfg, &mut q0.clone(), 0, &mut NoObserver);
    let b = run_student(&cfg, &mut q0.with_general_pass(), 0, &mut NoObserver);
    assert!(
        matches!(a.outcome, Outcome::Diverged { .. }),
        "lr = 40 should diverge: {a:?}"
    );
    // (NaN fields: compare the printed forms)
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}
