//! The summary-statistics ODE: its right-hand side is the projected exact gradient, its
//! solution follows exact-gradient descent to O(η), and the quasi-static limit is the limit of
//! fast variances.

use annealvi::config::{Config, NumberOr, ScheduleKind};
use annealvi::family::{GmmStudent, VariationalFamily, fill_standard_normal};
use annealvi::objective::{Estimator, ExactObjective};
use annealvi::schedule::Exponential;
use annealvi::seed::{Purpose, stream};
use annealvi::target::IsotropicMixture;
use annealvi::theory::{DIM, Dynamics, Tolerance, integrate, state_from_stats, to_vec};
use annealvi::train::{Recorder, run_config};

fn dynamics<'a>(
    d: usize,
    schedule: &'a Exponential,
    lr: f64,
    c_sigma: f64,
    c_w: f64,
    quasi: bool,
) -> Dynamics<'a> {
    let t = IsotropicMixture::bimodal(d, 3.0, 0.8);
    Dynamics {
        exact: ExactObjective::new(d),
        target: *t.as_bimodal().unwrap(),
        schedule,
        lr,
        sigma_rate: c_sigma / d as f64,
        logit_rate: c_w,
        quasi_static: quasi,
    }
}

#[test]
fn rhs_equals_the_projected_exact_gradient() {
    let d = 512;
    let target = IsotropicMixture::bimodal(d, 3.0, 0.8);
    let ex = ExactObjective::new(d);
    for seed in 0..4u64 {
        let mut rng = stream(seed, 0, Purpose::Init);
        let mut m1 = vec![0.0; d];
        let mut m2 = vec![0.0; d];
        fill_standard_normal(&mut rng, &mut m1);
        fill_standard_normal(&mut rng, &mut m2);
        let sc = 0.1 + 0.3 * seed as f64;
        m1.iter_mut().for_each(|v| *v *= sc);
        m2.iter_mut().for_each(|v| *v *= sc);
        m1[0] += 0.5;
        let q = GmmStudent::new(
            &[m1, m2],
            &[1.3, 1.1 + 0.1 * seed as f64],
            &[0.6, 0.4],
            true,
        );
        let beta = 0.2 + 0.2 * seed as f64;
        let sched = Exponential {
            beta_i: beta,
            t0: 1e12,
        }; // β ≈ constant over the check
        let dy = dynamics(d, &sched, 0.05, 10.0, 1.0, false);
        let st = ExactObjective::reduce(&q, target.axis()).unwrap();
        let got = dy.rhs(0.0, &to_vec(&st));
        // projection of the full-d flow
        let g = ex.evaluate(&q, &target, beta).unwrap().grad;
        let dmu: Vec<Vec<f64>> = (0..2)
            .map(|k| g[k * d..(k + 1) * d].iter().map(|v| -v).collect())
            .collect();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let (mu1, mu2) = (q.mean(0), q.mean(1));
        let kappa = 10.0 / d as f64;
        let w1 = st.w1;
        let da1 = -g[q.logit_offset()];
        let da2 = -g[q.logit_offset() + 1];
        let want: [f64; DIM] = [
            dmu[0][0],
            dmu[1][0],
            2.0 * dot(&dmu[0], mu1),
            dot(&dmu[0], mu2) + dot(mu1, &dmu[1]),
            2.0 * dot(&dmu[1], mu2),
            -kappa * q.sigma(0) * g[q.log_sigma_offset()],
            -kappa * q.sigma(1) * g[q.log_sigma_offset() + 1],
            w1 * (1.0 - w1) * (da1 - da2),
        ];
        for i in 0..DIM {
            assert!(
                (got[i] - want[i]).abs() <= 1e-8 * want[i].abs().max(1.0),
                "seed {seed}, component {i}: ODE {} vs projected gradient {}",
                got[i],
                want[i]
            );
        }
        assert_eq!(q.params().len(), 2 * d + 4);
    }
}

