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

/// The regularised incomplete beta function I_x(a, b) (a, b > 0, x ∈ [0, 1]): Lentz's
/// continued fraction on the side where it converges fast.
fn incomplete_beta(a: f64, b: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 0.0;
    }
    if x >= 1.0 {
        return 1.0;
    }
    let ln_front =
        libm::lgamma(a + b) - libm::lgamma(a) - libm::lgamma(b) + a * x.ln() + b * (1.0 - x).ln();
    // the continued fraction of I_x(a, b) (Numerical Recipes' betacf)
    let cf = |a: f64, b: f64, x: f64| -> f64 {
        const TINY: f64 = 1e-300;
        let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
        let mut c = 1.0;
        let mut d = 1.0 - qab * x / qap;
        if d.abs() < TINY {
            d = TINY;
        }
        d = 1.0 / d;
        let mut h = d;
        for m in 1..=10_000 {
            let m = m as f64;
            let m2 = 2.0 * m;
            let aa = m * (b - m) * x / ((qam + m2) * (a + m2));
            d = 1.0 + aa * d;
            if d.abs() < TINY {
                d = TINY;
            }
            c = 1.0 + aa / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            h *= d * c;
            let aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
            d = 1.0 + aa * d;
            if d.abs() < TINY {
                d = TINY;
            }
            c = 1.0 + aa / c;
            if c.abs() < TINY {
                c = TINY;
            }
            d = 1.0 / d;
            let del = d * c;
            h *= del;
            if (del - 1.0).abs() < 1e-15 {
                break;
            }
        }
        h
    };
    if x < (a + 1.0) / (a + b + 2.0) {
        ln_front.exp() * cf(a, b, x) / a
    } else {
        1.0 - ln_front.exp() * cf(b, a, 1.0 - x) / b
    }
}

/// The CDF of Student's t distribution with `df` > 0 degrees of freedom at `t`.
pub fn student_t_cdf(t: f64, df: f64) -> f64 {
    if t.is_nan() || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    // P(|T| > |t|) = I_{df/(df+t²)}(df/2, 1/2)
    let tail = 0.5 * incomplete_beta(0.5 * df, 0.5, df / (df + t * t));
    if t > 0.0 { 1.0 - tail } else { tail }
}

/// The quantile of Student's t distribution with `df` > 0 degrees of freedom at probability
/// `p` ∈ (0, 1) (bisection on [`student_t_cdf`] to a relative 1e-12); NaN outside.
///
/// ```
/// // the two-sided 95% critical values: 12.706 (df = 1), 2.228 (df = 10), → 1.960
/// let q = |df| annealvi::metrics::student_t_quantile(0.975, df);
/// assert!((q(1.0) - 12.7062).abs() < 1e-4 && (q(10.0) - 2.2281).abs() < 1e-4);
/// assert!((q(1e9) - 1.95996).abs() < 1e-4);
/// ```
pub fn student_t_quantile(p: f64, df: f64) -> f64 {
    if !(p > 0.0 && p < 1.0) || df.is_nan() || df <= 0.0 {
        return f64::NAN;
    }
    if p < 0.5 {
        return -student_t_quantile(1.0 - p, df);
    }
    let mut hi = 1.0;
    while student_t_cdf(hi, df) < p {
        hi *= 2.0;
        if hi > 1e300 {
            return f64::INFINITY;
        }
    }
    let mut lo = 0.0;
    for _ in 0..2000 {
        let mid = 0.5 * (lo + hi);
        if student_t_cdf(mid, df) < p {
            lo = mid;
        } else {
            hi = mid;
        }
        if hi - lo <= 1e-12 * hi {
            break;
        }
    }
    0.5 * (lo + hi)
}

/// The mean of `xs` with its two-sided 95% Student-t interval, mean ± t_{0.975, n−1} s/√n
/// (s the sample standard deviation): `(mean, low, high)`. With one value the interval is
/// undefined (NaN, NaN); with none everything is NaN.
pub fn mean_interval(xs: &[f64]) -> (f64, f64, f64) {
    let n = xs.len();
    if n == 0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let nf = n as f64;
    let mean = xs.iter().sum::<f64>() / nf;
    if n == 1 {
        return (mean, f64::NAN, f64::NAN);
    }
    let var = xs.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (nf - 1.0);
    let half = student_t_quantile(0.975, nf - 1.0) * (var / nf).sqrt();
    (mean, mean - half, mean + half)
}

