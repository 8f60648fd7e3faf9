//! Optimisers on a flat parameter vector with per-group learning rates.
//!
//! The learning rate of group g is η·κ_g: the paper's η = 0.05 applies to the means
//! (κ = 1); the log-scales use κ_σ = c_σ/d (default c_σ = 10) because ∂F/∂ln σ_k is O(d)
//! (its curvature at equilibrium is 2 w_k d), so plain η would be unstable at d = 512; see
//! docs/theory.md, "Learning rates and time".
//!
//! [`OptimConfig`] (the `[optim]` section of a configuration) validates its fields and builds
//! the optimiser with [`OptimConfig::init`].

use crate::check::{self, positive, positive_or_inf};
use crate::error::Result;
use crate::family::{GroupKind, ParamGroup};
use serde::{Deserialize, Serialize};

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

    /// The same update from an f32 gradient scaled by `scale` (∇ = scale · grad, computed in
    /// f64), also writing θ rounded to f32 into `theta32` (the copy an f32 engine computes
    /// with; every parameter of `groups`, which partition θ). Returns whether every parameter
    /// is finite afterwards. Results equal [`Self::step`] on the f64 gradient followed by the
    /// rounding, bit for bit; optimisers may fuse the passes (Adam does: one pass over memory instead of four, which matters
    /// for flows with millions of parameters).
    fn step_mixed(
        &mut self,
        theta: &mut [f64],
        grad: &[f32],
        theta32: &mut [f32],
        groups: &[ParamGroup],
        scale: f64,
    ) -> bool {
        let g: Vec<f64> = if scale == 1.0 {
            grad.iter().map(|&v| v as f64).collect()
        } else {
            grad.iter().map(|&v| v as f64 * scale).collect()
        };
        self.step(theta, &g, groups);
        let mut finite = true;
        for (w, t) in theta32.iter_mut().zip(theta.iter()) {
            *w = *t as f32;
            finite &= t.is_finite();
        }
        finite
    }
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

impl Adam {
    /// Allocates the moments, advances t, and returns (1 − β1^t, 1 − β2^t).
    fn begin(&mut self, n: usize) -> (f64, f64) {
        if self.m.len() != n {
            self.m = vec![0.0; n];
            self.v = vec![0.0; n];
        }
        self.t = self.t.saturating_add(1);
        (1.0 - self.beta1.powi(self.t), 1.0 - self.beta2.powi(self.t))
    }

    /// The clipping factor min(1, c/‖g‖₂) over the trainable groups, g_i = `at(i)`.
    fn clip_factor(&self, groups: &[ParamGroup], at: impl Fn(usize) -> f64) -> f64 {
        if !self.max_grad_norm.is_finite() {
            return 1.0;
        }
        let n2: f64 = groups
            .iter()
            .filter(|g| g.trainable)
            .map(|g| g.range.clone().map(|i| at(i) * at(i)).sum::<f64>())
            .sum();
        let norm = n2.sqrt();
        if norm > self.max_grad_norm {
            self.max_grad_norm / norm
        } else {
            1.0
        }
    }
}

impl Optimizer for Adam {
    fn step_mixed(
        &mut self,
        theta: &mut [f64],
        grad: &[f32],
        theta32: &mut [f32],
        groups: &[ParamGroup],
        scale: f64,
    ) -> bool {
        let (bc1, bc2) = self.begin(theta.len());
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        let clip = self.clip_factor(groups, |i| grad[i] as f64 * scale);
        let mut bad = false;
        for g in groups.iter().filter(|g| g.trainable) {
            let lr = self.lr * self.rates.of(g.kind);
            let r = g.range.clone();
            // the arithmetic of `step`, operation for operation, fused with the f32 rounding
            // and the finiteness check
            for ((((t, w), gi), m), v) in theta[r.clone()]
                .iter_mut()
                .zip(&mut theta32[r.clone()])
                .zip(&grad[r.clone()])
                .zip(&mut self.m[r.clone()])
                .zip(&mut self.v[r])
            {
                let gi = (*gi as f64 * scale) * clip;
                *m = b1 * *m + (1.0 - b1) * gi;
                *v = b2 * *v + (1.0 - b2) * gi * gi;
                let mh = *m / bc1;
                let vh = *v / bc2;
                *t -= lr * mh / (vh.sqrt() + eps);
                *w = *t as f32;
                bad |= !t.is_finite();
            }
        }
        // frozen groups: unchanged, but rounded and checked like the rest
        for g in groups.iter().filter(|g| !g.trainable) {
            for (w, t) in theta32[g.range.clone()]
                .iter_mut()
                .zip(&theta[g.range.clone()])
            {
                *w = *t as f32;
                bad |= !t.is_finite();
            }
        }
        !bad
    }

