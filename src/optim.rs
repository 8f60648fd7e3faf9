//! Optimisers on a flat parameter vector with per-group learning rates.
//!
//! The learning rate of group g is η·κ_g: the paper's η = 0.05 applies to the means
//! (κ = 1); the log-scales use κ_σ = c_σ/d (default c_σ = 10) because ∂F/∂ln σ_k is O(d)
//! (its curvature at equilibrium is 2 w_k d), so plain η would be unstable at d = 512; see
//! docs/theory.md, "Learning rates and time".

use crate::family::{GroupKind, ParamGroup};

/// Per-group learning-rate multipliers κ_g.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GroupRates {
    /// κ for means.
    pub mean: f64,
    /// κ for log-scales.
    pub log_scale: f64,
    /// κ for logits.
    pub logit: f64,
    /// κ for network weights.
    pub network: f64,
}

impl GroupRates {
    /// κ for a group kind.
    pub fn of(&self, kind: GroupKind) -> f64 {
        match kind {
            GroupKind::Mean => self.mean,
            GroupKind::LogScale => self.log_scale,
            GroupKind::Logit => self.logit,
            GroupKind::Network => self.network,
        }
    }
}

/// A first-order optimiser.
pub trait Optimizer: Send {
    /// Applies one update θ ← θ − step(∇) for the given groups.
    fn step(&mut self, theta: &mut [f64], grad: &[f64], groups: &[ParamGroup]);
}

/// Plain SGD: θ_g ← θ_g − η κ_g ∇_g, with each log-scale step clipped to
/// |Δ ln σ| ≤ `max_log_scale_step` (a trust region: far from equilibrium ∂F/∂ln σ grows like
/// d σ², so a "covering" σ(0) = 10 would otherwise overshoot to σ ≈ 1e-9 in one step).
#[derive(Clone, Debug)]
pub struct Sgd {
    /// Base learning rate η.
    pub lr: f64,
    /// Per-group multipliers.
    pub rates: GroupRates,
    /// Largest |Δ ln σ| per step (∞ = no clipping).
    pub max_log_scale_step: f64,
}

impl Optimizer for Sgd {
    fn step(&mut self, theta: &mut [f64], grad: &[f64], groups: &[ParamGroup]) {
        for g in groups.iter().filter(|g| g.trainable) {
            let lr = self.lr * self.rates.of(g.kind);
            let clip = if g.kind == GroupKind::LogScale {
                self.max_log_scale_step
            } else {
                f64::INFINITY
            };
            for (t, d) in theta[g.range.clone()]
                .iter_mut()
                .zip(&grad[g.range.clone()])
            {
                *t -= (lr * d).clamp(-clip, clip);
            }
        }
    }
}

