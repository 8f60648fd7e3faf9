//! Target densities π: the log-density abstraction, isotropic Gaussian mixtures (the paper's
//! bimodal target among them) and tempering π_β ∝ π^β.
//!
//! # The bimodal target
//! π(x) = w* N(x; μ*, I_d) + (1 − w*) N(x; −μ*, I_d), ‖μ*‖ = R, μ̂ = μ*/R. With s = x·μ̂ and
//! h = ½ ln(w*/(1 − w*)),
//!
//! log π(x) = −(d/2) ln 2π − ‖x‖²/2 − R²/2 + ln cosh(R s + h) − ln cosh h,
//! ∇ log π(x) = −x + R tanh(R s + h) μ̂.
//!
//! The target is exactly standard normal orthogonal to μ̂. Its tempered version π^β has
//! normaliser (in nats)
//!
//! ln Z_β = β(−(d/2) ln 2π − R²/2 − ln cosh h) + ((d − 1)/2) ln(2π/β)
//!          + ln ∫ exp(β(−s²/2 + ln cosh(R s + h))) ds,
//!
//! where the last integral is one-dimensional (computed by Gauss–Legendre panels).
//!
//! # Benchmark targets
//! [`benchmark`] holds two targets of the sampling literature: the 40-mode mixture GMM40 (an
//! [`IsotropicMixture`]) and Many Well (its own [`LogDensity`]), with exact samplers and
//! mode-coverage metrics.
//!
//! # Configuration
//! [`TargetConfig`] (the `[target]` section) validates its fields and builds the target with
//! [`TargetConfig::init`] (the mixtures) or [`TargetConfig::benchmark`] (the benchmarks).

use crate::check;
use crate::error::{Error, Result};
use crate::gauss1d::log_cosh;
use crate::quadrature::composite_gauss_legendre;
use serde::{Deserialize, Serialize};
use std::ops::Bound;

pub mod benchmark;

pub use benchmark::{Benchmark, BenchmarkMetrics, ManyWell};

/// A (possibly unnormalised) log-density on R^d.
pub trait LogDensity: Send + Sync {
    /// Dimension d.
    fn dim(&self) -> usize;
    /// ln p(x).
    fn log_density(&self, x: &[f64]) -> f64;
    /// Writes ∇ ln p(x) into `grad` and returns ln p(x).
    fn grad_log_density(&self, x: &[f64], grad: &mut [f64]) -> f64;
    /// ln Z = ln ∫ p(x) dx when known (0 for a normalised density).
    fn log_normalizer(&self) -> Option<f64> {
        None
    }
}

/// The structure of a symmetric bimodal target: R, w*, h and the unit axis μ̂ = e_1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bimodal {
    /// Dimension d.
    pub d: usize,
    /// R = ‖μ*‖.
    pub r: f64,
    /// Weight w* of the mode at +μ*.
    pub w_star: f64,
    /// h = ½ ln(w*/(1 − w*)).
    pub h: f64,
}

impl Bimodal {
    /// ln π(x) for a point given by s = x·μ̂ and ‖x‖².
    pub fn log_density_reduced(&self, s: f64, norm2: f64) -> f64 {
        let d = self.d as f64;
        -0.5 * d * (2.0 * std::f64::consts::PI).ln() - 0.5 * norm2 - 0.5 * self.r * self.r
            + log_cosh(self.r * s + self.h)
            - log_cosh(self.h)
    }

    /// ln Z_β = ln ∫ π(x)^β dx (see the module docs). Exact up to quadrature (~1e-13).
    pub fn log_z_tempered(&self, beta: f64) -> f64 {
        let d = self.d as f64;
        let two_pi = 2.0 * std::f64::consts::PI;
        let prefactor = beta * (-0.5 * d * two_pi.ln() - 0.5 * self.r * self.r - log_cosh(self.h))
            + 0.5 * (d - 1.0) * (two_pi / beta).ln();
        prefactor + self.log_axis_integral(beta)
    }

