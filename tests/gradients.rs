//! Gradient correctness: fast MC kernel = reference MC; exact gradient = finite differences of
//! the exact objective; MC gradients agree with the exact gradient within 4 standard errors.

use annealvi::family::{GmmStudent, VariationalFamily, fill_standard_normal};
use annealvi::objective::{
    Estimator, ExactObjective, McWorkspace, mc_gradient, mc_gradient_reference,
};
use annealvi::seed::{Purpose, stream};
use annealvi::target::{IsotropicMixture, Tempered};

/// A student in dimension d with the given axis components m_k, orthogonal parts of norm
/// `orth` (random directions, shared fraction `shared` between the two means) and scales.
#[allow(clippy::too_many_arguments)]
fn student(
    d: usize,
    m: [f64; 2],
    orth: f64,
    shared: f64,
    sigma: [f64; 2],
    w1: f64,
    trainable: bool,
    seed: u64,
) -> GmmStudent {
    let mut rng = stream(seed, 0, Purpose::Init);
    let mut a = vec![0.0; d];
    let mut b = vec![0.0; d];
    let mut c = vec![0.0; d];
    fill_standard_normal(&mut rng, &mut a);
    fill_standard_normal(&mut rng, &mut b);
    fill_standard_normal(&mut rng, &mut c);
    let scale = orth / (d as f64).sqrt();
    let mut mu1 = vec![0.0; d];
    let mut mu2 = vec![0.0; d];
    for i in 1..d {
        mu1[i] = scale * ((1.0 - shared) * a[i] + shared * c[i]);
        mu2[i] = scale * ((1.0 - shared) * b[i] + shared * c[i]);
    }
    mu1[0] = m[0];
    mu2[0] = m[1];
    GmmStudent::new(&[mu1, mu2], &sigma, &[w1, 1.0 - w1], trainable)
}

