//! The outcome of a run: did the student cover every mode of the target, collapse onto one, or
//! diverge?
//!
//! Each student component is assigned to the basin of a target mode. For the bimodal target
//! the basins are the half-spaces s = x·μ̂ > 0 (heavy mode, +μ*) and s < 0 (light mode): a
//! component belongs to the mode on the side of its mean m_k. For a general mixture a
//! component belongs to the nearest target mean (Euclidean). Then
//!
//! * `covered`: every target mode has at least one component;
//! * `collapsed`: all components sit in one mode's basin (recorded: which);
//! * `partial`: some but not all modes are covered (only possible with ≥ 3 modes);
//! * `diverged`: a non-finite value appeared (recorded: at which step).
//!
//! The student's mass on the lighter mode is q({x : x·μ̂ < 0}) = Σ_k w_k Φ(−m_k/σ_k) for the
//! bimodal target (true value 1 − w*), and the total weight of the components in the lightest
//! mode's basin otherwise.

use crate::family::GmmStudent;
use crate::family::gmm::dot;
use crate::target::IsotropicMixture;
use serde::{Deserialize, Serialize};

/// The kind of an [`Outcome`] without its details, as runs.jsonl writes it: `"covered"`,
/// `"collapsed"`, `"partial"` or `"diverged"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeKind {
    /// Every mode has a component.
    Covered,
    /// All components in one mode's basin.
    Collapsed,
    /// Some but not all modes covered.
    Partial,
    /// A non-finite value appeared.
    Diverged,
}

impl OutcomeKind {
    /// The label: covered, collapsed, partial, diverged.
    pub fn label(self) -> &'static str {
        match self {
            OutcomeKind::Covered => "covered",
            OutcomeKind::Collapsed => "collapsed",
            OutcomeKind::Partial => "partial",
            OutcomeKind::Diverged => "diverged",
        }
    }
}

impl std::fmt::Display for OutcomeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Every mode has a component.
    Covered,
    /// All components in one mode's basin.
    Collapsed {
        /// Index of the target mode (0 = +μ*, the heavy mode of the bimodal target).
        mode: usize,
        /// "heavy" or "light" for the bimodal target, else `"mode j"` (j its index).
        mode_name: String,
    },
    /// Some but not all modes covered.
    Partial {
        /// Number of modes covered.
        modes_covered: usize,
    },
    /// A non-finite value appeared.
    Diverged {
        /// The SGD step at which it appeared.
        step: usize,
    },
}

impl Outcome {
    /// The kind, without the details.
    pub fn kind(&self) -> OutcomeKind {
        match self {
            Outcome::Covered => OutcomeKind::Covered,
            Outcome::Collapsed { .. } => OutcomeKind::Collapsed,
            Outcome::Partial { .. } => OutcomeKind::Partial,
            Outcome::Diverged { .. } => OutcomeKind::Diverged,
        }
    }
    /// A short label: covered, collapsed, partial, diverged.
    pub fn label(&self) -> &'static str {
        self.kind().label()
    }
    /// Whether this is a collapse.
    pub fn is_collapsed(&self) -> bool {
        matches!(self, Outcome::Collapsed { .. })
    }
}

/// The target mode whose basin holds the point x (see the module docs): for the bimodal
/// target the side of s = x·μ̂ (0, the heavy mode +μ*, for s ≥ 0), otherwise the nearest target
/// mean.
pub fn mode_of(target: &IsotropicMixture, x: &[f64]) -> usize {
    if target.as_bimodal().is_some() {
        if dot(x, target.axis()) >= 0.0 { 0 } else { 1 }
    } else {
        nearest(x, target.means()).unwrap_or(0)
    }
}

/// The index of the centre nearest to x (Euclidean distance; the first of equally near ones),
/// `None` without centres.
pub fn nearest(x: &[f64], centres: &[Vec<f64>]) -> Option<usize> {
    (0..centres.len()).min_by(|&a, &b| dist2(x, &centres[a]).total_cmp(&dist2(x, &centres[b])))
}

