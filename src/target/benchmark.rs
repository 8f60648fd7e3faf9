//! Benchmark targets from the sampling literature, with exact log-densities, gradients,
//! normalisers and samplers, and the mode-coverage metrics reported for them (see
//! docs/benchmarks.md).
//!
//! * **GMM40** ([`gmm40`]): the 40-mode mixture of Midgley et al. (2023) and Blessing et al.
//!   (2024) in d = 2: 40 equal weights, unit-variance components, means uniform on
//!   [−40, 40]². The means ([`GMM40_MEANS`]) are our own draw: [`gmm40_draw`] with seed
//!   [`GMM40_SEED`], rounded to two decimals (`cargo run --example gmm40_means` prints them).
//! * **Many Well** ([`ManyWell`]): d/2 independent copies of the double well
//!   ln p(x₁, x₂) = −x₁⁴ + 6x₁² + ½x₁ − ½x₂² (unnormalised), 2^{d/2} modes; d = 32 in the
//!   literature. Copy c holds the coordinates (x_{2c}, x_{2c+1}). Its normaliser is
//!   ln Z = (d/2)(ln I + ½ ln 2π) with I = ∫ exp(−x⁴ + 6x² + x/2) dx by Gauss–Legendre panels.
//!
//! [`Benchmark::metrics`] turns samples x_i ~ q with their ln q(x_i) into
//! [`BenchmarkMetrics`]: modes covered and EMC (GMM40), per-copy well masses (Many Well),
//! the reverse ESS and the error of the importance-sampling estimate of ln Z.

use super::{IsotropicMixture, LogDensity, log_sum_exp};
use crate::quadrature::composite_gauss_legendre;
use crate::seed::{Purpose, stream};
use rand::{Rng, RngCore};
use serde::Serialize;

/// The seed of our draw of the GMM40 means ([`gmm40_draw`]).
pub const GMM40_SEED: u64 = 40;

/// Half-width of the GMM40 box: means are uniform on [−40, 40]².
pub const GMM40_BOX: f64 = 40.0;

/// A GMM40 mode counts as covered when at least this fraction of the samples is nearest to it.
pub const GMM40_COVERED_FRACTION: f64 = 0.01;

/// The 40 means of GMM40: `gmm40_draw(GMM40_SEED)`, rounded to two decimals.
pub const GMM40_MEANS: [[f64; 2]; 40] = [
    [-13.71, -31.41],
    [-3.99, 0.17],
    [-15.41, 5.58],
    [-16.48, -11.05],
    [-26.66, 1.58],
    [16.6, -38.46],
    [-9.87, -5.01],
    [19.42, 27.09],
    [2.42, 38.82],
    [39.57, -5.39],
    [-28.09, 21.28],
    [33.6, -32.71],
    [-2.61, 22.42],
    [26.24, -19.76],
    [-31.29, 1.45],
    [27.11, 14.54],
    [3.11, 13.93],
    [9.97, -32.46],
    [-39.25, -23.49],
    [10.11, -16.19],
    [-4.44, 12.71],
    [15.46, -19.37],
    [-18.59, 7.78],
    [35.04, 28.02],
    [34.46, 15.82],
    [32.43, 7.05],
    [-12.37, 31.63],
    [29.31, 34.2],
    [21.23, -14.8],
    [-9.81, -19.26],
    [-1.75, -5.37],
    [-2.19, -26.16],
    [-4.1, 33.71],
    [11.95, 26.68],
    [18.5, 25.89],
    [-3.51, -27.21],
    [38.88, 33.51],
    [-13.41, -30.34],
    [4.77, 10.46],
    [-25.91, -19.44],
];

