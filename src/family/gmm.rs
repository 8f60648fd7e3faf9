//! The Gaussian-mixture student q_θ(x) = Σ_k w_k N(x; μ_k, σ_k² I_d).
//!
//! Parameters θ = (μ_1, …, μ_K, ln σ_1, …, ln σ_K, a_1, …, a_K) with weights
//! w = softmax(a). Weights are fixed (default, w_k = 1/K or as given) or trainable.
//!
//! Summary statistics (relative to a unit axis μ̂): m_k = μ_k·μ̂, q_kl = μ_k·μ_l, σ_k, w_k.

use super::{GroupKind, ParamGroup, VariationalFamily, fill_standard_normal};
use crate::target::log_sum_exp;
use rand::Rng;

/// The Gaussian-mixture student.
#[derive(Clone, Debug, PartialEq)]
pub struct GmmStudent {
    d: usize,
    k: usize,
    theta: Vec<f64>,
    trainable_weights: bool,
}

/// Summary statistics of a Gaussian-mixture student.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Stats {
    /// m_k = μ_k·μ̂.
    pub m: Vec<f64>,
    /// q_kl = μ_k·μ_l for k ≤ l, in the order (1,1), (1,2), …, (1,K), (2,2), …
    pub q: Vec<f64>,
    /// σ_k.
    pub sigma: Vec<f64>,
    /// w_k.
    pub w: Vec<f64>,
}

impl GmmStudent {
    /// A student with the given means (K vectors of length d), scales σ_k > 0 and weights
    /// (positive, summing to one).
    ///
    /// ```
    /// use annealvi::family::gmm::GmmStudent;
    ///
    /// // the paper's student in d = 3: means ±e_2, σ = 1, fixed weights ½
    /// let means = [vec![0.0, 1.0, 0.0], vec![0.0, -1.0, 0.0]];
    /// let q = GmmStudent::new(&means, &[1.0, 1.0], &[0.5, 0.5], false);
    /// let s = q.stats(&[1.0, 0.0, 0.0]); // relative to the target axis μ̂ = e_1
    /// assert_eq!(s.m, vec![0.0, 0.0]); // no overlap with μ* yet
    /// assert_eq!(s.q, vec![1.0, -1.0, 1.0]); // q_11, q_12, q_22
    /// assert_eq!(s.w, vec![0.5, 0.5]);
    /// ```
    pub fn new(
        means: &[Vec<f64>],
        sigma: &[f64],
        weights: &[f64],
        trainable_weights: bool,
    ) -> Self {
        let k = means.len();
        assert!(k >= 1 && sigma.len() == k && weights.len() == k);
        let d = means[0].len();
        let mut theta = Vec::with_capacity(k * d + 2 * k);
        for m in means {
            assert_eq!(m.len(), d);
            theta.extend_from_slice(m);
        }
        theta.extend(sigma.iter().map(|s| s.ln()));
        theta.extend(weights.iter().map(|w| w.ln()));
        Self {
            d,
            k,
            theta,
            trainable_weights,
        }
    }

    /// Number of components K.
    pub fn components(&self) -> usize {
        self.k
    }
    /// Whether the weights are trained.
    pub fn trainable_weights(&self) -> bool {
        self.trainable_weights
    }
    /// μ_k.
    pub fn mean(&self, k: usize) -> &[f64] {
        &self.theta[k * self.d..(k + 1) * self.d]
    }
    /// All means, row-major K×d.
    pub fn means_flat(&self) -> &[f64] {
        &self.theta[..self.k * self.d]
    }
    /// ln σ_k.
    pub fn log_sigma(&self, k: usize) -> f64 {
        self.theta[self.k * self.d + k]
    }
    /// σ_k.
    pub fn sigma(&self, k: usize) -> f64 {
        self.log_sigma(k).exp()
    }
    /// The mixture logits a_k.
    pub fn logits(&self) -> &[f64] {
        &self.theta[self.k * self.d + self.k..]
    }
    /// Offset of ln σ_1 in θ.
    pub fn log_sigma_offset(&self) -> usize {
        self.k * self.d
    }
    /// Offset of a_1 in θ.
    pub fn logit_offset(&self) -> usize {
        self.k * self.d + self.k
    }
    /// w = softmax(a).
    pub fn weights(&self) -> Vec<f64> {
        let mut w = vec![0.0; self.k];
        self.weights_into(&mut w);
        w
    }

    /// w = softmax(a) into `out` (K entries), without allocating.
    pub fn weights_into(&self, out: &mut [f64]) {
        let a = self.logits();
        let l = log_sum_exp(a);
        out.iter_mut().zip(a).for_each(|(o, v)| *o = (v - l).exp());
    }

    /// Summary statistics relative to the unit axis `axis`.
    pub fn stats(&self, axis: &[f64]) -> Stats {
        let m = (0..self.k).map(|k| dot(self.mean(k), axis)).collect();
        let mut q = Vec::with_capacity(self.k * (self.k + 1) / 2);
        for k in 0..self.k {
            for l in k..self.k {
                q.push(dot(self.mean(k), self.mean(l)));
            }
        }
        Stats {
            m,
            q,
            sigma: (0..self.k).map(|k| self.sigma(k)).collect(),
            w: self.weights(),
        }
    }

    /// Marginal density of q along the unit vector `axis` at s: Σ_k w_k N(s; μ_k·u, σ_k²).
    pub fn axis_density(&self, axis: &[f64], s: f64) -> f64 {
        let w = self.weights();
        (0..self.k)
            .map(|k| {
                let c = dot(self.mean(k), axis);
                w[k] * crate::target::normal_pdf(s, c, self.sigma(k).powi(2))
            })
            .sum()
    }