/// The target mode whose basin holds each component (its mean's mode).
pub fn assign_modes(q: &GmmStudent, target: &IsotropicMixture) -> Vec<usize> {
    (0..q.components())
        .map(|k| mode_of(target, q.mean(k)))
        .collect()
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The outcome given which modes are covered (`covered[j]`): all of them → covered; exactly
/// one → collapsed onto it, named `name(j)`; otherwise partial. (No modes at all counts as
/// covered.)
pub fn outcome_from_covered(covered: &[bool], name: impl FnOnce(usize) -> String) -> Outcome {
    let n = covered.iter().filter(|c| **c).count();
    if n == covered.len() {
        Outcome::Covered
    } else if n == 1 {
        let mode = covered.iter().position(|c| *c).unwrap_or(0);
        Outcome::Collapsed {
            mode,
            mode_name: name(mode),
        }
    } else {
        Outcome::Partial { modes_covered: n }
    }
}

/// The name of target mode j in outcomes: "heavy" or "light" (by its weight) for the bimodal
/// target, otherwise `"mode j"` (j its index).
pub fn mode_name(target: &IsotropicMixture, mode: usize) -> String {
    if target.as_bimodal().is_some() {
        if target.weights()[mode] >= 0.5 {
            "heavy"
        } else {
            "light"
        }
        .to_string()
    } else {
        format!("mode {mode}")
    }
}

/// Classifies a finite student (use [`Outcome::Diverged`] directly for a diverged run): a
/// mode is covered when a component's mean lies in its basin.
pub fn classify(q: &GmmStudent, target: &IsotropicMixture) -> Outcome {
    if !q.is_finite() {
        return Outcome::Diverged { step: 0 };
    }
    let mut covered = vec![false; target.means().len()];
    for m in assign_modes(q, target) {
        covered[m] = true;
    }
    outcome_from_covered(&covered, |mode| mode_name(target, mode))
}

/// The student's mass on the lighter target mode (see the module docs).
pub fn light_mode_mass(q: &GmmStudent, target: &IsotropicMixture) -> f64 {
    let w = q.weights();
    if let Some(b) = target.as_bimodal() {
        // the light mode sits at −μ* if w* ≥ 1/2, else at +μ*
        let sign = if b.w_star >= 0.5 { -1.0 } else { 1.0 };
        (0..q.components())
            .map(|k| {
                let m = dot(q.mean(k), target.axis());
                w[k] * std_normal_cdf(sign * m / q.sigma(k))
            })
            .sum()
    } else {
        let light = target.lightest_mode();
        assign_modes(q, target)
            .iter()
            .zip(&w)
            .filter(|(m, _)| **m == light)
            .map(|(_, w)| w)
            .sum()
    }
}

/// Φ(x), the standard normal CDF.
pub fn std_normal_cdf(x: f64) -> f64 {
    0.5 * libm::erfc(-x / std::f64::consts::SQRT_2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn student(m1: f64, m2: f64) -> GmmStudent {
        let mut a = vec![0.0; 3];
        a[0] = m1;
        let mut b = vec![0.0; 3];
        b[0] = m2;
        GmmStudent::new(&[a, b], &[1.0, 1.0], &[0.5, 0.5], false)
    }

    #[test]
    fn bimodal_outcomes() {
        let t = IsotropicMixture::bimodal(3, 3.0, 0.8);
        assert_eq!(classify(&student(3.0, -3.0), &t), Outcome::Covered);
        assert_eq!(
            classify(&student(3.0, 2.9), &t),
            Outcome::Collapsed {
                mode: 0,
                mode_name: "heavy".into()
            }
        );
        assert_eq!(classify(&student(-3.0, -2.0), &t).label(), "collapsed");
        let m = light_mode_mass(&student(3.0, -3.0), &t);
        assert!((m - 0.5 * (std_normal_cdf(-3.0) + std_normal_cdf(3.0))).abs() < 1e-15);
        assert!(light_mode_mass(&student(3.0, 3.0), &t) < 0.01);
    }

    #[test]
    fn three_mode_outcomes() {
        let t = IsotropicMixture::new(
            vec![vec![5.0, 0.0], vec![-5.0, 0.0], vec![0.0, 5.0]],
            vec![0.5, 0.3, 0.2],
            vec![1.0, 1.0, 1.0],
        );
        let q = GmmStudent::new(
            &[vec![4.0, 0.0], vec![-4.0, 1.0]],
            &[1.0, 1.0],
            &[0.5, 0.5],
            false,
        );
        assert_eq!(classify(&q, &t), Outcome::Partial { modes_covered: 2 });
        assert_eq!(light_mode_mass(&q, &t), 0.0);
        assert!((std_normal_cdf(0.0) - 0.5).abs() < 1e-16);
    }
}

/// Wilson score interval (95%, z = 1.96) for k successes out of n trials; (0, 1) when n = 0.
pub fn wilson_interval(k: usize, n: usize) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let z = 1.959_963_984_540_054_f64;
    let nf = n as f64;
    let p = k as f64 / nf;
    let denom = 1.0 + z * z / nf;
    let centre = (p + z * z / (2.0 * nf)) / denom;
    let half = z * (p * (1.0 - p) / nf + z * z / (4.0 * nf * nf)).sqrt() / denom;
    // lo ≤ p ≤ hi exactly (rounding can put centre − half a few ulps above p = 0)
    ((centre - half).clamp(0.0, p), (centre + half).clamp(p, 1.0))
}

/// Two-sided exact McNemar test of paired binary outcomes: `b` and `c` are the discordant pairs
/// (outcome in the first arm only, in the second arm only). Under the null each discordant pair
/// is either kind with probability ½, so p = min(1, 2 P(X ≤ min(b, c))), X ~ Bin(b + c, ½); 1 when
/// there is no discordant pair.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    let k = b.min(c);
    // ln P(X = i), from ln P(X = 0) = −n ln 2 upwards (no overflow for large n)
    let mut ln_pmf = -(n as f64) * std::f64::consts::LN_2;
    let mut tail = ln_pmf.exp();
    for i in 1..=k {
        ln_pmf += ((n - i + 1) as f64 / i as f64).ln();
        tail += ln_pmf.exp();
    }
    (2.0 * tail).min(1.0)
}