/// Exact-gradient descent at d = 512 for a fixed horizon τ = η T, with η and η/2.
fn descent_error(lr: f64) -> f64 {
    let tau_end = 12.0;
    let mut c = Config::default();
    c.target.d = 512;
    c.objective.estimator = Estimator::Exact;
    c.optim.lr = lr;
    c.optim.steps = (tau_end / lr).round() as usize;
    c.schedule.kind = ScheduleKind::Exponential;
    c.schedule.beta_i = 0.1;
    c.schedule.t0 = (8.0 / lr).round();
    c.student.sigma0 = NumberOr::Name("schedule".into());
    c.student.init_mean_scale = NumberOr::Name("inv_sqrt_d".into());
    c.record.every = c.optim.steps;
    let mut rec = Recorder::default();
    run_config(&c, 3, &mut rec);
    let first = &rec.records[0].stats;
    let last = &rec.records.last().unwrap().stats;
    let sched = Exponential {
        beta_i: 0.1,
        t0: c.schedule.t0,
    };
    let dy = dynamics(512, &sched, lr, 10.0, 0.0, false); // fixed weights, as in the descent
    let x0 = state_from_stats(first);
    let x = integrate(&dy, 0.0, x0, &[tau_end], Tolerance::default()).unwrap()[0];
    let sgd = state_from_stats(last);
    (0..7).map(|i| (x[i] - sgd[i]).abs()).fold(0.0, f64::max)
}

#[test]
fn ode_matches_exact_gradient_descent_to_order_eta() {
    let e1 = descent_error(0.05);
    let e2 = descent_error(0.025);
    assert!(e1 < 0.1, "error at eta = 0.05: {e1}");
    let ratio = e1 / e2;
    assert!(
        (1.5..3.0).contains(&ratio),
        "errors {e1} (eta = 0.05) and {e2} (eta = 0.025): ratio {ratio}, expected ~2"
    );
}

#[test]
fn quasi_static_is_the_fast_variance_limit() {
    let sched = Exponential {
        beta_i: 0.05,
        t0: 200.0,
    };
    let x0 = [0.4, -0.1, 0.3, 0.05, 0.2, 2.0, 2.5, 0.5];
    let at = [6.0];
    let qs = integrate(
        &dynamics(512, &sched, 0.05, 10.0, 0.0, true),
        0.0,
        x0,
        &at,
        Tolerance::default(),
    )
    .unwrap()[0];
    let mut errs = Vec::new();
    for c_sigma in [5.0, 20.0, 80.0] {
        let full = integrate(
            &dynamics(512, &sched, 0.05, c_sigma, 0.0, false),
            0.0,
            x0,
            &at,
            Tolerance::default(),
        )
        .unwrap()[0];
        errs.push((0..5).map(|i| (full[i] - qs[i]).abs()).fold(0.0, f64::max));
    }
    assert!(
        errs[1] < 0.6 * errs[0] && errs[2] < 0.6 * errs[1],
        "differences from quasi-static: {errs:?}"
    );
}

/// ODE Monte Carlo (quasi-static, perfect gradients) from the sweep's own initial means
/// predicts SGD's collapse probability: within 2 binomial standard errors on every cell of a
/// small grid (d = 64, 16 seeds).
#[test]
fn ode_monte_carlo_agrees_with_sgd_sweep() {
    use annealvi::sweep::{SweepConfig, SweepOptions, read_runs, run_sweep, theory_grid};
    let cfg: SweepConfig = toml::from_str(
        r#"
[grid]
beta_i = [0.02, 0.2]
t0 = [100, 2000]
no_annealing = true
seeds = 16
extra_steps = 400
[run]
seed = 11
[run.target]
d = 64
[run.student]
sigma0 = "schedule"
"#,
    )
    .unwrap();
    cfg.validate().unwrap();
    let dir = std::env::temp_dir().join(format!("annealvi-theory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = SweepOptions {
        out: dir.clone(),
        resume: false,
        shard: None,
        threads: 2,
        max_runs: None,
    };
    run_sweep(&cfg, &opts).unwrap();
    let sgd = annealvi::sweep::aggregate(&read_runs(&dir.join("runs.jsonl"), false).unwrap());
    let ode = theory_grid(&cfg, 16, 2).unwrap();
    assert_eq!(sgd.len(), ode.len());
    let mut any_collapse = false;
    for o in &ode {
        let s = sgd.iter().find(|s| s.cell == o.cell).unwrap();
        assert_eq!(o.failed, 0);
        let (ps, po) = (s.p_collapse(), o.collapsed as f64 / o.n as f64);
        let p = 0.5 * (ps + po);
        let se = (p * (1.0 - p) * 2.0 / 16.0).sqrt().max(1.0 / 16.0);
        assert!(
            (ps - po).abs() <= 2.0 * se,
            "cell {:?}: SGD {ps} vs ODE {po}",
            o.cell
        );
        any_collapse |= o.collapsed > 0;
    }
    assert!(any_collapse, "the grid should contain collapsing cells");
    let _ = std::fs::remove_dir_all(dir);
}
