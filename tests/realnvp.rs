//! RealNVP flow: log-determinant, inverse, normalisation and gradients (full and STL) against
//! finite differences, in f64.

#![allow(clippy::needless_range_loop)]

use annealvi::family::realnvp::{Activation, FlowArch, MaskKind, Precision, RealNvp};
use annealvi::family::{VariationalFamily, fill_standard_normal};
use annealvi::objective::Estimator;
use annealvi::target::IsotropicMixture;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

fn arch(d: usize, layers: usize, mask: MaskKind, act: Activation) -> FlowArch {
    FlowArch {
        d,
        layers,
        depth: 3,
        width: 7,
        activation: act,
        mask,
        scale_bound: 1.5,
        sigma0: 1.3,
        last_init: 1.0,
        ..FlowArch::default()
    }
}

fn flow(a: FlowArch, seed: u64) -> RealNvp {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    RealNvp::new(a, Precision::F64, &mut rng).unwrap()
}

fn noise(n: usize, d: usize, seed: u64) -> Vec<f64> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut e = vec![0.0; n * d];
    fill_standard_normal(&mut rng, &mut e);
    e
}

/// ln|det M| by Gaussian elimination with partial pivoting.
fn log_abs_det(mut m: Vec<Vec<f64>>) -> f64 {
    let n = m.len();
    let mut s = 0.0;
    for c in 0..n {
        let p = (c..n)
            .max_by(|&a, &b| m[a][c].abs().total_cmp(&m[b][c].abs()))
            .unwrap();
        m.swap(c, p);
        let piv = m[c][c];
        s += piv.abs().ln();
        for r in c + 1..n {
            let f = m[r][c] / piv;
            for k in c..n {
                m[r][k] -= f * m[c][k];
            }
        }
    }
    s
}

#[test]
fn log_det_matches_finite_difference_jacobian_at_d6() {
    for mask in [MaskKind::Halves, MaskKind::Checkerboard] {
        for layers in [1, 4] {
            let a = arch(6, layers, mask, Activation::Tanh);
            let (d, s0) = (a.d, a.sigma0);
            let mut q = flow(a, 11);
            let eps = noise(1, d, 5);
            let mut x = vec![0.0; d];
            let mut lq = [0.0];
            q.push_forward(&eps, &mut x, &mut lq);
            // logdet = ln N(z) − ln q(x), z = σ0 ε
            let z2: f64 = eps.iter().map(|e| s0 * s0 * e * e).sum();
            let ln_n = -0.5 * d as f64 * (2.0 * std::f64::consts::PI * s0 * s0).ln()
                - 0.5 * z2 / (s0 * s0);
            let logdet = ln_n - lq[0];
            // Jacobian ∂x/∂z by central differences in z = σ0 ε
            let h = 1e-5;
            let mut jac = vec![vec![0.0; d]; d];
            for i in 0..d {
                let mut col = [vec![0.0; d], vec![0.0; d]];
                for (k, sgn) in [1.0, -1.0].into_iter().enumerate() {
                    let mut e2 = eps.clone();
                    e2[i] += sgn * h / s0;
                    q.push_forward(&e2, &mut col[k], &mut [0.0]);
                }
                for r in 0..d {
                    jac[r][i] = (col[0][r] - col[1][r]) / (2.0 * h);
                }
            }
            let fd = log_abs_det(jac);
            assert!(
                (fd - logdet).abs() < 1e-7,
                "{mask:?} L={layers}: fd {fd} vs exact {logdet}"
            );
            assert!(
                logdet.abs() > 1e-2,
                "the test flow should not be volume-preserving"
            );
        }
    }
}

#[test]
fn inverse_inverts_and_log_q_agrees() {
    for mask in [MaskKind::Halves, MaskKind::Checkerboard] {
        let a = arch(5, 6, mask, Activation::Relu);
        let (d, s0) = (a.d, a.sigma0);
        let mut q = flow(a, 3);
        let n = 9;
        let eps = noise(n, d, 8);
        let mut x = vec![0.0; n * d];
        let mut lq = vec![0.0; n];
        q.push_forward(&eps, &mut x, &mut lq);
        let mut z = vec![0.0; n * d];
        let mut lq2 = vec![0.0; n];
        q.inverse(&x, &mut z, &mut lq2);
        for (zi, ei) in z.iter().zip(&eps) {
            assert!((zi - s0 * ei).abs() < 1e-11, "{zi} vs {}", s0 * ei);
        }
        for (a, b) in lq.iter().zip(&lq2) {
            assert!((a - b).abs() < 1e-10, "{a} vs {b}");
        }
        // the trait's single-point versions agree
        assert!((q.log_density(&x[..d]) - lq[0]).abs() < 1e-10);
    }
}