    /// ln ∫ exp(β(−s²/2 + ln cosh(R s + h))) ds.
    fn log_axis_integral(&self, beta: f64) -> f64 {
        // substitute s = t/√β: ∫ exp(−t²/2 + β ln cosh(R t/√β + h)) dt / √β;
        // the exponent is ≤ −t²/2 + √β R|t| + β|h|, negligible (< e^-60) beyond |t| = L.
        let sb = beta.sqrt();
        let l = 12.0 + 2.0 * sb * self.r + self.h.abs();
        let kink = -self.h * sb / self.r.max(1e-300);
        let mut breaks: Vec<f64> = (0..=96).map(|i| -l + 2.0 * l * i as f64 / 96.0).collect();
        if kink.abs() < l {
            breaks.push(kink);
            breaks.sort_by(f64::total_cmp);
        }
        let rule = composite_gauss_legendre(12, &breaks);
        let expo: Vec<f64> = rule
            .x
            .iter()
            .map(|&t| -0.5 * t * t + beta * log_cosh(self.r * t / sb + self.h))
            .collect();
        let mx = expo.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = expo
            .iter()
            .zip(&rule.w)
            .map(|(&e, &w)| w * (e - mx).exp())
            .sum();
        mx + sum.ln() - sb.ln()
    }

    /// Marginal density of π_β along μ̂ at s (normalised), using the same 1-D integral.
    pub fn tempered_axis_density(&self, beta: f64, s: f64) -> f64 {
        self.tempered_axis_densities(beta, &[s])[0]
    }

    /// [`Self::tempered_axis_density`] on a grid (the normaliser computed once).
    pub fn tempered_axis_densities(&self, beta: f64, s: &[f64]) -> Vec<f64> {
        let log_norm = self.log_axis_integral(beta);
        s.iter()
            .map(|&x| (beta * (-0.5 * x * x + log_cosh(self.r * x + self.h)) - log_norm).exp())
            .collect()
    }
}

/// An isotropic Gaussian mixture π(x) = Σ_j ω_j N(x; ν_j, v_j I_d).
#[derive(Clone, Debug)]
pub struct IsotropicMixture {
    d: usize,
    means: Vec<Vec<f64>>,
    weights: Vec<f64>,
    variances: Vec<f64>,
    log_weights: Vec<f64>,
    axis: Vec<f64>,
    bimodal: Option<Bimodal>,
}

impl IsotropicMixture {
    /// A mixture with the given means, weights (positive, summing to 1) and variances (> 0).
    ///
    /// The "axis" used for marginals and outcomes is the direction of the first mean (e_1 if
    /// it is zero). Validation of user input happens in [`TargetConfig::validate`]; here violated
    /// preconditions are programming errors.
    pub fn new(means: Vec<Vec<f64>>, weights: Vec<f64>, variances: Vec<f64>) -> Self {
        assert!(!means.is_empty() && means.len() == weights.len());
        assert_eq!(means.len(), variances.len());
        let d = means[0].len();
        assert!(means.iter().all(|m| m.len() == d));
        let norm = means[0].iter().map(|v| v * v).sum::<f64>().sqrt();
        let mut axis = vec![0.0; d];
        if norm > 0.0 {
            for (a, m) in axis.iter_mut().zip(&means[0]) {
                *a = m / norm;
            }
        } else {
            axis[0] = 1.0;
        }
        let log_weights = weights.iter().map(|w| w.ln()).collect();
        Self {
            d,
            means,
            weights,
            variances,
            log_weights,
            axis,
            bimodal: None,
        }
    }

    /// The paper's target: w* N(μ*, I_d) + (1 − w*) N(−μ*, I_d) with μ* = R e_1.
    ///
    /// ```
    /// use annealvi::target::{IsotropicMixture, LogDensity};
    ///
    /// let pi = IsotropicMixture::bimodal(512, 3.0, 0.8);
    /// let (mut heavy, mut light) = (vec![0.0; 512], vec![0.0; 512]);
    /// heavy[0] = 3.0;
    /// light[0] = -3.0;
    /// // the heavy mode's density exceeds the light mode's by ln(w*/(1 − w*)) = ln 4
    /// // (up to the other mode's tail, e^{−2R²} ≈ 1.5e−8, relative)
    /// let gap = pi.log_density(&heavy) - pi.log_density(&light);
    /// assert!((gap - 4f64.ln()).abs() < 1e-6);
    /// ```
    pub fn bimodal(d: usize, r: f64, w_star: f64) -> Self {
        let mut mu = vec![0.0; d];
        mu[0] = r;
        let neg: Vec<f64> = mu.iter().map(|v| -v).collect();
        let mut t = Self::new(vec![mu, neg], vec![w_star, 1.0 - w_star], vec![1.0, 1.0]);
        t.axis = vec![0.0; d];
        t.axis[0] = 1.0;
        t.bimodal = Some(Bimodal {
            d,
            r,
            w_star,
            h: 0.5 * (w_star / (1.0 - w_star)).ln(),
        });
        t
    }