/// Adam (Kingma & Ba) with bias correction and per-group learning rates.
#[derive(Clone, Debug)]
pub struct Adam {
    /// Base learning rate η.
    pub lr: f64,
    /// Per-group multipliers.
    pub rates: GroupRates,
    /// β1.
    pub beta1: f64,
    /// β2.
    pub beta2: f64,
    /// ε.
    pub eps: f64,
    /// Gradient clipping: before the update, g ← g · min(1, c/‖g‖₂) over the trainable
    /// groups (∞ = off).
    pub max_grad_norm: f64,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl Adam {
    /// A fresh Adam state.
    pub fn new(lr: f64, rates: GroupRates, beta1: f64, beta2: f64, eps: f64) -> Self {
        Self {
            lr,
            rates,
            beta1,
            beta2,
            eps,
            max_grad_norm: f64::INFINITY,
            m: Vec::new(),
            v: Vec::new(),
            t: 0,
        }
    }
}

impl Adam {
    /// With gradient-norm clipping at `c` (∞ = off).
    pub fn with_max_grad_norm(mut self, c: f64) -> Self {
        self.max_grad_norm = c;
        self
    }
}

impl Optimizer for Adam {
    fn step(&mut self, theta: &mut [f64], grad: &[f64], groups: &[ParamGroup]) {
        if self.m.len() != theta.len() {
            self.m = vec![0.0; theta.len()];
            self.v = vec![0.0; theta.len()];
        }
        self.t = self.t.saturating_add(1);
        let bc1 = 1.0 - self.beta1.powi(self.t);
        let bc2 = 1.0 - self.beta2.powi(self.t);
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        let mut clip = 1.0;
        if self.max_grad_norm.is_finite() {
            let n2: f64 = groups
                .iter()
                .filter(|g| g.trainable)
                .map(|g| grad[g.range.clone()].iter().map(|v| v * v).sum::<f64>())
                .sum();
            let norm = n2.sqrt();
            if norm > self.max_grad_norm {
                clip = self.max_grad_norm / norm;
            }
        }
        for g in groups.iter().filter(|g| g.trainable) {
            let lr = self.lr * self.rates.of(g.kind);
            let r = g.range.clone();
            // zipped slices (no bounds checks) so that the loop vectorises
            for (((t, gi), m), v) in theta[r.clone()]
                .iter_mut()
                .zip(&grad[r.clone()])
                .zip(&mut self.m[r.clone()])
                .zip(&mut self.v[r])
            {
                let gi = gi * clip;
                *m = b1 * *m + (1.0 - b1) * gi;
                *v = b2 * *v + (1.0 - b2) * gi * gi;
                let mh = *m / bc1;
                let vh = *v / bc2;
                *t -= lr * mh / (vh.sqrt() + eps);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups() -> Vec<ParamGroup> {
        vec![
            ParamGroup {
                kind: GroupKind::Mean,
                range: 0..2,
                trainable: true,
            },
            ParamGroup {
                kind: GroupKind::LogScale,
                range: 2..3,
                trainable: true,
            },
            ParamGroup {
                kind: GroupKind::Logit,
                range: 3..4,
                trainable: false,
            },
        ]
    }
    const RATES: GroupRates = GroupRates {
        mean: 1.0,
        log_scale: 0.5,
        logit: 1.0,
        network: 1.0,
    };

    #[test]
    fn sgd_applies_group_rates_and_freezes() {
        let mut th = vec![1.0, 1.0, 1.0, 1.0];
        Sgd {
            lr: 0.1,
            rates: RATES,
            max_log_scale_step: f64::INFINITY,
        }
        .step(&mut th, &[1.0, -2.0, 4.0, 9.0], &groups());
        assert_eq!(th, vec![0.9, 1.2, 0.8, 1.0]);
        let mut th = vec![1.0, 1.0, 1.0, 1.0];
        Sgd {
            lr: 0.1,
            rates: RATES,
            max_log_scale_step: 0.1,
        }
        .step(&mut th, &[1.0, -2.0, 40.0, 9.0], &groups());
        assert_eq!(th, vec![0.9, 1.2, 0.9, 1.0]);
    }

    #[test]
    fn adam_minimises_a_quadratic() {
        let mut th = vec![3.0, -2.0, 1.0, 0.0];
        let mut opt = Adam::new(0.05, RATES, 0.9, 0.999, 1e-8);
        for _ in 0..3000 {
            let g: Vec<f64> = th.iter().map(|t| 2.0 * t).collect();
            opt.step(&mut th, &g, &groups());
        }
        assert!(th[..3].iter().all(|t| t.abs() < 1e-2), "{th:?}");
    }

    #[test]
    fn adam_clipping_scales_the_first_step() {
        // first Adam step is lr·g/(|g| + ε) per coordinate whatever the scale, so compare m:
        // with clipping at 1, a gradient (30, 40) becomes (0.6, 0.8)
        let g = groups();
        let mut a = Adam::new(0.1, RATES, 0.0, 0.0, 1e-8).with_max_grad_norm(1.0);
        let mut th = vec![0.0; 4];
        a.step(&mut th, &[30.0, 40.0, 0.0, 0.0], &g);
        assert!((a.m[0] - 0.6).abs() < 1e-12 && (a.m[1] - 0.8).abs() < 1e-12);
    }
}
