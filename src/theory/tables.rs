//! Interpolation tables for the two one-dimensional integrals of the quasi-static ODE.
//!
//! With equal variances σ_1 = σ_2 = σ (the quasi-static model σ² = 1/β), the right-hand side
//! of the summary-statistics ODE (docs/theory.md §8) needs only
//!
//! * T(a, b) = E tanh(a + bY), Y ~ N(0, 1), at a = R m_k + h, b = R σ (the target's pull), and
//! * ψ(ρ) = Γ(ρ)/ρ with Γ(ρ) = Σ_k w_k E_u[sigmoid(y_k)(ρ + u)],
//!   y_k = ln(w_l/w_k) − ρ²/2 − ρu, u ~ N(0, 1), ρ = D/σ (the mixture entropy's repulsion:
//!   ∂(Σ_k w_k H_k)/∂D = −Γ(ρ)/σ, docs/theory.md §3 with σ_k = σ_l).
//!
//! Both are smooth functions that the exact objective computes by quadrature in ~3 µs
//! (T, 200 nodes) and ~10 µs (Γ, 401 nodes). The ODE Monte Carlo evaluates them ~10⁹ times,
//! so they are tabulated once and interpolated with tensor-product 4-point (cubic) Lagrange
//! interpolation, error O(h⁴):
//!
//! * T for b ≥ 2 as T = erf(z/√2) + ρ_T(z, ν) in z = a/b ∈ [−10, 10] (step 1/40) and
//!   ν = 1/b ∈ [0, ½] (step 1/200). The remainder ρ_T = E[tanh − sign](a + bY) is
//!   −ν² φ'(z) ∫x(tanh x − sign x)dx + O(ν⁴): analytic and small. Beyond |z| = 10 it is below
//!   1e-20. For b < 2 (β > 4/R²) T is computed directly (161-node trapezoid, ~1 µs).
//! * ψ(ρ) on [0, 30] (step 1/100); ψ(0) = w_1 w_2 (the quadratic term of the mixture
//!   entropy), and ψ < 1e-40 beyond ρ = 30.
//!
//! Tests compare both tables with the quadratures of [`crate::gauss1d`] and
//! [`crate::objective`] (T to 5e-9, ψ to 1e-9).

use crate::gauss1d::log_cosh_moments;
use crate::quadrature::{Rule, standard_normal};
use std::sync::OnceLock;

/// Weights of 4-point Lagrange interpolation at fractional position t ∈ [0, 1) between the
/// 2nd and 3rd of four equispaced nodes (−1, 0, 1, 2).
#[inline]
fn lagrange4(t: f64) -> [f64; 4] {
    let (a, b, c, d) = (t + 1.0, t, t - 1.0, t - 2.0);
    [
        -b * c * d / 6.0,
        a * c * d / 2.0,
        -a * b * d / 2.0,
        a * b * c / 6.0,
    ]
}

/// Index of the first of the four nodes and the fractional position, for x on a uniform grid
/// x0 + i h, i = 0..n, clamped so that all four nodes exist.
#[inline]
fn locate(x: f64, x0: f64, h: f64, n: usize) -> (usize, f64) {
    let u = (x - x0) / h;
    let i = (u.floor() as isize).clamp(1, n as isize - 3) as usize;
    (i - 1, u - i as f64)
}

/// T(a, b) = E tanh(a + bY), Y ~ N(0, 1), for b ≥ 0.
#[derive(Debug)]
pub struct TanhTable {
    z0: f64,
    hz: f64,
    nz: usize,
    hn: f64,
    nn: usize,
    /// ρ_T on the grid, row-major in ν: rem[j·nz + i] at (z_i, ν_j).
    rem: Vec<f64>,
}

const Z_MAX: f64 = 10.0;
const NU_MAX: f64 = 0.5;