/// 40 points uniform on [−40, 40]² from stream (`seed`, 0, Init): each coordinate is
/// −40 + 80 u with u = (r >> 11) 2⁻⁵³ from one 64-bit output r, x then y, rounded to two
/// decimals. [`GMM40_MEANS`] is `gmm40_draw(GMM40_SEED)`.
pub fn gmm40_draw(seed: u64) -> Vec<[f64; 2]> {
    let mut rng = stream(seed, 0, Purpose::Init);
    let mut coord = || {
        let u = (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
        let v = -GMM40_BOX + 2.0 * GMM40_BOX * u;
        (v * 100.0).round() / 100.0
    };
    (0..40).map(|_| [coord(), coord()]).collect()
}

/// The GMM40 target: Σ_j (1/40) N(x; ν_j, I_2), ν_j = [`GMM40_MEANS`] (normalised, ln Z = 0).
pub fn gmm40() -> IsotropicMixture {
    let means = GMM40_MEANS.iter().map(|m| m.to_vec()).collect();
    IsotropicMixture::new(means, vec![1.0 / 40.0; 40], vec![1.0; 40])
}

/// The double well's log-density in x₁ (unnormalised): −x⁴ + 6x² + x/2.
pub fn double_well(x: f64) -> f64 {
    let x2 = x * x;
    -x2 * x2 + 6.0 * x2 + 0.5 * x
}

/// d/dx of [`double_well`]: −4x³ + 12x + 1/2.
fn double_well_grad(x: f64) -> f64 {
    -4.0 * x * x * x + 12.0 * x + 0.5
}

/// Rejection sampling of x₁ draws uniformly on [−L, L]; outside, the density is below
/// exp(−150) of its peak (truncation error < 1e−60 in probability).
const WELL_SUPPORT: f64 = 4.0;

/// The Many Well target: `d/2` independent copies of the 2-D double well (module docs).
#[derive(Clone, Debug, PartialEq)]
pub struct ManyWell {
    d: usize,
    /// ln I, I = ∫ exp(double_well(x)) dx.
    log_i: f64,
    /// Target mass of the right well (x₁ > 0) of each copy.
    right_mass: f64,
    /// max_x double_well(x) (for rejection sampling).
    peak: f64,
}

impl ManyWell {
    /// The target on R^d; `d` must be even and ≥ 2 (checked by the configuration;
    /// here a violation is a programming error).
    pub fn new(d: usize) -> Self {
        assert!(
            d >= 2 && d.is_multiple_of(2),
            "Many Well needs an even d ≥ 2"
        );
        let (left, right) = well_integrals();
        // the global maximum of the double well lies in the right well (the ½x tilt); Newton
        // from x = √3 on the derivative, then the larger of the two wells' maxima
        let newton = |mut x: f64| {
            for _ in 0..50 {
                x -= double_well_grad(x) / (-12.0 * x * x + 12.0);
            }
            x
        };
        let peak = double_well(newton(3f64.sqrt())).max(double_well(newton(-(3f64.sqrt()))));
        Self {
            d,
            log_i: (left + right).ln(),
            right_mass: right / (left + right),
            peak,
        }
    }

    /// The literature's Many Well: d = 32 (16 copies, 65 536 modes).
    pub fn d32() -> Self {
        Self::new(32)
    }

    /// Number of copies d/2.
    pub fn copies(&self) -> usize {
        self.d / 2
    }

    /// ln I = ln ∫ exp(−x⁴ + 6x² + x/2) dx (one copy's x₁ integral).
    pub fn log_well_integral(&self) -> f64 {
        self.log_i
    }

    /// ln Z of one copy: ln I + ½ ln 2π.
    pub fn log_z_copy(&self) -> f64 {
        self.log_i + 0.5 * (2.0 * std::f64::consts::PI).ln()
    }

    /// ln Z = (d/2) (ln I + ½ ln 2π).
    pub fn log_z(&self) -> f64 {
        self.copies() as f64 * self.log_z_copy()
    }

    /// The exact mass of each copy's right well (x₁ > 0); the left well holds the rest.
    pub fn right_well_mass(&self) -> f64 {
        self.right_mass
    }

    /// One exact sample into `x` (length d): x₂ ~ N(0, 1) x₁ by rejection
    /// from the uniform law on [−4, 4] (acceptance ≈ 7.6%).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, x: &mut [f64]) {
        assert_eq!(x.len(), self.d);
        for c in 0..self.copies() {
            x[2 * c] = loop {
                let u: f64 = rng.r#gen();
                let y = WELL_SUPPORT * (2.0 * u - 1.0);
                let a: f64 = rng.r#gen();
                if a.ln() < double_well(y) - self.peak {
                    break y;
                }
            };
            x[2 * c + 1] = standard_normal(rng);
        }
    }
}

/// (∫_{x<0}, ∫_{x>0}) exp(double_well(x)) dx by 16-point Gauss–Legendre on 0.05-wide panels
/// over [−6, 6] (beyond, the integrand is below e^{−1000}).
fn well_integrals() -> (f64, f64) {
    let half = |a: f64, b: f64| {
        let breaks: Vec<f64> = (0..=120).map(|i| a + (b - a) * i as f64 / 120.0).collect();
        composite_gauss_legendre(16, &breaks).integrate(|x| double_well(x).exp())
    };
    (half(-6.0, 0.0), half(0.0, 6.0))
}

