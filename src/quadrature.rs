//! One-dimensional quadrature rules used by the exact ("perfect gradient") objective.
//!
//! Everything the exact objective needs is an expectation over a standard normal variable
//! ξ ~ N(0, 1) or a chi-squared variable v ~ χ²_n. We use
//!
//! * Gauss–Legendre rules on panels, with nodes from Newton's method on the Legendre
//!   recurrence (accurate to ~1e-15);
//! * for N(0, 1): the trapezoidal rule on [−L, L], which converges geometrically for
//!   integrands analytic in a strip (the Gaussian weight makes the tails negligible);
//! * for χ²_n: Gauss–Legendre panels in c = √v (chi distribution), whose density
//!   ∝ c^{n−1} e^{−c²/2} is smooth for every n; weights are normalised numerically, so the
//!   rule is exact for constants.
//!
//! See docs/theory.md, "Quadrature".

/// A quadrature rule: nodes and weights with Σ w_i f(x_i) ≈ ∫ f dμ.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Nodes.
    pub x: Vec<f64>,
    /// Weights.
    pub w: Vec<f64>,
}

impl Rule {
    /// Σ_i w_i f(x_i).
    pub fn integrate(&self, mut f: impl FnMut(f64) -> f64) -> f64 {
        self.x.iter().zip(&self.w).map(|(&x, &w)| w * f(x)).sum()
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.x.len()
    }

    /// Whether the rule has no nodes.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }
}

/// n-point Gauss–Legendre rule on [a, b].
pub fn gauss_legendre(n: usize, a: f64, b: f64) -> Rule {
    assert!(n >= 1, "Gauss-Legendre needs at least one node");
    let mut x = vec![0.0; n];
    let mut w = vec![0.0; n];
    let (mid, half) = (0.5 * (a + b), 0.5 * (b - a));
    let m = n.div_ceil(2);
    for i in 0..m {
        // Initial guess, then Newton's method on P_n via the three-term recurrence.
        let mut z = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut dp;
        let mut iter = 0;
        loop {
            let (mut p1, mut p2) = (1.0, 0.0);
            for j in 1..=n {
                let p3 = p2;
                p2 = p1;
                p1 = ((2 * j - 1) as f64 * z * p2 - (j - 1) as f64 * p3) / j as f64;
            }
            // p1 = P_n(z), p2 = P_{n-1}(z)
            dp = n as f64 * (z * p1 - p2) / (z * z - 1.0);
            let dz = p1 / dp;
            z -= dz;
            iter += 1;
            if dz.abs() < 1e-15 || iter > 100 {
                break;
            }
        }
        let wi = 2.0 / ((1.0 - z * z) * dp * dp);
        x[i] = mid - half * z;
        x[n - 1 - i] = mid + half * z;
        w[i] = half * wi;
        w[n - 1 - i] = half * wi;
    }
    Rule { x, w }
}

/// Composite Gauss–Legendre: `n` nodes on each panel between consecutive `breaks`.
pub fn composite_gauss_legendre(n: usize, breaks: &[f64]) -> Rule {
    let mut x = Vec::new();
    let mut w = Vec::new();
    for pair in breaks.windows(2) {
        if pair[1] > pair[0] {
            let r = gauss_legendre(n, pair[0], pair[1]);
            x.extend(r.x);
            w.extend(r.w);
        }
    }
    Rule { x, w }
}

/// Rule for E f(ξ), ξ ~ N(0, 1): trapezoid with `n` nodes on [−half_width, half_width],
/// weights normalised to sum to one.
pub fn standard_normal(n: usize, half_width: f64) -> Rule {
    assert!(n >= 3);
    let h = 2.0 * half_width / (n - 1) as f64;
    let x: Vec<f64> = (0..n).map(|i| -half_width + h * i as f64).collect();
    let mut w: Vec<f64> = x.iter().map(|&t| (-0.5 * t * t).exp()).collect();
    let s: f64 = w.iter().sum();
    w.iter_mut().for_each(|wi| *wi /= s);
    Rule { x, w }
}

/// Rule for E f(v), v ~ χ²_n (n ≥ 1 degrees of freedom; n = 0 gives the point mass at 0).
///
/// Substituting v = c², c follows the chi distribution with density
/// ∝ c^{n−1} e^{−c²/2}: smooth at every n (no singularity at 0 even for n = 1) and close to
/// N(√(n−1), ½) for large n. We integrate it with Gauss–Legendre panels over
/// [max(0, √(n−1) − 9), √(n−1) + 9] (the log-density drops by > 40 outside), then normalise.
pub fn chi_squared(n: usize, nodes_per_panel: usize, panels: usize) -> Rule {
    if n == 0 {
        return Rule {
            x: vec![0.0],
            w: vec![1.0],
        };
    }
    let mode = ((n - 1) as f64).sqrt();
    let lo = (mode - 9.0).max(0.0);
    let hi = mode + 9.0;
    let breaks: Vec<f64> = (0..=panels)
        .map(|i| lo + (hi - lo) * i as f64 / panels as f64)
        .collect();
    let r = composite_gauss_legendre(nodes_per_panel, &breaks);
    let logp = |c: f64| {
        let lc = if n == 1 {
            0.0
        } else {
            (n - 1) as f64 * (c / mode).ln()
        };
        lc - 0.5 * (c * c - mode * mode)
    };
    let mut w: Vec<f64> =
        r.x.iter()
            .zip(&r.w)
            .map(|(&c, &wc)| wc * logp(c).exp())
            .collect();
    let s: f64 = w.iter().sum();
    w.iter_mut().for_each(|wi| *wi /= s);
    let x = r.x.iter().map(|&c| c * c).collect();
    Rule { x, w }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_integrates_polynomials_exactly() {
        let r = gauss_legendre(10, -1.0, 2.0);
        // ∫_{-1}^{2} x^k dx = (2^{k+1} - (-1)^{k+1}) / (k+1), exact up to degree 19
        for k in 0..20 {
            let exact = (2f64.powi(k + 1) - (-1f64).powi(k + 1)) / (k + 1) as f64;
            let got = r.integrate(|x| x.powi(k));
            assert!((got - exact).abs() < 1e-11 * exact.abs().max(1.0), "k={k}");
        }
        assert_eq!(gauss_legendre(1, 0.0, 2.0).x, vec![1.0]);
    }

    #[test]
    fn standard_normal_moments() {
        let r = standard_normal(201, 10.0);
        assert!((r.integrate(|x| x * x) - 1.0).abs() < 1e-13);
        assert!((r.integrate(|x| x.powi(4)) - 3.0).abs() < 1e-12);
        // E cos(ξ) = e^{-1/2}
        assert!((r.integrate(f64::cos) - (-0.5f64).exp()).abs() < 1e-14);
    }

    #[test]
    fn chi_squared_moments() {
        for n in [1usize, 2, 5, 50, 511] {
            let r = chi_squared(n, 16, 6);
            let nf = n as f64;
            let mean = r.integrate(|v| v);
            let var = r.integrate(|v| (v - nf) * (v - nf));
            assert!((mean - nf).abs() < 1e-9 * nf, "n={n} mean={mean}");
            assert!((var - 2.0 * nf).abs() < 1e-8 * nf, "n={n} var={var}");
            // E e^{-t v} = (1 + 2t)^{-n/2}
            let t = 0.3 / nf.sqrt();
            let mgf = r.integrate(|v| (-t * v).exp());
            assert!(
                (mgf - (1.0 + 2.0 * t).powf(-nf / 2.0)).abs() < 1e-10,
                "n={n}"
            );
        }
    }
}