    /// The bimodal target along a unit direction μ̂: w* N(R μ̂, I_d) + (1 − w*) N(−R μ̂, I_d).
    /// Its law is the rotation of [`Self::bimodal`]'s, so ln Z_β and the axis marginals are
    /// the same; the Gaussian-mixture kernels (which reduce samples to s = x_1) refuse it
    /// (see [`crate::config`]), flows use it through the generic log-density.
    pub fn bimodal_along(axis: &[f64], r: f64, w_star: f64) -> Self {
        let d = axis.len();
        let norm = axis.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(
            d > 0 && norm > 0.0,
            "bimodal_along needs a non-zero direction"
        );
        let u: Vec<f64> = axis.iter().map(|v| v / norm).collect();
        let mu: Vec<f64> = u.iter().map(|v| r * v).collect();
        let neg: Vec<f64> = mu.iter().map(|v| -v).collect();
        let mut t = Self::new(vec![mu, neg], vec![w_star, 1.0 - w_star], vec![1.0, 1.0]);
        t.axis = u;
        t.bimodal = Some(Bimodal {
            d,
            r,
            w_star,
            h: 0.5 * (w_star / (1.0 - w_star)).ln(),
        });
        t
    }

    /// Whether μ̂ = e_1 (the convention of the Gaussian-mixture kernels and the theory).
    pub fn axis_is_e1(&self) -> bool {
        self.axis.first() == Some(&1.0) && self.axis[1..].iter().all(|&v| v == 0.0)
    }

    /// The bimodal structure, when this is the paper's target.
    pub fn as_bimodal(&self) -> Option<&Bimodal> {
        self.bimodal.as_ref()
    }

    /// Component means ν_j.
    pub fn means(&self) -> &[Vec<f64>] {
        &self.means
    }
    /// Component weights ω_j.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }
    /// Component variances v_j.
    pub fn variances(&self) -> &[f64] {
        &self.variances
    }
    /// ln ω_j.
    pub fn log_weights(&self) -> &[f64] {
        &self.log_weights
    }
    /// Unit axis μ̂ along which marginals and outcomes are measured.
    pub fn axis(&self) -> &[f64] {
        &self.axis
    }

    /// Index of the lightest mode (smallest weight; first on ties).
    pub fn lightest_mode(&self) -> usize {
        (0..self.weights.len())
            .min_by(|&a, &b| self.weights[a].total_cmp(&self.weights[b]))
            .unwrap_or(0)
    }

    /// ln Z_β of π^β when it is known: β = 1 (Z = 1), the bimodal target (1-D quadrature), a
    /// single component (closed form).
    pub fn log_z_tempered(&self, beta: f64) -> Option<f64> {
        if beta == 1.0 {
            return Some(0.0);
        }
        if let Some(b) = &self.bimodal {
            return Some(b.log_z_tempered(beta));
        }
        if self.means.len() == 1 {
            let d = self.d as f64;
            let v = self.variances[0];
            let two_pi_v = 2.0 * std::f64::consts::PI * v;
            return Some(-0.5 * beta * d * two_pi_v.ln() + 0.5 * d * (two_pi_v / beta).ln());
        }
        None
    }

    /// Marginal density of π along the unit vector `u` at s: Σ_j ω_j N(s; ν_j·u, v_j).
    pub fn axis_density(&self, u: &[f64], s: f64) -> f64 {
        self.means
            .iter()
            .zip(&self.weights)
            .zip(&self.variances)
            .map(|((m, w), v)| {
                let c: f64 = m.iter().zip(u).map(|(a, b)| a * b).sum();
                w * normal_pdf(s, c, *v)
            })
            .sum()
    }