#[test]
fn identity_initialisation_is_the_base_gaussian() {
    let mut a = arch(4, 3, MaskKind::Halves, Activation::Relu);
    a.last_init = 0.0;
    a.sigma0 = 2.0;
    let q = flow(a, 1);
    let x = [0.3, -1.0, 2.0, 0.5];
    let n2: f64 = x.iter().map(|v| v * v).sum();
    let want = -2.0 * (2.0 * std::f64::consts::PI * 4.0).ln() - n2 / 8.0;
    assert!((q.log_density(&x) - want).abs() < 1e-13);
}

#[test]
fn density_integrates_to_one_in_two_dimensions() {
    let a = arch(2, 4, MaskKind::Halves, Activation::Tanh);
    let mut q = flow(a, 21);
    // midpoint rule on [−L, L]² (the flow moves mass by O(1); tails beyond 12 are negligible)
    let (n, l) = (400usize, 12.0);
    let h = 2.0 * l / n as f64;
    let mut xs = Vec::with_capacity(n * n * 2);
    for i in 0..n {
        for j in 0..n {
            xs.push(-l + (i as f64 + 0.5) * h);
            xs.push(-l + (j as f64 + 0.5) * h);
        }
    }
    let mut z = vec![0.0; xs.len()];
    let mut lq = vec![0.0; n * n];
    q.inverse(&xs, &mut z, &mut lq);
    let total: f64 = lq.iter().map(|v| v.exp()).sum::<f64>() * h * h;
    assert!((total - 1.0).abs() < 1e-3, "∫q = {total}");
}

fn target(d: usize) -> IsotropicMixture {
    IsotropicMixture::bimodal(d, 2.0, 0.7)
}

fn loss(q: &mut RealNvp, t: &IsotropicMixture, beta: f64, eps: &[f64]) -> f64 {
    let mut g = vec![0.0; q.params().len()];
    q.loss_and_grad_from_noise(t, beta, Estimator::Full, eps, &mut g)
}

#[test]
fn full_gradient_matches_finite_differences() {
    for (mask, act) in [
        (MaskKind::Halves, Activation::Tanh),
        (MaskKind::Checkerboard, Activation::Relu),
    ] {
        let a = arch(5, 3, mask, act);
        let d = a.d;
        let mut q = flow(a, 7);
        let t = target(d);
        let beta = 0.6;
        let eps = noise(6, d, 2);
        let mut g = vec![0.0; q.params().len()];
        let l0 = q.loss_and_grad_from_noise(&t, beta, Estimator::Full, &eps, &mut g);
        assert!(l0.is_finite());
        let h = 1e-6;
        let mut worst: f64 = 0.0;
        for i in 0..q.params().len() {
            let orig = q.params()[i];
            q.params_mut()[i] = orig + h;
            let lp = loss(&mut q, &t, beta, &eps);
            q.params_mut()[i] = orig - h;
            let lm = loss(&mut q, &t, beta, &eps);
            q.params_mut()[i] = orig;
            let fd = (lp - lm) / (2.0 * h);
            let err = (fd - g[i]).abs() / (1.0 + fd.abs());
            worst = worst.max(err);
            assert!(err < 1e-6, "{mask:?} θ[{i}]: fd {fd} vs {}", g[i]);
        }
        assert!(worst < 1e-6);
        assert!(g.iter().any(|v| v.abs() > 1e-3));
    }
}