impl LogDensity for ManyWell {
    fn dim(&self) -> usize {
        self.d
    }

    fn log_density(&self, x: &[f64]) -> f64 {
        x.chunks_exact(2)
            .map(|p| double_well(p[0]) - 0.5 * p[1] * p[1])
            .sum()
    }

    fn grad_log_density(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        let mut lp = 0.0;
        for (p, g) in x.chunks_exact(2).zip(grad.chunks_exact_mut(2)) {
            lp += double_well(p[0]) - 0.5 * p[1] * p[1];
            g[0] = double_well_grad(p[0]);
            g[1] = -p[1];
        }
        lp
    }

    fn log_normalizer(&self) -> Option<f64> {
        Some(self.log_z())
    }
}

/// A benchmark target (`target.kind = "gmm40"` or `"many_well"`).
#[derive(Clone, Debug)]
pub enum Benchmark {
    /// GMM40 ([`gmm40`]).
    Gmm40(IsotropicMixture),
    /// Many Well ([`ManyWell`]).
    ManyWell(ManyWell),
}

impl Benchmark {
    /// The target as a log-density.
    pub fn density(&self) -> &dyn LogDensity {
        match self {
            Benchmark::Gmm40(t) => t,
            Benchmark::ManyWell(t) => t,
        }
    }

    /// The exact ln Z of the density [`Self::density`] evaluates (0 for GMM40).
    pub fn log_z(&self) -> f64 {
        match self {
            Benchmark::Gmm40(_) => 0.0,
            Benchmark::ManyWell(t) => t.log_z(),
        }
    }

    /// One exact sample of the target into `x`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R, x: &mut [f64]) {
        match self {
            Benchmark::Gmm40(t) => {
                let j = rng.gen_range(0..t.means().len());
                for (xi, m) in x.iter_mut().zip(&t.means()[j]) {
                    *xi = m + standard_normal(rng);
                }
            }
            Benchmark::ManyWell(t) => t.sample(rng, x),
        }
    }

    /// `n` exact samples (n × d, row-major) and their normalised log-densities ln p(x) − ln Z
    /// (the ln q of q = p).
    pub fn sample_n<R: Rng + ?Sized>(&self, rng: &mut R, n: usize) -> (Vec<f64>, Vec<f64>) {
        let d = self.density().dim();
        let mut x = vec![0.0; n * d];
        let lz = self.log_z();
        let lq = x
            .chunks_exact_mut(d)
            .map(|xi| {
                self.sample(rng, xi);
                self.density().log_density(xi) - lz
            })
            .collect();
        (x, lq)
    }

    /// The metrics of the samples `x` (n × d, row-major) of a distribution q, with
    /// `log_q[i]` = ln q(x_i) (see [`BenchmarkMetrics`]).
    pub fn metrics(&self, x: &[f64], log_q: &[f64]) -> BenchmarkMetrics {
        let n = log_q.len();
        let d = self.density().dim();
        assert_eq!(x.len(), n * d);
        let log_w: Vec<f64> = x
            .chunks_exact(d)
            .zip(log_q)
            .map(|(xi, lq)| self.density().log_density(xi) - lq)
            .collect();
        let nf = n.max(1) as f64;
        let log_z = self.log_z();
        let log_z_estimate = log_sum_exp(&log_w) - nf.ln();
        let kl = -log_w.iter().sum::<f64>() / nf + log_z;
        let mut m = BenchmarkMetrics {
            samples: n,
            reverse_ess: reverse_ess(&log_w),
            log_z,
            log_z_estimate,
            log_z_error: (log_z_estimate - log_z).abs(),
            kl,
            modes: None,
            modes_covered: None,
            emc: None,
            mode_masses: None,
            right_well_mass: None,
            right_well_mass_target: None,
            well_mass_error: None,
        };
        match self {
            Benchmark::Gmm40(t) => {
                let k = t.means().len();
                let mut counts = vec![0usize; k];
                for xi in x.chunks_exact(d) {
                    counts[nearest(xi, t.means())] += 1;
                }
                let masses: Vec<f64> = counts.iter().map(|&c| c as f64 / nf).collect();
                let entropy: f64 = masses
                    .iter()
                    .filter(|&&p| p > 0.0)
                    .map(|p| -p * p.ln())
                    .sum();
                m.modes = Some(k);
                m.modes_covered = Some(
                    masses
                        .iter()
                        .filter(|&&p| p >= GMM40_COVERED_FRACTION)
                        .count(),
                );
                m.emc = Some(entropy / (k as f64).ln());
                m.mode_masses = Some(masses);
            }
            Benchmark::ManyWell(t) => {
                let c = t.copies();
                let mut right = vec![0usize; c];
                for xi in x.chunks_exact(d) {
                    for (k, r) in right.iter_mut().enumerate() {
                        if xi[2 * k] > 0.0 {
                            *r += 1;
                        }
                    }
                }
                let masses: Vec<f64> = right.iter().map(|&r| r as f64 / nf).collect();
                let want = t.right_well_mass();
                m.well_mass_error =
                    Some(masses.iter().map(|p| (p - want).abs()).fold(0.0, f64::max));
                m.right_well_mass = Some(masses);
                m.right_well_mass_target = Some(want);
            }
        }
        m
    }
}