    fn step(&mut self, theta: &mut [f64], grad: &[f64], groups: &[ParamGroup]) {
        let (bc1, bc2) = self.begin(theta.len());
        let (b1, b2, eps) = (self.beta1, self.beta2, self.eps);
        let clip = self.clip_factor(groups, |i| grad[i]);
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

/// Which optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimKind {
    /// Plain SGD (the paper's).
    Sgd,
    /// Adam.
    Adam,
}

/// Optimiser settings (the `[optim]` section of a configuration).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// `sgd` or `adam`.
    pub kind: OptimKind,
    /// Base learning rate η > 0 (applies to the means).
    pub lr: f64,
    /// c_σ > 0: the log-scales use η c_σ / d.
    pub sigma_lr_factor: f64,
    /// c_w > 0: the logits use η c_w.
    pub logit_lr_factor: f64,
    /// SGD trust region: largest |Δ ln σ| per step (> 0; `inf` disables).
    pub max_log_sigma_step: f64,
    /// Adam β1 ∈ [0, 1).
    pub adam_beta1: f64,
    /// Adam β2 ∈ [0, 1).
    pub adam_beta2: f64,
    /// Adam ε > 0.
    pub adam_eps: f64,
    /// Adam gradient-norm clipping: ‖g‖₂ is scaled down to at most this (> 0; `inf` = off).
    pub max_grad_norm: f64,
    /// Number of SGD steps ≥ 1.
    pub steps: usize,
    /// A run diverges once a mean's norm ‖μ_k‖ (mixtures) or a parameter's magnitude (flows)
    /// exceeds this (> 0; `inf`: only non-finite values diverge). See [`crate::train`],
    /// "Divergence". Written to sweep.toml only when not the default.
    #[serde(skip_serializing_if = "is_default_bound")]
    pub divergence_bound: f64,
}

/// The default of `optim.divergence_bound`: 10⁶, far beyond any mean a run that has not
/// blown up reaches (the validation asks for at least 100 times the target's scale).
pub const DEFAULT_DIVERGENCE_BOUND: f64 = 1e6;

fn is_default_bound(b: &f64) -> bool {
    *b == DEFAULT_DIVERGENCE_BOUND
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            kind: OptimKind::Sgd,
            lr: 0.05,
            sigma_lr_factor: 10.0,
            logit_lr_factor: 1.0,
            max_log_sigma_step: 0.5,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_eps: 1e-8,
            max_grad_norm: f64::INFINITY,
            steps: 3000,
            divergence_bound: DEFAULT_DIVERGENCE_BOUND,
        }
    }
}

impl OptimConfig {
    /// Checks every field (named `optim.…`); the first violation is returned.
    pub fn validate(&self) -> Result<()> {
        positive("optim.lr", self.lr)?;
        positive("optim.sigma_lr_factor", self.sigma_lr_factor)?;
        positive("optim.logit_lr_factor", self.logit_lr_factor)?;
        // NaN or ≤ 0 would make the SGD clamp panic; +∞ is allowed (no clipping)
        positive_or_inf("optim.max_log_sigma_step", self.max_log_sigma_step)?;
        let beta = "a number in [0, 1)";
        check::number_in("optim.adam_beta1", self.adam_beta1, 0.0..1.0, beta)?;
        check::number_in("optim.adam_beta2", self.adam_beta2, 0.0..1.0, beta)?;
        positive("optim.adam_eps", self.adam_eps)?;
        positive_or_inf("optim.max_grad_norm", self.max_grad_norm)?;
        if self.divergence_bound.is_nan() || self.divergence_bound <= 0.0 {
            return Err(crate::error::Error::config(
                "optim.divergence_bound",
                self.divergence_bound,
                "a number > 0, or inf (only non-finite values diverge)",
            ));
        }
        check::count_in("optim.steps", self.steps, 1, 100_000_000)
    }