#[test]
fn fast_kernel_equals_reference_kernel() {
    let d = 7;
    let three = IsotropicMixture::new(
        vec![
            vec![3.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            vec![-2.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            vec![0.0, 0.0, 2.5, 0.0, 0.0, 0.0, -1.0],
        ],
        vec![0.5, 0.3, 0.2],
        vec![1.0, 0.5, 2.0],
    );
    let bimodal = IsotropicMixture::bimodal(d, 3.0, 0.8);
    for target in [&bimodal, &three] {
        for est in [Estimator::Full, Estimator::Stl] {
            for (beta, trainable) in [(1.0, false), (0.1, true)] {
                let q = student(d, [0.7, -0.4], 1.5, 0.3, [0.8, 1.3], 0.35, trainable, 5);
                let n = q.params().len();
                let (mut g1, mut g2) = (vec![0.0; n], vec![0.0; n]);
                let mut r1 = stream(9, 1, Purpose::Sgd);
                let mut r2 = stream(9, 1, Purpose::Sgd);
                let mut ws = McWorkspace::default();
                let l1 = mc_gradient(&q, target, beta, est, 5, &mut r1, &mut ws, &mut g1);
                let tb = Tempered { target, beta: 1.0 };
                let l2 = mc_gradient_reference(&q, &tb, beta, est, 5, &mut r2, &mut g2);
                assert!(
                    (l1 - l2).abs() < 1e-10 * l2.abs().max(1.0),
                    "loss {l1} vs {l2}"
                );
                for i in 0..n {
                    assert!(
                        (g1[i] - g2[i]).abs() < 1e-9 * g2[i].abs().max(1.0),
                        "{est:?} beta={beta} i={i}: {} vs {}",
                        g1[i],
                        g2[i]
                    );
                }
            }
        }
    }
}

/// Parameter points at d = 512: (label, student, β).
fn points() -> Vec<(&'static str, GmmStudent, f64)> {
    let d = 512;
    vec![
        (
            "separated, beta=1",
            student(d, [1.5, -0.5], 2.0, 0.0, [1.0, 0.9], 0.5, false, 1),
            1.0,
        ),
        (
            "small beta=0.02",
            student(d, [2.0, 0.5], 3.0, 0.2, [7.0, 7.3], 0.5, false, 2),
            0.02,
        ),
        (
            "overlapping",
            student(d, [0.3, 0.2], 0.4, 0.8, [1.0, 1.05], 0.5, false, 3),
            0.5,
        ),
        (
            "equal sigmas, trainable w",
            student(d, [0.9, -0.2], 1.0, 0.5, [1.2, 1.2], 0.7, true, 4),
            0.7,
        ),
    ]
}

#[test]
fn exact_gradient_matches_finite_differences() {
    let target = IsotropicMixture::bimodal(512, 3.0, 0.8);
    let ex = ExactObjective::new(512);
    for (label, q, beta) in points() {
        let v = ex.evaluate(&q, &target, beta).unwrap();
        let n = q.params().len();
        // directions: each log-scale, each logit, each mean along μ̂, two random directions
        let mut dirs: Vec<Vec<f64>> = Vec::new();
        for i in [
            q.log_sigma_offset(),
            q.log_sigma_offset() + 1,
            q.logit_offset(),
            0,
            512,
        ] {
            let mut e = vec![0.0; n];
            e[i] = 1.0;
            dirs.push(e);
        }
        let mut rng = stream(77, 0, Purpose::Eval);
        for _ in 0..2 {
            let mut e = vec![0.0; n];
            fill_standard_normal(&mut rng, &mut e[..1024]);
            e.iter_mut().for_each(|x| *x /= 32.0);
            dirs.push(e);
        }
        for (j, e) in dirs.iter().enumerate() {
            if j == 2 && !q.trainable_weights() {
                continue;
            }
            let h = 1e-5;
            let f = |s: f64| {
                let mut p = q.clone();
                for (t, ei) in p.params_mut().iter_mut().zip(e) {
                    *t += s * ei;
                }
                ex.evaluate(&p, &target, beta).unwrap().kl
            };
            let fd = (f(h) - f(-h)) / (2.0 * h);
            let an: f64 = v.grad.iter().zip(e).map(|(g, ei)| g * ei).sum();
            assert!(
                (fd - an).abs() <= 1e-6 * an.abs().max(1.0),
                "{label}, direction {j}: analytic {an} vs finite difference {fd}"
            );
        }
    }
}

#[test]
fn monte_carlo_gradients_agree_with_exact_within_4_standard_errors() {
    let target = IsotropicMixture::bimodal(512, 3.0, 0.8);
    let ex = ExactObjective::new(512);
    let reps = 2000;
    for (label, q, beta) in points() {
        let exact = ex.evaluate(&q, &target, beta).unwrap();
        let n = q.params().len();
        // projections: ∂/∂ln σ_k, ∂/∂a_1, ∇_μk·μ̂, ∇_μ1·(μ1 − μ2)/‖·‖, a random direction
        let mut dirs: Vec<(String, Vec<f64>)> = Vec::new();
        for (name, i) in [
            ("dlogsigma1", q.log_sigma_offset()),
            ("dlogsigma2", q.log_sigma_offset() + 1),
            ("dm1", 0),
            ("dm2", 512),
        ] {
            let mut e = vec![0.0; n];
            e[i] = 1.0;
            dirs.push((name.into(), e));
        }
        if q.trainable_weights() {
            let mut e = vec![0.0; n];
            e[q.logit_offset()] = 1.0;
            dirs.push(("dlogit1".into(), e));
        }
        let mut e = vec![0.0; n];
        let diff: Vec<f64> = q
            .mean(0)
            .iter()
            .zip(q.mean(1))
            .map(|(a, b)| a - b)
            .collect();
        let nd = diff.iter().map(|x| x * x).sum::<f64>().sqrt();
        for i in 0..512 {
            e[i] = diff[i] / nd;
        }
        dirs.push(("dmu1.(mu1-mu2)".into(), e));
        let mut e = vec![0.0; n];
        fill_standard_normal(&mut stream(3, 3, Purpose::Eval), &mut e[..1024]);
        e.iter_mut().for_each(|x| *x /= 32.0);
        dirs.push(("random".into(), e));

        for est in [Estimator::Full, Estimator::Stl] {
            let mut rng = stream(11, 0, Purpose::Sgd);
            let mut ws = McWorkspace::default();
            let mut g = vec![0.0; n];
            let mut sums = vec![(0.0, 0.0); dirs.len()];
            let mut loss_sum = 0.0;
            for _ in 0..reps {
                loss_sum += mc_gradient(&q, &target, beta, est, 32, &mut rng, &mut ws, &mut g);
                for (s, (_, e)) in sums.iter_mut().zip(&dirs) {
                    let p: f64 = g.iter().zip(e).map(|(a, b)| a * b).sum();
                    s.0 += p;
                    s.1 += p * p;
                }
            }
            for (s, (name, e)) in sums.iter().zip(&dirs) {
                if std::env::var("GRAD_DEBUG").is_ok() {
                    let mean = s.0 / reps as f64;
                    let se = ((s.1 / reps as f64 - mean * mean).max(0.0) / reps as f64).sqrt();
                    let want: f64 = exact.grad.iter().zip(e).map(|(a, b)| a * b).sum();
                    eprintln!("{label} {est:?} {name}: {mean:.5} ± {se:.5} exact {want:.5}");
                }
                let mean = s.0 / reps as f64;
                let var = (s.1 / reps as f64 - mean * mean).max(0.0);
                let se = (var / reps as f64).sqrt();
                let want: f64 = exact.grad.iter().zip(e).map(|(a, b)| a * b).sum();
                assert!(
                    (mean - want).abs() <= 4.0 * se + 1e-9 * want.abs().max(1.0),
                    "{label}, {est:?}, {name}: MC {mean} ± {se} vs exact {want}"
                );
            }
            // the loss estimates the −ELBO, too (its SE is tiny: compare loosely)
            let loss = loss_sum / reps as f64;
            assert!(
                (loss - exact.neg_elbo).abs() < 0.05 * exact.neg_elbo.abs().max(1.0),
                "{label}: loss {loss} vs {}",
                exact.neg_elbo
            );
        }
    }
}