/// Up to this many non-zero differences the Wilcoxon signed-rank test is exact.
const WILCOXON_EXACT: usize = 500;

/// Two-sided Wilcoxon signed-rank test of paired differences `diffs` (x_i − y_i) against a
/// distribution symmetric about 0. Zero differences are dropped (Wilcoxon's convention), tied
/// |differences| get their mean rank, and W⁺ is the sum of the ranks of the positive ones.
/// With at most 500 non-zero differences the p-value is exact: the permutation distribution
/// of W⁺ under independent sign flips given these ranks; beyond, the normal approximation
/// with the tie correction of the variance and a continuity correction of ½. p =
/// min(1, 2 min(P(W⁺ ≤ w), P(W⁺ ≥ w))); 1 when no difference is non-zero; NaN differences
/// are an error of the caller and make the result NaN.
///
/// ```
/// // every one of 5 differences positive: p = 2 / 2⁵
/// let p = annealvi::metrics::wilcoxon_signed_rank(&[1.0, 2.0, 3.0, 4.0, 5.0]);
/// assert!((p - 0.0625).abs() < 1e-12);
/// ```
pub fn wilcoxon_signed_rank(diffs: &[f64]) -> f64 {
    wilcoxon_with(diffs, WILCOXON_EXACT)
}

fn wilcoxon_with(diffs: &[f64], exact_limit: usize) -> f64 {
    if diffs.iter().any(|d| d.is_nan()) {
        return f64::NAN;
    }
    let mut nz: Vec<f64> = diffs.iter().copied().filter(|d| *d != 0.0).collect();
    let n = nz.len();
    if n == 0 {
        return 1.0;
    }
    nz.sort_by(|a, b| a.abs().total_cmp(&b.abs()));
    // doubled mean ranks (integers): ties i..j (0-based) share rank (i + j + 2) / 2
    let mut rank2 = vec![0usize; n];
    let mut ties = Vec::new();
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && nz[j + 1].abs() == nz[i].abs() {
            j += 1;
        }
        for r in &mut rank2[i..=j] {
            *r = i + j + 2;
        }
        ties.push((j - i + 1) as f64);
        i = j + 1;
    }
    let w2: usize = nz
        .iter()
        .zip(&rank2)
        .filter(|(d, _)| **d > 0.0)
        .map(|(_, r)| r)
        .sum();
    let p = if n <= exact_limit {
        // P(2W⁺ = s) under sign flips, by adding one rank at a time
        let total: usize = rank2.iter().sum();
        let mut prob = vec![0.0f64; total + 1];
        prob[0] = 1.0;
        let mut reach = 0;
        for &r in &rank2 {
            for s in (0..=reach).rev() {
                let v = 0.5 * prob[s];
                prob[s] = v;
                prob[s + r] += v;
            }
            reach += r;
        }
        let lower: f64 = prob[..=w2].iter().sum();
        let upper: f64 = prob[w2..].iter().sum();
        2.0 * lower.min(upper)
    } else {
        let nf = n as f64;
        let w = w2 as f64 / 2.0;
        let mean = nf * (nf + 1.0) / 4.0;
        let var = nf * (nf + 1.0) * (2.0 * nf + 1.0) / 24.0
            - ties.iter().map(|t| t * t * t - t).sum::<f64>() / 48.0;
        if var <= 0.0 {
            return 1.0;
        }
        let z = ((w - mean).abs() - 0.5).max(0.0) / var.sqrt();
        2.0 * std_normal_cdf(-z)
    };
    p.min(1.0)
}

#[cfg(test)]
mod paired_tests {
    use super::*;