    /// Log-terms a_j = ln ω_j + ln N(x; ν_j, v_j) and their log-sum-exp.
    fn component_logs(&self, x: &[f64], out: &mut [f64]) -> f64 {
        let d = self.d as f64;
        for (j, o) in out.iter_mut().enumerate() {
            let v = self.variances[j];
            let dist2: f64 = x
                .iter()
                .zip(&self.means[j])
                .map(|(a, b)| (a - b) * (a - b))
                .sum();
            *o = self.log_weights[j]
                - 0.5 * d * (2.0 * std::f64::consts::PI * v).ln()
                - 0.5 * dist2 / v;
        }
        log_sum_exp(out)
    }
}

impl LogDensity for IsotropicMixture {
    fn dim(&self) -> usize {
        self.d
    }

    fn log_density(&self, x: &[f64]) -> f64 {
        let mut a = vec![0.0; self.means.len()];
        self.component_logs(x, &mut a)
    }

    fn grad_log_density(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let mut a = vec![0.0; self.means.len()];
        let lse = self.component_logs(x, &mut a);
        grad.iter_mut().for_each(|g| *g = 0.0);
        for (j, aj) in a.iter().enumerate() {
            let r = (aj - lse).exp() / self.variances[j];
            for ((g, m), xi) in grad.iter_mut().zip(&self.means[j]).zip(x) {
                *g += r * (m - xi);
            }
        }
        lse
    }

    fn log_normalizer(&self) -> Option<f64> {
        Some(0.0)
    }
}

/// The tempered density π_β(x) ∝ π(x)^β (unnormalised: ln π_β = β ln π).
#[derive(Clone, Copy, Debug)]
pub struct Tempered<'a> {
    /// The base target π.
    pub target: &'a IsotropicMixture,
    /// Inverse temperature β ∈ (0, 1].
    pub beta: f64,
}

impl LogDensity for Tempered<'_> {
    fn dim(&self) -> usize {
        self.target.dim()
    }
    fn log_density(&self, x: &[f64]) -> f64 {
        self.beta * self.target.log_density(x)
    }
    fn grad_log_density(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let l = self.target.grad_log_density(x, grad);
        grad.iter_mut().for_each(|g| *g *= self.beta);
        self.beta * l
    }
    fn log_normalizer(&self) -> Option<f64> {
        self.target.log_z_tempered(self.beta)
    }
}

/// ln Σ exp(a_i), stable.
pub fn log_sum_exp(a: &[f64]) -> f64 {
    let m = a.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    m + a.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}

/// N(s; mean, var) in one dimension.
pub fn normal_pdf(s: f64, mean: f64, var: f64) -> f64 {
    (-(s - mean) * (s - mean) / (2.0 * var)).exp() / (2.0 * std::f64::consts::PI * var).sqrt()
}

/// Which target density.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// w* N(μ*, I) + (1 − w*) N(−μ*, I), μ* = R e_1.
    Bimodal,
    /// Σ_j ω_j N(ν_j, v_j I) with explicit means, weights, variances.
    Mixture,
    /// The 40-mode mixture GMM40 in d = 2 ([`benchmark::gmm40`]).
    Gmm40,
    /// Many Well: d/2 copies of the 2-D double well, d even (d = 32 in the literature;
    /// [`ManyWell`]). Not a mixture: RealNVP students only.
    ManyWell,
}

/// Direction of μ* for the bimodal target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// μ* = R e_1 (the paper's convention; every student).
    Axis,
    /// μ* = R (1, …, 1)/√d: the modes differ in every coordinate, so that every coupling of a
    /// RealNVP student sees them (flow students only; see docs/flows.md).
    Diagonal,
}

/// Target settings (the `[target]` section of a configuration). Every field is optional; an
/// absent `d` is 512 (the paper's setting), 2 for `kind = "gmm40"` and 32 for
/// `kind = "many_well"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "TargetSection")]
pub struct TargetConfig {
    /// `bimodal`, `mixture`, `gmm40` or `many_well`.
    pub kind: TargetKind,
    /// Direction of μ* (bimodal): `axis` (e_1) or `diagonal` ((1, …, 1)/√d, flows only).
    pub direction: Direction,
    /// Dimension d ∈ [1, 16777216] (default 512; gmm40: 2, its default; many_well: even,
    /// default 32).
    pub d: usize,
    /// R = ‖μ*‖ ≥ 0 (bimodal).
    pub r: f64,
    /// Weight w* ∈ (0, 1) of the mode at +μ* (bimodal).
    pub w_star: f64,
    /// Mixture means; each has at most d entries and is padded with zeros to length d.
    pub means: Vec<Vec<f64>>,
    /// Mixture weights (positive, summing to 1); empty = uniform.
    pub weights: Vec<f64>,
    /// Mixture variances (> 0); empty = all 1.
    pub variances: Vec<f64>,
}

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            kind: TargetKind::Bimodal,
            direction: Direction::Axis,
            d: 512,
            r: 3.0,
            w_star: 0.8,
            means: Vec::new(),
            weights: Vec::new(),
            variances: Vec::new(),
        }
    }
}