    /// The optimiser for a student in dimension d, after [`Self::validate`].
    pub fn init(&self, d: usize) -> Result<Box<dyn Optimizer>> {
        self.validate()?;
        Ok(self.build(d))
    }

    /// The optimiser, with group rates κ_mean = 1, κ_σ = c_σ/d, κ_logit = c_w, κ_network = 1;
    /// without validation (for a section already validated).
    pub(crate) fn build(&self, d: usize) -> Box<dyn Optimizer> {
        let rates = GroupRates {
            mean: 1.0,
            log_scale: self.sigma_lr_factor / d as f64,
            logit: self.logit_lr_factor,
            network: 1.0,
        };
        match self.kind {
            OptimKind::Sgd => Box::new(Sgd {
                lr: self.lr,
                rates,
                max_log_scale_step: self.max_log_sigma_step,
            }),
            OptimKind::Adam => Box::new(
                Adam::new(
                    self.lr,
                    rates,
                    self.adam_beta1,
                    self.adam_beta2,
                    self.adam_eps,
                )
                .with_max_grad_norm(self.max_grad_norm),
            ),
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

    #[test]
    fn fused_mixed_step_equals_step_then_rounding_bit_for_bit() {
        let g = groups();
        for (clip, scale) in [
            (f64::INFINITY, 1.0),
            (0.3, 1.0),
            (f64::INFINITY, 0.25),
            (0.3, 4.0),
        ] {
            let mut a = Adam::new(0.01, RATES, 0.9, 0.999, 1e-8).with_max_grad_norm(clip);
            let mut b = a.clone();
            let mut sgd = Sgd {
                lr: 0.1,
                rates: RATES,
                max_log_scale_step: 0.2,
            };
            let mut sgd_b = sgd.clone();
            let (mut ta, mut tb) = (vec![0.3, -1.2, 0.7, 2.0], vec![0.3, -1.2, 0.7, 2.0]);
            let (mut sa, mut sb) = (ta.clone(), tb.clone());
            let mut w = vec![0.0f32; 4];
            let mut ws = vec![0.0f32; 4];
            for k in 0..20 {
                let g32: Vec<f32> = (0..4)
                    .map(|i| ((i * 3 + k) as f32 * 0.71).sin() * 5.0)
                    .collect();
                let g64: Vec<f64> = g32.iter().map(|&v| v as f64 * scale).collect();
                a.step(&mut ta, &g64, &g);
                assert!(b.step_mixed(&mut tb, &g32, &mut w, &g, scale));
                sgd.step(&mut sa, &g64, &g);
                assert!(sgd_b.step_mixed(&mut sb, &g32, &mut ws, &g, scale));
                for i in 0..4 {
                    assert_eq!(ta[i].to_bits(), tb[i].to_bits(), "Adam step {k} param {i}");
                    assert_eq!((ta[i] as f32).to_bits(), w[i].to_bits());
                    assert_eq!(sa[i].to_bits(), sb[i].to_bits(), "SGD step {k} param {i}");
                    assert_eq!((sa[i] as f32).to_bits(), ws[i].to_bits());
                }
            }
        }
        // a non-finite result is reported
        let mut a = Adam::new(0.01, RATES, 0.9, 0.999, 1e-8);
        let mut th = vec![f64::INFINITY, 0.0, 0.0, 0.0];
        let mut w = vec![0.0f32; 4];
        assert!(!a.step_mixed(&mut th, &[1.0; 4], &mut w, &groups(), 1.0));
    }
}