    /// Whether every parameter is finite.
    pub fn is_finite(&self) -> bool {
        self.theta.iter().all(|v| v.is_finite())
    }

    /// Whether every parameter is finite and every mean has ‖μ_k‖ ≤ `bound` (the training
    /// loop's divergence rule; `bound = inf` checks finiteness only).
    pub fn within(&self, bound: f64) -> bool {
        let b2 = bound * bound;
        (0..self.k).all(|k| {
            let n2 = dot(self.mean(k), self.mean(k));
            n2.is_finite() && n2 <= b2
        }) && self.theta[self.k * self.d..].iter().all(|v| v.is_finite())
    }
}

impl VariationalFamily for GmmStudent {
    fn dim(&self) -> usize {
        self.d
    }
    fn params(&self) -> &[f64] {
        &self.theta
    }
    fn params_mut(&mut self) -> &mut [f64] {
        &mut self.theta
    }
    fn groups(&self) -> Vec<ParamGroup> {
        let (kd, k) = (self.k * self.d, self.k);
        vec![
            ParamGroup {
                kind: GroupKind::Mean,
                range: 0..kd,
                trainable: true,
            },
            ParamGroup {
                kind: GroupKind::LogScale,
                range: kd..kd + k,
                trainable: true,
            },
            ParamGroup {
                kind: GroupKind::Logit,
                range: kd + k..kd + 2 * k,
                trainable: self.trainable_weights,
            },
        ]
    }

    fn log_density(&self, x: &[f64]) -> f64 {
        let w = self.weights();
        let d = self.d as f64;
        let terms: Vec<f64> = (0..self.k)
            .map(|k| {
                let s2 = self.sigma(k).powi(2);
                let dist2: f64 = x
                    .iter()
                    .zip(self.mean(k))
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                w[k].ln() - 0.5 * d * (2.0 * std::f64::consts::PI * s2).ln() - 0.5 * dist2 / s2
            })
            .collect();
        log_sum_exp(&terms)
    }

    fn sample(&self, rng: &mut dyn rand::RngCore, x: &mut [f64]) {
        let w = self.weights();
        let u: f64 = rng.r#gen();
        let mut acc = 0.0;
        let mut k = self.k - 1;
        for (i, wi) in w.iter().enumerate() {
            acc += wi;
            if u < acc {
                k = i;
                break;
            }
        }
        fill_standard_normal(rng, x);
        let s = self.sigma(k);
        for (xi, mi) in x.iter_mut().zip(self.mean(k)) {
            *xi = mi + s * *xi;
        }
    }
}

/// Σ a_i b_i (over the common length), with four partial sums in a fixed order so that the
/// compiler vectorises it and the result does not depend on the machine.
#[inline]
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let ca = a.chunks_exact(4);
    let cb = b.chunks_exact(4);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        acc[0] += x[0] * y[0];
        acc[1] += x[1] * y[1];
        acc[2] += x[2] * y[2];
        acc[3] += x[3] * y[3];
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn log_density_is_normalised_in_one_dimension() {
        let q = GmmStudent::new(&[vec![-1.0], vec![2.0]], &[0.5, 1.5], &[0.3, 0.7], false);
        let rule = crate::quadrature::composite_gauss_legendre(
            20,
            &(0..=40).map(|i| -20.0 + i as f64).collect::<Vec<_>>(),
        );
        let total = rule.integrate(|x| q.log_density(&[x]).exp());
        assert!((total - 1.0).abs() < 1e-12);
        assert!((q.axis_density(&[1.0], 0.3) - q.log_density(&[0.3]).exp()).abs() < 1e-14);
    }

    #[test]
    fn samples_have_the_mixture_moments() {
        let q = GmmStudent::new(
            &[vec![-1.0, 0.0], vec![3.0, 1.0]],
            &[0.5, 2.0],
            &[0.25, 0.75],
            false,
        );
        let mut rng = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let n = 200_000;
        let (mut s0, mut s00) = (0.0, 0.0);
        let mut x = [0.0; 2];
        for _ in 0..n {
            q.sample(&mut rng, &mut x);
            s0 += x[0];
            s00 += x[0] * x[0];
        }
        let mean = s0 / n as f64;
        let var = s00 / n as f64 - mean * mean;
        let want_mean = -0.25 + 0.75 * 3.0;
        let want_var = 0.25 * (0.25 + 1.0) + 0.75 * (4.0 + 9.0) - want_mean * want_mean;
        // 4 standard errors
        assert!((mean - want_mean).abs() < 4.0 * (want_var / n as f64).sqrt());
        assert!((var - want_var).abs() < 0.05 * want_var);
    }

    #[test]
    fn stats_and_groups() {
        let q = GmmStudent::new(
            &[vec![1.0, 2.0], vec![-3.0, 0.5]],
            &[1.0, 2.0],
            &[0.5, 0.5],
            true,
        );
        let s = q.stats(&[1.0, 0.0]);
        assert_eq!(s.m, vec![1.0, -3.0]);
        assert_eq!(s.q, vec![5.0, -2.0, 9.25]);
        assert!((s.sigma[1] - 2.0).abs() < 1e-15);
        assert!((s.w[0] - 0.5).abs() < 1e-15);
        let g = q.groups();
        assert_eq!(g[1].range, 4..6);
        assert!(g[2].trainable);
        assert_eq!(dot(&[1.0, 2.0, 3.0, 4.0, 5.0], &[1.0; 5]), 15.0);
    }
}