/// The `[target]` section as read: [`TargetConfig`] with `d` optional (its default depends on
/// the kind).
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TargetSection {
    kind: TargetKind,
    direction: Direction,
    d: Option<usize>,
    r: f64,
    w_star: f64,
    means: Vec<Vec<f64>>,
    weights: Vec<f64>,
    variances: Vec<f64>,
}

impl Default for TargetSection {
    fn default() -> Self {
        let t = TargetConfig::default();
        Self {
            kind: t.kind,
            direction: t.direction,
            d: None,
            r: t.r,
            w_star: t.w_star,
            means: t.means,
            weights: t.weights,
            variances: t.variances,
        }
    }
}

impl From<TargetSection> for TargetConfig {
    fn from(s: TargetSection) -> Self {
        let d = s.d.unwrap_or(match s.kind {
            TargetKind::Gmm40 => 2,
            TargetKind::ManyWell => 32,
            TargetKind::Bimodal | TargetKind::Mixture => TargetConfig::default().d,
        });
        Self {
            kind: s.kind,
            direction: s.direction,
            d,
            r: s.r,
            w_star: s.w_star,
            means: s.means,
            weights: s.weights,
            variances: s.variances,
        }
    }
}

impl TargetConfig {
    /// Checks every field of the section (fields named `target.…`); the first violation is
    /// returned. Whether the student can use the direction is checked by the whole
    /// configuration.
    pub fn validate(&self) -> Result<()> {
        if self.d == 0 {
            return Err(Error::config("target.d", self.d, "an integer ≥ 1"));
        }
        if self.d > 1 << 24 {
            return Err(Error::config("target.d", self.d, "an integer ≤ 16777216"));
        }
        match self.kind {
            TargetKind::Bimodal => {
                check::number_in("target.r", self.r, 0.0.., "a number ≥ 0")?;
                check::number_in(
                    "target.w_star",
                    self.w_star,
                    (Bound::Excluded(0.0), Bound::Excluded(1.0)),
                    "a number in (0, 1)",
                )
            }
            TargetKind::Gmm40 | TargetKind::ManyWell => {
                let (name, ok, want) = if self.kind == TargetKind::Gmm40 {
                    (
                        "gmm40",
                        self.d == 2,
                        "2 for target.kind = \"gmm40\" (a 2-D target)",
                    )
                } else {
                    (
                        "many_well",
                        self.d.is_multiple_of(2),
                        "an even integer ≥ 2 for target.kind = \"many_well\" (d/2 copies of \
                         the 2-D double well; 32 in the literature)",
                    )
                };
                if !ok {
                    return Err(Error::config("target.d", self.d, want));
                }
                if self.direction != Direction::Axis {
                    return Err(Error::config(
                        "target.direction",
                        "diagonal",
                        &format!("\"axis\" for kind = \"{name}\" (the target is fixed)"),
                    ));
                }
                if !self.means.is_empty() || !self.weights.is_empty() || !self.variances.is_empty()
                {
                    return Err(Error::config(
                        "target.means",
                        "given",
                        &format!(
                            "none (nor weights or variances) for kind = \"{name}\" (the target \
                             is fixed)"
                        ),
                    ));
                }
                Ok(())
            }
            TargetKind::Mixture => {
                if self.direction != Direction::Axis {
                    return Err(Error::config(
                        "target.direction",
                        "diagonal",
                        "\"axis\" for kind = \"mixture\" (the means give the directions)",
                    ));
                }
                if self.means.is_empty() {
                    return Err(Error::config(
                        "target.means",
                        "[]",
                        "at least one mean when target.kind = \"mixture\"",
                    ));
                }
                let n = self.means.len();
                check::means("target.means", &self.means, self.d)?;
                check::weights("target.weights", &self.weights, n)?;
                if self.variances.is_empty() {
                    return Ok(());
                }
                if self.variances.len() != n {
                    return Err(Error::config(
                        "target.variances",
                        format!("{} entries", self.variances.len()),
                        &format!("{n} entries (one per mean) or none"),
                    ));
                }
                for (j, v) in self.variances.iter().enumerate() {
                    check::positive(&format!("target.variances[{j}]"), *v)?;
                }
                Ok(())
            }
        }
    }