#[test]
fn stl_gradient_is_full_minus_the_score_term() {
    // ∇^full − ∇^STL = (1/B) Σ_b ∂_θ ln q_θ(x_b) at fixed x_b
    for mask in [MaskKind::Halves, MaskKind::Checkerboard] {
        let a = arch(5, 3, mask, Activation::Tanh);
        let d = a.d;
        let mut q = flow(a, 9);
        let t = target(d);
        let n = 5;
        let eps = noise(n, d, 4);
        let p = q.params().len();
        let (mut gf, mut gs) = (vec![0.0; p], vec![0.0; p]);
        q.loss_and_grad_from_noise(&t, 0.8, Estimator::Full, &eps, &mut gf);
        q.loss_and_grad_from_noise(&t, 0.8, Estimator::Stl, &eps, &mut gs);
        let mut x = vec![0.0; n * d];
        q.push_forward(&eps, &mut x, &mut vec![0.0; n]);
        let mean_lq = |q: &mut RealNvp| {
            let mut lq = vec![0.0; n];
            q.inverse(&x, &mut vec![0.0; n * d], &mut lq);
            lq.iter().sum::<f64>() / n as f64
        };
        let h = 1e-6;
        for i in 0..p {
            let orig = q.params()[i];
            q.params_mut()[i] = orig + h;
            let lp = mean_lq(&mut q);
            q.params_mut()[i] = orig - h;
            let lm = mean_lq(&mut q);
            q.params_mut()[i] = orig;
            let fd = (lp - lm) / (2.0 * h);
            let diff = gf[i] - gs[i];
            assert!(
                (fd - diff).abs() < 1e-6 * (1.0 + fd.abs()),
                "{mask:?} θ[{i}]: score fd {fd} vs full−stl {diff}"
            );
        }
    }
}

#[test]
fn stl_and_full_have_the_same_expectation() {
    let a = arch(4, 2, MaskKind::Halves, Activation::Tanh);
    let d = a.d;
    let mut q = flow(a, 13);
    let t = target(d);
    let p = q.params().len();
    let (mut gf, mut gs) = (vec![0.0; p], vec![0.0; p]);
    let reps = 3000;
    let mut sum = vec![0.0; p];
    let mut sum2 = vec![0.0; p];
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(99);
    let mut eps = vec![0.0; 4 * d];
    for _ in 0..reps {
        fill_standard_normal(&mut rng, &mut eps);
        q.loss_and_grad_from_noise(&t, 1.0, Estimator::Full, &eps, &mut gf);
        q.loss_and_grad_from_noise(&t, 1.0, Estimator::Stl, &eps, &mut gs);
        for i in 0..p {
            let v = gf[i] - gs[i];
            sum[i] += v;
            sum2[i] += v * v;
        }
    }
    // each coordinate's mean difference within 4.5 standard errors (p ≈ 7e-6 per coordinate);
    // and the differences are not trivially zero
    let mut nonzero = 0;
    for i in 0..p {
        let m = sum[i] / reps as f64;
        let var = (sum2[i] / reps as f64 - m * m).max(0.0);
        let se = (var / reps as f64).sqrt();
        if se > 1e-8 {
            nonzero += 1;
        }
        assert!(m.abs() <= 4.5 * se + 1e-12, "θ[{i}]: mean {m}, se {se}");
    }
    assert!(nonzero > p / 2);
}

#[test]
fn f32_and_f64_agree() {
    let a = arch(6, 4, MaskKind::Checkerboard, Activation::Relu);
    let d = a.d;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let mut q64 = RealNvp::new(a.clone(), Precision::F64, &mut rng).unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let mut q32 = RealNvp::new(a, Precision::F32, &mut rng).unwrap();
    assert_eq!(q64.params(), q32.params());
    let t = target(d);
    let eps = noise(16, d, 1);
    let p = q64.params().len();
    let (mut g64, mut g32) = (vec![0.0; p], vec![0.0; p]);
    for est in [Estimator::Full, Estimator::Stl] {
        let l64 = q64.loss_and_grad_from_noise(&t, 1.0, est, &eps, &mut g64);
        let l32 = q32.loss_and_grad_from_noise(&t, 1.0, est, &eps, &mut g32);
        assert!((l64 - l32).abs() < 1e-4 * (1.0 + l64.abs()), "{l64} {l32}");
        let norm: f64 = g64.iter().map(|v| v * v).sum::<f64>().sqrt();
        let err: f64 = g64
            .iter()
            .zip(&g32)
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>()
            .sqrt();
        assert!(err < 1e-4 * norm, "{est:?}: {err} vs {norm}");
    }
}