impl TanhTable {
    /// The shared table (built on first use, ~0.3 s).
    pub fn get() -> &'static TanhTable {
        static T: OnceLock<TanhTable> = OnceLock::new();
        T.get_or_init(Self::build)
    }

    fn build() -> Self {
        use rayon::prelude::*;
        let hz = 1.0 / 40.0;
        let hn = 1.0 / 200.0;
        // two extra nodes beyond each end so interpolation near the ends stays centred
        let z0 = -Z_MAX - 2.0 * hz;
        let nz = (2.0 * Z_MAX / hz).round() as usize + 5;
        let nn = (NU_MAX / hn).round() as usize + 3;
        let rem: Vec<f64> = (0..nn * nz)
            .into_par_iter()
            .map(|k| {
                let (j, i) = (k / nz, k % nz);
                let z = z0 + i as f64 * hz;
                let nu = j as f64 * hn;
                if nu == 0.0 {
                    0.0
                } else {
                    let b = 1.0 / nu;
                    log_cosh_moments(z * b, b).tanh - libm::erf(z / std::f64::consts::SQRT_2)
                }
            })
            .collect();
        Self {
            z0,
            hz,
            nz,
            hn,
            nn,
            rem,
        }
    }

    /// E tanh(a + bY).
    #[inline]
    pub fn eval(&self, a: f64, b: f64) -> f64 {
        if b < 1.0 / NU_MAX {
            return direct_tanh(a, b);
        }
        let nu = 1.0 / b;
        let z = a * nu;
        let base = libm::erf(z / std::f64::consts::SQRT_2);
        if z.abs() > Z_MAX {
            return base;
        }
        let (i, tz) = locate(z, self.z0, self.hz, self.nz);
        let (j, tn) = locate(nu, -self.hn, self.hn, self.nn + 1);
        // ν grid starts at 0 = index 0; `locate` above used a grid shifted by one node so that
        // ν near 0 still has a node on each side: mirror it (ρ_T is even in ν).
        let wz = lagrange4(tz);
        let wn = lagrange4(tn);
        let mut acc = 0.0;
        for (b, &wb) in wn.iter().enumerate() {
            let jj = (j + b) as isize - 1;
            let row = jj.unsigned_abs();
            let r = &self.rem[row * self.nz + i..row * self.nz + i + 4];
            acc += wb * (wz[0] * r[0] + wz[1] * r[1] + wz[2] * r[2] + wz[3] * r[3]);
        }
        base + acc
    }

    /// (E tanh(a_1 + bY), E tanh(a_2 + bY)): [`Self::eval`] at two points of the same width,
    /// sharing the interpolation weights in ν = 1/b (the same numbers as two calls).
    #[inline]
    pub fn eval2(&self, a1: f64, a2: f64, b: f64) -> (f64, f64) {
        if b < 1.0 / NU_MAX {
            return (direct_tanh(a1, b), direct_tanh(a2, b));
        }
        let nu = 1.0 / b;
        let (j, tn) = locate(nu, -self.hn, self.hn, self.nn + 1);
        let wn = lagrange4(tn);
        let one = |a: f64| -> f64 {
            let z = a * nu;
            let base = libm::erf(z / std::f64::consts::SQRT_2);
            if z.abs() > Z_MAX {
                return base;
            }
            let (i, tz) = locate(z, self.z0, self.hz, self.nz);
            let wz = lagrange4(tz);
            let mut acc = 0.0;
            for (b, &wb) in wn.iter().enumerate() {
                let jj = (j + b) as isize - 1;
                let row = jj.unsigned_abs();
                let r = &self.rem[row * self.nz + i..row * self.nz + i + 4];
                acc += wb * (wz[0] * r[0] + wz[1] * r[1] + wz[2] * r[2] + wz[3] * r[3]);
            }
            base + acc
        };
        (one(a1), one(a2))
    }
}

/// E tanh(a + bY) by the 161-node trapezoid of [`crate::gauss1d`] (for small b).
fn direct_tanh(a: f64, b: f64) -> f64 {
    static R: OnceLock<Rule> = OnceLock::new();
    let r = R.get_or_init(|| standard_normal(161, 9.0));
    let mut t = 0.0;
    for (&xi, &w) in r.x.iter().zip(&r.w) {
        t += w * (a + b * xi).tanh();
    }
    t
}

/// ψ(ρ) = Γ(ρ)/ρ for fixed weights (w_1, 1 − w_1): the entropy repulsion of two equal-σ
/// components at distance D = ρσ is ∂(Σ w_k H_k)/∂D = −ρ ψ(ρ)/σ.
#[derive(Debug, Clone)]
pub struct EntropyTable {
    w1: f64,
    h: f64,
    psi: Vec<f64>,
}

const RHO_MAX: f64 = 30.0;