/// Two-sided Fisher exact test of two independent binomial samples: `a` successes out of `n_a`
/// against `b` out of `n_b`. Given the margins (n_a, n_b and k = a + b successes in all), the
/// count in the first sample is hypergeometric, P(X = x) = C(n_a, x) C(n_b, k − x) / C(n_a + n_b, k);
/// the p-value is the total probability of the tables at most as likely as the observed one
/// (relative tolerance 1e-7, as R's `fisher.test`). 1 when either sample is empty.
///
/// ```
/// // 3/4 against 1/4: p = 0.4857 (the tea-tasting table)
/// let p = annealvi::metrics::fisher_exact(3, 4, 1, 4);
/// assert!((p - 34.0 / 70.0).abs() < 1e-12);
/// ```
pub fn fisher_exact(a: usize, n_a: usize, b: usize, n_b: usize) -> f64 {
    if n_a == 0 || n_b == 0 || a > n_a || b > n_b {
        return 1.0;
    }
    let k = a + b;
    let ln_fact = |n: usize| -> f64 { (2..=n).map(|i| (i as f64).ln()).sum() };
    let ln_choose = |n: usize, r: usize| ln_fact(n) - ln_fact(r) - ln_fact(n - r);
    let total = ln_choose(n_a + n_b, k);
    let ln_p = |x: usize| ln_choose(n_a, x) + ln_choose(n_b, k - x) - total;
    let observed = ln_p(a);
    let lo = k.saturating_sub(n_b);
    let hi = k.min(n_a);
    let p: f64 = (lo..=hi)
        .map(ln_p)
        .filter(|&l| l <= observed + 1e-7)
        .map(f64::exp)
        .sum();
    p.min(1.0)
}

#[cfg(test)]
mod fisher_tests {
    use super::fisher_exact;

    /// The hypergeometric probabilities by exact integer arithmetic (independent of the
    /// log-factorials of the implementation), and the two-sided p-value from them.
    fn exact(a: usize, n_a: usize, b: usize, n_b: usize) -> f64 {
        fn choose(n: u128, r: u128) -> u128 {
            (0..r).fold(1u128, |acc, i| acc * (n - i) / (i + 1))
        }
        let k = a + b;
        let probs: Vec<(usize, u128)> = (k.saturating_sub(n_b)..=k.min(n_a))
            .map(|x| {
                (
                    x,
                    choose(n_a as u128, x as u128) * choose(n_b as u128, (k - x) as u128),
                )
            })
            .collect();
        let denom = choose((n_a + n_b) as u128, k as u128) as f64;
        let obs = probs.iter().find(|(x, _)| *x == a).unwrap().1;
        probs
            .iter()
            .filter(|(_, w)| *w <= obs)
            .map(|(_, w)| *w as f64)
            .sum::<f64>()
            / denom
    }

    #[test]
    fn fisher_exact_known_values() {
        // 8/8 against 0/8: the two extreme tables, 2 / C(16, 8)
        assert!((fisher_exact(8, 8, 0, 8) - 2.0 / 12870.0).abs() < 1e-15);
        // 1/12 against 9/12 (R: fisher.test(matrix(c(1, 11, 9, 3), 2))$p.value = 0.002759)
        assert!((fisher_exact(1, 12, 9, 12) - 0.002759).abs() < 5e-7);
        // symmetric and 1 for equal proportions
        assert_eq!(fisher_exact(4, 8, 4, 8), 1.0);
        assert_eq!(fisher_exact(0, 0, 3, 5), 1.0);
        for (a, na, b, nb) in [
            (3, 10, 7, 12),
            (0, 64, 5, 64),
            (20, 64, 31, 64),
            (2, 5, 5, 9),
        ] {
            let (p, q) = (fisher_exact(a, na, b, nb), exact(a, na, b, nb));
            assert!(
                (p - q).abs() < 1e-9 * q.max(1e-300) + 1e-15,
                "{a}/{na} {b}/{nb}: {p} {q}"
            );
            assert!((fisher_exact(b, nb, a, na) - p).abs() < 1e-12);
        }
    }
}

#[cfg(test)]
mod wilson_tests {
    use super::wilson_interval;

    #[test]
    fn wilson_interval_contains_p_exactly() {
        for n in 1..300 {
            for k in 0..=n {
                let (lo, hi) = wilson_interval(k, n);
                let p = k as f64 / n as f64;
                assert!(lo <= p && p <= hi, "{k}/{n}: [{lo}, {hi}]");
            }
        }
    }

    #[test]
    fn wilson_known_values() {
        // 5/10: centre 0.5, half-width 1.96·sqrt(0.025+0.0096)/1.384 = 0.2686 (textbook value)
        let (lo, hi) = wilson_interval(5, 10);
        assert!(
            (lo - 0.2366).abs() < 1e-4 && (hi - 0.7634).abs() < 1e-4,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson_interval(0, 20);
        assert_eq!(lo, 0.0);
        assert!((hi - 0.1611).abs() < 1e-4);
        assert_eq!(wilson_interval(0, 0), (0.0, 1.0));
    }
}