    #[test]
    fn student_t_matches_tables() {
        // two-sided 95% critical values from the tables (df = 1, 2, 5, 10, 30, 120)
        for (df, t) in [
            (1.0, 12.7062),
            (2.0, 4.3027),
            (5.0, 2.5706),
            (10.0, 2.2281),
            (30.0, 2.0423),
            (120.0, 1.9799),
        ] {
            let q = student_t_quantile(0.975, df);
            assert!((q - t).abs() < 1e-4, "df {df}: {q} against {t}");
            assert!((student_t_cdf(q, df) - 0.975).abs() < 1e-10);
            assert!((student_t_quantile(0.025, df) + q).abs() < 1e-9);
        }
        // df = 1 is Cauchy: F(t) = ½ + atan(t)/π
        for t in [-3.0, -0.5, 0.0, 0.7, 10.0] {
            let want = 0.5 + f64::atan(t) / std::f64::consts::PI;
            assert!((student_t_cdf(t, 1.0) - want).abs() < 1e-12, "{t}");
        }
        // large df: the normal law
        assert!((student_t_quantile(0.975, 1e9) - 1.959_964).abs() < 1e-5);
        assert!(student_t_quantile(1.0, 3.0).is_nan() && student_t_quantile(0.5, 0.0).is_nan());
    }

    #[test]
    fn mean_interval_is_the_t_interval() {
        let (m, lo, hi) = mean_interval(&[1.0, 2.0, 3.0, 4.0]);
        // s = √(5/3), t_{0.975,3} = 3.18245
        let half = 3.182_446_305 * (5.0f64 / 3.0 / 4.0).sqrt();
        assert_eq!(m, 2.5);
        assert!((lo - (2.5 - half)).abs() < 1e-7 && (hi - (2.5 + half)).abs() < 1e-7);
        let (m, lo, hi) = mean_interval(&[7.0, 7.0, 7.0]);
        assert_eq!((m, lo, hi), (7.0, 7.0, 7.0));
        let (m, lo, _) = mean_interval(&[3.0]);
        assert!(m == 3.0 && lo.is_nan());
        assert!(mean_interval(&[]).0.is_nan());
    }

    #[test]
    #[allow(clippy::approx_constant)] // 3.14 is a data value of R's example
    fn wilcoxon_known_values() {
        // R: x <- c(1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30);
        // y <- c(0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29);
        // wilcox.test(x, y, paired = TRUE): V = 40, p-value = 0.03906
        let x = [1.83, 0.50, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.30];
        let y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29];
        let d: Vec<f64> = x.iter().zip(&y).map(|(a, b)| a - b).collect();
        let p = wilcoxon_signed_rank(&d);
        assert!((p - 0.039_062_5).abs() < 1e-12, "{p}");
        // symmetric in the sign, and 1 without a non-zero difference
        let neg: Vec<f64> = d.iter().map(|v| -v).collect();
        assert_eq!(wilcoxon_signed_rank(&neg), p);
        assert_eq!(wilcoxon_signed_rank(&[0.0, 0.0]), 1.0);
        assert_eq!(wilcoxon_signed_rank(&[]), 1.0);
        assert!(wilcoxon_signed_rank(&[1.0, f64::NAN]).is_nan());
        // zeros dropped: the same as without them
        let mut z = d.clone();
        z.extend([0.0, 0.0, 0.0]);
        assert_eq!(wilcoxon_signed_rank(&z), p);
        // ties: +1, +1, −1 (ranks 2, 2, 2): W⁺ = 4 of {0, 2, 4, 6} with 1, 3, 3, 1 ways;
        // P(W⁺ ≥ 4) = 4/8, P(W⁺ ≤ 4) = 7/8 → p = 1
        assert_eq!(wilcoxon_signed_rank(&[1.0, 1.0, -1.0]), 1.0);
        // +1 ×4: all 4 positive of 4 tied ranks: 2/16
        assert!((wilcoxon_signed_rank(&[1.0; 4]) - 0.125).abs() < 1e-12);
    }

    #[test]
    fn wilcoxon_normal_branch_agrees_with_the_exact_one() {
        // 120 differences with a shift and ties (integers, as modes covered)
        let d: Vec<f64> = (0..120)
            .map(|i| ((i * 37 % 23) as f64 - 9.0).round())
            .collect();
        let exact = wilcoxon_with(&d, usize::MAX);
        let approx = wilcoxon_with(&d, 0);
        assert!(exact > 0.0 && exact < 1.0);
        assert!((exact - approx).abs() < 0.01, "{exact} {approx}");
        // a strong shift: both tiny
        let d: Vec<f64> = (0..80).map(|i| 1.0 + (i % 7) as f64 - 2.0).collect();
        let (e, a) = (wilcoxon_with(&d, usize::MAX), wilcoxon_with(&d, 0));
        assert!(e < 1e-4 && a < 1e-4, "{e} {a}");
    }
}