impl EntropyTable {
    /// Tabulates ψ for component weights (w1, 1 − w1), 0 < w1 < 1 (~0.1 s).
    pub fn new(w1: f64) -> Self {
        use rayon::prelude::*;
        let h = 1.0 / 100.0;
        let n = (RHO_MAX / h).round() as usize + 4;
        let rule = standard_normal(1201, 15.0);
        let psi = (0..n)
            .into_par_iter()
            .map(|i| {
                let rho = i as f64 * h;
                if rho == 0.0 {
                    w1 * (1.0 - w1)
                } else {
                    gamma(w1, rho, &rule) / rho
                }
            })
            .collect();
        Self { w1, h, psi }
    }

    /// The weight w_1 the table was built for.
    pub fn w1(&self) -> f64 {
        self.w1
    }

    /// ψ(ρ) (even in ρ).
    #[inline]
    pub fn eval(&self, rho: f64) -> f64 {
        let rho = rho.abs();
        if rho >= RHO_MAX {
            return 0.0;
        }
        let u = rho / self.h;
        let i = u.floor() as usize;
        let w = lagrange4(u - i as f64);
        let at = |k: isize| self.psi[k.unsigned_abs()];
        let i = i as isize;
        w[0] * at(i - 1) + w[1] * at(i) + w[2] * at(i + 1) + w[3] * at(i + 2)
    }
}

/// Γ(ρ) = Σ_k w_k E_u[sigmoid(y_k)(ρ + u)], y_k = ln(w_l/w_k) − ρ²/2 − ρu, by quadrature.
pub fn gamma(w1: f64, rho: f64, rule: &Rule) -> f64 {
    let w = [w1, 1.0 - w1];
    let mut g = 0.0;
    for k in 0..2 {
        let c0 = (w[1 - k] / w[k]).ln() - 0.5 * rho * rho;
        let mut e = 0.0;
        for (&u, &wu) in rule.x.iter().zip(&rule.w) {
            let y = c0 - rho * u;
            let sig = if y >= 0.0 {
                1.0 / (1.0 + (-y).exp())
            } else {
                let e = y.exp();
                e / (1.0 + e)
            };
            e += wu * sig * (rho + u);
        }
        g += w[k] * e;
    }
    g
}

#[cfg(test)]
mod tests {

    #[test]
    fn eval2_is_two_evals() {
        let t = TanhTable::get();
        for b in [0.5, 1.9, 2.0, 3.0, 9.5, 300.0] {
            for (a1, a2) in [(0.0, 1.0), (-3.2, 7.5), (25.0, -0.01), (1e3, -1e3)] {
                let (x, y) = t.eval2(a1, a2, b);
                assert_eq!(
                    (x.to_bits(), y.to_bits()),
                    (t.eval(a1, b).to_bits(), t.eval(a2, b).to_bits())
                );
            }
        }
    }

    use super::*;

    #[test]
    fn tanh_table_matches_quadrature() {
        let t = TanhTable::get();
        let mut worst = 0.0f64;
        for i in 0..400 {
            // deterministic scatter over a ∈ [−60, 60], b ∈ [0.3, 200]
            let u = (i as f64 * 0.618_033_988_75).fract();
            let v = (i as f64 * 0.414_213_562_37).fract();
            let b = 0.3 * (200.0f64 / 0.3).powf(v);
            let a = (2.0 * u - 1.0) * (3.0 * b).min(60.0);
            let want = log_cosh_moments(a, b).tanh;
            worst = worst.max((t.eval(a, b) - want).abs());
        }
        assert!(worst < 5e-9, "worst error {worst:e}");
    }

    #[test]
    fn entropy_table_matches_exact_objective_and_limits() {
        for w1 in [0.5, 0.8] {
            let tab = EntropyTable::new(w1);
            assert!((tab.eval(0.0) - w1 * (1.0 - w1)).abs() < 1e-12);
            let rule = standard_normal(2001, 16.0);
            let mut worst = 0.0f64;
            for i in 1..300 {
                let rho = i as f64 * 0.0731;
                let want = gamma(w1, rho, &rule) / rho;
                worst = worst.max((tab.eval(rho) - want).abs());
            }
            assert!(worst < 1e-9, "w1 = {w1}: worst {worst:e}");
            // small ρ tends to the quadratic-entropy limit
            assert!((tab.eval(1e-3) - w1 * (1.0 - w1)).abs() < 1e-5);
        }
    }
}