/// One N(0, 1) draw (Box–Muller, cosine branch).
fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> f64 {
    let (u1, u2): (f64, f64) = (rng.r#gen(), rng.r#gen());
    (-2.0 * (1.0 - u1).ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The index of the centre nearest to `x` (Euclidean; first on ties).
fn nearest(x: &[f64], centres: &[Vec<f64>]) -> usize {
    let d2 = |c: &[f64]| x.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum::<f64>();
    (0..centres.len())
        .min_by(|&a, &b| d2(&centres[a]).total_cmp(&d2(&centres[b])))
        .unwrap_or(0)
}

/// The importance-sampling ESS fraction (Σ w_i)² / (N Σ w_i²) from ln w_i (shifted by their
/// maximum); NaN when Σ w_i² is 0 or there are no weights.
pub fn reverse_ess(log_w: &[f64]) -> f64 {
    let mx = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let (mut s1, mut s2) = (0.0, 0.0);
    for lw in log_w {
        let w = (lw - mx).exp();
        s1 += w;
        s2 += w * w;
    }
    if s2 > 0.0 && s2.is_finite() {
        s1 * s1 / (s2 * log_w.len() as f64)
    } else {
        f64::NAN
    }
}

/// The metrics of N samples x_i ~ q against a benchmark target p (ln w_i = ln p̃(x_i) −
/// ln q(x_i), p̃ the unnormalised density, Z its exact normaliser; docs/benchmarks.md):
///
/// * `reverse_ess` = (Σ w_i)² / (N Σ w_i²) ∈ (0, 1] (1 when q = p);
/// * `log_z_estimate` = ln((1/N) Σ w_i), `log_z_error` = |log_z_estimate − ln Z|;
/// * `kl` = (1/N) Σ [ln q(x_i) − ln p̃(x_i)] + ln Z (estimate of KL(q‖p));
/// * GMM40: `mode_masses` (fraction of samples nearest to each mean), `modes_covered` (the
///   modes with mass ≥ 1%), `emc` = −Σ_j m_j ln m_j / ln 40 (entropic mode coverage);
/// * Many Well: `right_well_mass[c]` (fraction of samples with x₁ > 0 in copy c), the
///   target's exact value, and `well_mass_error` = max_c |`right_well_mass[c]` − target|.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BenchmarkMetrics {
    /// N.
    pub samples: usize,
    /// Importance-sampling ESS / N of p/q with samples from q.
    pub reverse_ess: f64,
    /// The exact ln Z.
    pub log_z: f64,
    /// ln of the mean importance weight.
    pub log_z_estimate: f64,
    /// |log_z_estimate − ln Z|.
    pub log_z_error: f64,
    /// Estimate of KL(q‖p) (nats).
    pub kl: f64,
    /// GMM40: the number of modes (40).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modes: Option<usize>,
    /// GMM40: modes holding ≥ 1% of the samples (nearest mean).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modes_covered: Option<usize>,
    /// GMM40: entropy of the sample-to-nearest-mode histogram / ln 40.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub emc: Option<f64>,
    /// GMM40: fraction of the samples nearest to each mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode_masses: Option<Vec<f64>>,
    /// Many Well: fraction of the samples in each copy's right well (x₁ > 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub right_well_mass: Option<Vec<f64>>,
    /// Many Well: the target's exact right-well mass (the same for every copy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub right_well_mass_target: Option<f64>,
    /// Many Well: max over copies of |right_well_mass − target|.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub well_mass_error: Option<f64>,
}