#[test]
fn flow_runs_through_the_shared_loop_reproducibly() {
    use annealvi::config::Config;
    use annealvi::run::Trainer;
    use annealvi::train::FlowRecorder;
    let cfg = Config::from_toml_str(
        "[target]\nd = 4\n[student]\nfamily = \"realnvp\"\n[student.realnvp]\nlayers = 2\n\
         depth = 2\nwidth = 8\neval_samples = 500\n[objective]\nsamples = 16\nestimator = \"stl\"\n\
         [optim]\nkind = \"adam\"\nlr = 0.01\nsteps = 30\nmax_grad_norm = 10.0\n\
         [record]\nevery = 10\nkl_samples = 100\n",
    )
    .unwrap();
    let exp = cfg.compile().unwrap();
    let mut rec = FlowRecorder::default();
    let run = |t: Trainer| t.streams(1, 2).run().unwrap().into_flow().unwrap().1;
    let a = run(Trainer::new(&exp).observer(&mut rec));
    let b = run(Trainer::new(&exp).observer(&mut FlowRecorder::default()));
    assert_eq!(a, b);
    assert_eq!(rec.records.len(), 4);
    assert!(rec.other_records == 0 && rec.marginals.is_empty());
    let s = &a.stats;
    assert_eq!(s.samples, 500);
    assert!(s.kl.is_finite() && s.ess_fraction > 0.0 && s.ess_fraction <= 1.0);
    assert!((s.mode_masses.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    assert!((s.mode_weight_error - (s.light_mode_mass - 0.2).abs()).abs() < 1e-12);
    assert_eq!(a.final_step, 30);
}

#[test]
fn fused_training_step_equals_the_plain_loop_bit_for_bit() {
    // the training loop (f32 passes: gradient kept in the engine, Adam fused with the rounding
    // of θ and the checks) against a plain loop of loss_and_grad + Optimizer::step
    use annealvi::config::Config;
    use annealvi::run::Trainer;
    use annealvi::seed::{Purpose, stream};
    use annealvi::train::NoObserver;
    for est in ["full", "stl"] {
        let cfg = Config::from_toml_str(&format!(
            "[target]\nd = 6\ndirection = \"diagonal\"\n[student]\nfamily = \"realnvp\"\n\
             [student.realnvp]\nlayers = 3\ndepth = 3\nwidth = 16\nlast_init = 0.5\n\
             [objective]\nsamples = 32\nestimator = \"{est}\"\n[optim]\nkind = \"adam\"\n\
             lr = 0.01\nsteps = 25\nmax_grad_norm = 2.0\n"
        ))
        .unwrap();
        let exp = cfg.compile().unwrap();
        let (fused, _) = Trainer::new(&exp)
            .streams(3, 4)
            .observer(&mut NoObserver)
            .run()
            .unwrap()
            .into_flow()
            .unwrap();
        let target = cfg.build_target();
        let mut init = stream(cfg.seed, 3, Purpose::Init);
        let mut q = cfg.init_flow(&mut init).unwrap();
        let mut opt = cfg.build_optimizer();
        let mut rng = stream(cfg.seed, 4, Purpose::Sgd);
        let groups = q.groups();
        let (mut eps, mut grad) = (Vec::new(), vec![0.0; q.params().len()]);
        let e = if est == "stl" {
            Estimator::Stl
        } else {
            Estimator::Full
        };
        for _ in 0..25 {
            q.loss_and_grad(&target, 1.0, e, 32, &mut rng, &mut eps, &mut grad);
            opt.step(q.params_mut(), &grad, &groups);
        }
        assert_eq!(fused.precision(), Precision::F32);
        for (i, (a, b)) in fused.params().iter().zip(q.params()).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{est}: parameter {i}: {a} vs {b}");
        }
    }
}

/// The built-in mixture evaluated row by row as a caller's batch target.
fn batch_of(t: &IsotropicMixture, x: &[f64], lp: &mut [f64], g: &mut [f64]) {
    use annealvi::target::LogDensity;
    let d = t.dim();
    for (b, l) in lp.iter_mut().enumerate() {
        *l = t.grad_log_density(&x[b * d..(b + 1) * d], &mut g[b * d..(b + 1) * d]);
    }
}

#[test]
fn batch_target_hook_reproduces_the_builtin_pass() {
    let t = target(5);
    for precision in [Precision::F32, Precision::F64] {
        for est in [Estimator::Full, Estimator::Stl] {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
            let mut q = RealNvp::new(
                arch(5, 3, MaskKind::Halves, Activation::Relu),
                precision,
                &mut rng,
            )
            .unwrap();
            let mut q2 = q.clone();
            let n = q.params().len();
            let (mut g1, mut g2) = (vec![0.0; n], vec![0.0; n]);
            let (mut e1, mut e2) = (Vec::new(), Vec::new());
            let mut r1 = Xoshiro256PlusPlus::seed_from_u64(9);
            let mut r2 = r1.clone();
            let l1 = q.loss_and_grad(&t, 0.4, est, 24, &mut r1, &mut e1, &mut g1);
            let mut calls = 0;
            let mut hook = |x: &[f64], lp: &mut [f64], g: &mut [f64]| -> Result<(), String> {
                calls += 1;
                assert_eq!((x.len(), lp.len(), g.len()), (24 * 5, 24, 24 * 5));
                batch_of(&t, x, lp, g);
                Ok(())
            };
            let l2 = q2
                .loss_and_grad_batched(&mut hook, 0.4, est, 24, &mut r2, &mut e2, &mut g2)
                .unwrap();
            assert_eq!(calls, 1);
            assert_eq!(e1, e2, "same noise");
            assert!((l1 - l2).abs() <= 1e-12 * l1.abs().max(1.0), "{l1} vs {l2}");
            let norm = g1.iter().map(|v| v.abs()).fold(0.0, f64::max);
            assert!(norm > 0.0);
            for (a, b) in g1.iter().zip(&g2) {
                assert!(
                    (a - b).abs() <= 1e-6 * norm,
                    "{precision:?} {est:?}: {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn batch_target_errors_end_the_pass() {
    let mut q = flow(arch(4, 2, MaskKind::Halves, Activation::Tanh), 1);
    let theta = q.params().to_vec();
    let mut grad = vec![7.0; theta.len()];
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
    let mut hook = |_: &[f64], _: &mut [f64], _: &mut [f64]| Err("the user's target failed");
    let r = q.loss_and_grad_batched(
        &mut hook,
        1.0,
        Estimator::Full,
        8,
        &mut rng,
        &mut Vec::new(),
        &mut grad,
    );
    assert_eq!(r, Err("the user's target failed"));
    assert!(grad.iter().all(|g| *g == 7.0) && q.params() == &theta[..]);
    let e = q.evaluate_batched(&mut hook, &[], 1.0, 10, 0.05, &mut rng);
    assert_eq!(e.err(), Some("the user's target failed"));
}

#[test]
fn batch_evaluation_reproduces_the_builtin_statistics() {
    let t = target(4);
    let mut q = flow(arch(4, 3, MaskKind::Checkerboard, Activation::Relu), 5);
    let mut q2 = q.clone();
    let mut g = vec![0.0; q.params().len()];
    // a training-size batch first: the evaluation draws in chunks of it
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    q.loss_and_grad(
        &t,
        1.0,
        Estimator::Full,
        32,
        &mut rng,
        &mut Vec::new(),
        &mut g,
    );
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    q2.loss_and_grad(
        &t,
        1.0,
        Estimator::Full,
        32,
        &mut rng,
        &mut Vec::new(),
        &mut g,
    );
    let a = q.evaluate(
        &t,
        0.5,
        300,
        0.05,
        &mut Xoshiro256PlusPlus::seed_from_u64(4),
    );
    let modes = vec![t.means()[0].clone(), t.means()[1].clone()];
    let sizes = std::cell::RefCell::new(Vec::new());
    let mut hook = |x: &[f64], lp: &mut [f64], g: &mut [f64]| -> Result<(), ()> {
        sizes.borrow_mut().push(lp.len());
        batch_of(&t, x, lp, g);
        Ok(())
    };
    let b = q2
        .evaluate_batched(
            &mut hook,
            &modes,
            0.5,
            300,
            0.05,
            &mut Xoshiro256PlusPlus::seed_from_u64(4),
        )
        .unwrap();
    assert_eq!(
        *sizes.borrow(),
        vec![32; 9].into_iter().chain([12]).collect::<Vec<_>>()
    );
    assert_eq!(a.mode_masses, b.mode_masses);
    assert!(a.mode_masses.iter().all(|m| *m > 0.0));
    assert_eq!(b.light_mode_mass, a.mode_masses[0].min(a.mode_masses[1]));
    assert!((a.ess_fraction - b.ess_fraction).abs() < 1e-12);
    assert!((a.neg_elbo - b.neg_elbo).abs() < 1e-12 * a.neg_elbo.abs().max(1.0));
    assert!(b.kl.is_nan() && b.mode_weight_error.is_nan() && a.kl.is_finite());
    assert_eq!(b.samples, 300);
    let none = q2
        .evaluate_batched(
            &mut hook,
            &[],
            1.0,
            50,
            0.05,
            &mut Xoshiro256PlusPlus::seed_from_u64(4),
        )
        .unwrap();
    assert!(none.mode_masses.is_empty() && none.light_mode_mass.is_nan());
}