    /// The target π the section describes, after [`Self::validate`]; an error naming
    /// `target.kind` for Many Well, which is not a mixture (see [`Self::benchmark`]).
    pub fn init(&self) -> Result<IsotropicMixture> {
        self.validate()?;
        if self.kind == TargetKind::ManyWell {
            return Err(Error::config(
                "target.kind",
                "\"many_well\"",
                "a mixture target (\"bimodal\", \"mixture\" or \"gmm40\") here; Many Well \
                 trains RealNVP students only",
            ));
        }
        Ok(self.build())
    }

    /// The benchmark target for `kind = "gmm40"` or `"many_well"` (after validation), else
    /// `None`.
    pub fn benchmark(&self) -> Option<Benchmark> {
        match self.kind {
            TargetKind::Gmm40 => Some(Benchmark::Gmm40(benchmark::gmm40())),
            TargetKind::ManyWell => Some(Benchmark::ManyWell(ManyWell::new(self.d))),
            TargetKind::Bimodal | TargetKind::Mixture => None,
        }
    }

    /// The target π, without validation (for a section already validated).
    ///
    /// # Panics
    /// For `kind = "many_well"` (not a mixture): configurations refuse it wherever a mixture
    /// is needed, and flow runs build it with [`Self::benchmark`].
    pub(crate) fn build(&self) -> IsotropicMixture {
        match self.kind {
            TargetKind::Gmm40 => benchmark::gmm40(),
            TargetKind::ManyWell => {
                panic!("target.kind = \"many_well\" is not a mixture: use TargetConfig::benchmark")
            }
            TargetKind::Bimodal => match self.direction {
                Direction::Axis => IsotropicMixture::bimodal(self.d, self.r, self.w_star),
                Direction::Diagonal => {
                    let u = vec![1.0 / (self.d as f64).sqrt(); self.d];
                    IsotropicMixture::bimodal_along(&u, self.r, self.w_star)
                }
            },
            TargetKind::Mixture => {
                let n = self.means.len();
                let means = self.means.iter().map(|m| check::pad(m, self.d)).collect();
                let weights = if self.weights.is_empty() {
                    vec![1.0 / n as f64; n]
                } else {
                    self.weights.clone()
                };
                let variances = if self.variances.is_empty() {
                    vec![1.0; n]
                } else {
                    self.variances.clone()
                };
                IsotropicMixture::new(means, weights, variances)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bimodal_along_a_direction_is_the_rotated_target() {
        let d = 6;
        let e1 = IsotropicMixture::bimodal(d, 3.0, 0.8);
        let u = vec![1.0 / (d as f64).sqrt(); d];
        let diag = IsotropicMixture::bimodal_along(&u, 3.0, 0.8);
        assert!(e1.axis_is_e1() && !diag.axis_is_e1());
        // a reflection H mapping e_1 to u: H x = x − 2 (v·x) v / (v·v), v = e_1 − u
        let mut v = u.iter().map(|a| -a).collect::<Vec<f64>>();
        v[0] += 1.0;
        let vv: f64 = v.iter().map(|a| a * a).sum();
        for k in 0..5 {
            let x: Vec<f64> = (0..d)
                .map(|i| ((i * 7 + k * 3) as f64 * 0.37).sin() * 2.5)
                .collect();
            let vx: f64 = v.iter().zip(&x).map(|(a, b)| a * b).sum();
            let hx: Vec<f64> = x
                .iter()
                .zip(&v)
                .map(|(a, b)| a - 2.0 * vx * b / vv)
                .collect();
            let (a, b) = (e1.log_density(&x), diag.log_density(&hx));
            assert!((a - b).abs() < 1e-10, "{a} vs {b}");
        }
        assert_eq!(e1.log_z_tempered(0.3), diag.log_z_tempered(0.3));
        assert_eq!(diag.axis(), &u[..]);
    }

    /// Brute force: explicit Gaussian densities, summed, then raised to β.
    fn brute_log_tempered(x: &[f64], r: f64, w: f64, beta: f64) -> f64 {
        let d = x.len() as f64;
        let c = (2.0 * std::f64::consts::PI).powf(-d / 2.0);
        let p_plus: f64 = (-0.5
            * x.iter()
                .enumerate()
                .map(|(i, v)| (v - if i == 0 { r } else { 0.0 }).powi(2))
                .sum::<f64>())
        .exp();
        let p_minus: f64 = (-0.5
            * x.iter()
                .enumerate()
                .map(|(i, v)| (v + if i == 0 { r } else { 0.0 }).powi(2))
                .sum::<f64>())
        .exp();
        beta * (c * (w * p_plus + (1.0 - w) * p_minus)).ln()
    }

    #[test]
    fn tempered_log_density_and_gradient_match_brute_force() {
        let t = IsotropicMixture::bimodal(5, 3.0, 0.8);
        let b = *t.as_bimodal().unwrap();
        for (k, beta) in [1.0, 0.3, 0.01].into_iter().enumerate() {
            let tb = Tempered { target: &t, beta };
            let x: Vec<f64> = (0..5).map(|i| ((i + k) as f64 * 0.7).sin() * 2.0).collect();
            let want = brute_log_tempered(&x, 3.0, 0.8, beta);
            assert!((tb.log_density(&x) - want).abs() < 1e-12);
            let norm2: f64 = x.iter().map(|v| v * v).sum();
            assert!((beta * b.log_density_reduced(x[0], norm2) - want).abs() < 1e-12);
            let mut g = vec![0.0; 5];
            tb.grad_log_density(&x, &mut g);
            for i in 0..5 {
                let h = 1e-6;
                let mut xp = x.clone();
                xp[i] += h;
                let mut xm = x.clone();
                xm[i] -= h;
                let fd = (brute_log_tempered(&xp, 3.0, 0.8, beta)
                    - brute_log_tempered(&xm, 3.0, 0.8, beta))
                    / (2.0 * h);
                assert!((g[i] - fd).abs() < 1e-7, "i={i} {} {fd}", g[i]);
            }
            // the closed form ∇ ln π = −x + R tanh(R s + h) μ̂
            let closed0 = beta * (-x[0] + 3.0 * (3.0 * x[0] + b.h).tanh());
            assert!((g[0] - closed0).abs() < 1e-12);
        }
    }

    #[test]
    fn tempered_normaliser_matches_brute_force_integration() {
        // d = 2: integrate π^β on a fine grid.
        let t = IsotropicMixture::bimodal(2, 3.0, 0.8);
        for beta in [1.0, 0.5, 0.05] {
            let (lo, hi, n) = (-60.0, 60.0, 2401);
            let h = (hi - lo) / (n - 1) as f64;
            let mut sum = 0.0;
            for i in 0..n {
                for j in 0..n {
                    let x = [lo + h * i as f64, lo + h * j as f64];
                    sum += brute_log_tempered(&x, 3.0, 0.8, beta).exp();
                }
            }
            let want = (sum * h * h).ln();
            let got = t.as_bimodal().unwrap().log_z_tempered(beta);
            assert!((got - want).abs() < 1e-8, "beta={beta}: {got} vs {want}");
        }
        assert_eq!(t.log_z_tempered(1.0), Some(0.0));
        assert!(t.as_bimodal().unwrap().log_z_tempered(1.0).abs() < 1e-12);
    }

    #[test]
    fn tempered_axis_density_is_normalised() {
        let t = IsotropicMixture::bimodal(3, 3.0, 0.8);
        let b = t.as_bimodal().unwrap();
        for beta in [1.0, 0.2, 0.02] {
            let rule = composite_gauss_legendre(
                16,
                &(0..=80).map(|i| -80.0 + 2.0 * i as f64).collect::<Vec<_>>(),
            );
            let total = rule.integrate(|s| b.tempered_axis_density(beta, s));
            assert!((total - 1.0).abs() < 1e-10, "beta={beta}: {total}");
        }
        // at β = 1 it is the mixture's own marginal
        let s = 0.37;
        assert!((b.tempered_axis_density(1.0, s) - t.axis_density(t.axis(), s)).abs() < 1e-12);
    }
}
