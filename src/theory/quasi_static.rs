//! The quasi-static summary-statistics ODE with fixed weights, fast enough for Monte Carlo
//! over 10⁴ initial conditions per cell.
//!
//! State x = (m_1, m_2, q_11, q_12, q_22); σ_1 = σ_2 = σ = β(τ)^{−1/2} (docs/theory.md §8).
//! With equal variances the gradient of F_β in the statistics is
//!
//!   g_{m_k} = −β w_k R T(R m_k + h, R σ),
//!   g_{q_kk} = β w_k/2 + G/2,   g_{q_12} = −G,   G = G_D/D = −β ψ(D/σ),
//!
//! (T and ψ from [`super::tables`]), and the flow is the one of [`super::Dynamics`]
//! restricted to these five statistics. The right-hand side costs ~0.1 µs instead of ~40 µs;
//! tests check it against [`super::Dynamics`] with the exact objective.
//!
//! Initial conditions: the means start as μ_k ~ N(0, s² I_d) independently, so
//! m_k ~ N(0, s²), and the parts ν_k ⊥ μ̂ give ‖ν_1‖² ~ s² χ²_{d−1}, ν_1·ν_2 = ‖ν_1‖ s a
//! with a ~ N(0, 1), ‖ν_2‖² = s² (a² + χ²_{d−2}): five scalars drawn exactly in O(1).

use super::tables::{EntropyTable, TanhTable};
use super::{IntegrateError, OdeSystem, Tolerance, integrate};
use crate::schedule::Schedule;
use crate::target::Bimodal;
use rand::Rng;
use rand_distr::{ChiSquared, Distribution, StandardNormal};

/// Number of state variables: m1, m2, q11, q12, q22.
pub const N: usize = 5;

/// The quasi-static flow with fixed weights.
pub struct QuasiStatic<'a> {
    /// The target (R, h).
    pub target: Bimodal,
    /// β as a function of the SGD step.
    pub schedule: &'a dyn Schedule,
    /// η: τ = η t.
    pub lr: f64,
    /// The entropy table (holds w_1).
    pub entropy: &'a EntropyTable,
    tanh: &'static TanhTable,
}

impl<'a> QuasiStatic<'a> {
    /// The flow for `target` under `schedule`, learning rate `lr`, weights of `entropy`.
    pub fn new(
        target: Bimodal,
        schedule: &'a dyn Schedule,
        lr: f64,
        entropy: &'a EntropyTable,
    ) -> Self {
        Self {
            target,
            schedule,
            lr,
            entropy,
            tanh: TanhTable::get(),
        }
    }

    /// β at ODE time τ.
    #[inline]
    pub fn beta(&self, tau: f64) -> f64 {
        self.schedule.beta(tau / self.lr)
    }

    /// ∂F_β/∂(m_1, m_2) and ∂F_β/∂(q_11, q_12, q_22) at (β, x).
    #[inline]
    pub fn grad(&self, beta: f64, x: &[f64; N]) -> ([f64; 2], [f64; 3]) {
        let (r, h) = (self.target.r, self.target.h);
        let sigma = 1.0 / beta.sqrt();
        let w = [self.entropy.w1(), 1.0 - self.entropy.w1()];
        let d = (x[2] + x[4] - 2.0 * x[3]).max(0.0).sqrt();
        let g = -beta * self.entropy.eval(d / sigma);
        let t1 = self.tanh.eval(r * x[0] + h, r * sigma);
        let t2 = self.tanh.eval(r * x[1] + h, r * sigma);
        (
            [-beta * w[0] * r * t1, -beta * w[1] * r * t2],
            [0.5 * beta * w[0] + 0.5 * g, -g, 0.5 * beta * w[1] + 0.5 * g],
        )
    }
}

impl OdeSystem<N> for QuasiStatic<'_> {
    fn rhs(&self, tau: f64, x: &[f64; N]) -> [f64; N] {
        let (gm, gq) = self.grad(self.beta(tau), x);
        let (m, q) = ([x[0], x[1]], [x[2], x[3], x[4]]);
        [
            -(gm[0] + 2.0 * gq[0] * m[0] + gq[1] * m[1]),
            -(gm[1] + 2.0 * gq[2] * m[1] + gq[1] * m[0]),
            -2.0 * (gm[0] * m[0] + 2.0 * gq[0] * q[0] + gq[1] * q[1]),
            -(gm[0] * m[1] + gm[1] * m[0] + 2.0 * (gq[0] + gq[2]) * q[1] + gq[1] * (q[0] + q[2])),
            -2.0 * (gm[1] * m[1] + 2.0 * gq[2] * q[2] + gq[1] * q[1]),
        ]
    }

    /// [`STATE_BOUND`](super::STATE_BOUND), as for the full statistics flow.
    fn state_bound(&self) -> f64 {
        super::STATE_BOUND
    }
}

/// Integrator tolerances for collapse classification: the outcome is the sign of m_k at the
/// end, far from 0 except within ~1e-3 of the threshold initial conditions.
pub const CLASSIFY_TOL: Tolerance = Tolerance {
    rtol: 1e-6,
    atol: 1e-8,
    max_step: 50.0,
};

/// Integrates from x0 through the kink of the schedule at τ = η t0 (if inside) to `tau_end`
/// and says whether both m_k end on the same side of 0 (docs/theory.md §6).
pub fn collapses(
    flow: &QuasiStatic,
    x0: [f64; N],
    tau_kink: f64,
    tau_end: f64,
) -> Result<bool, IntegrateError> {
    let mut times = Vec::with_capacity(2);
    if tau_kink > 0.0 && tau_kink < tau_end {
        times.push(tau_kink);
    }
    times.push(tau_end);
    let x = *integrate(flow, 0.0, x0, &times, CLASSIFY_TOL)?
        .last()
        .expect("one time at least");
    Ok((x[0] >= 0.0) == (x[1] >= 0.0))
}

/// Draws the initial statistics (m_1, m_2, q_11, q_12, q_22) of two means μ_k ~ N(0, s² I_d)
/// (exact in distribution, O(1) draws).
pub fn draw_initial<R: Rng + ?Sized>(rng: &mut R, d: usize, s: f64) -> [f64; N] {
    let s2 = s * s;
    let m1: f64 = s * rng.sample::<f64, _>(StandardNormal);
    let m2: f64 = s * rng.sample::<f64, _>(StandardNormal);
    let chi = |k: usize, rng: &mut R| -> f64 {
        if k == 0 {
            0.0
        } else {
            ChiSquared::new(k as f64).expect("k > 0").sample(rng)
        }
    };
    let n1 = s2 * chi(d.saturating_sub(1), rng);
    let a: f64 = if d >= 2 {
        rng.sample(StandardNormal)
    } else {
        0.0
    };
    let n2 = s2 * (a * a + chi(d.saturating_sub(2), rng));
    let c = n1.sqrt() * s * a;
    [m1, m2, m1 * m1 + n1, m1 * m2 + c, m2 * m2 + n2]
}

/// A representative initial state with centre M = (m_1 + m_2)/2, half-split δ = (m_1 − m_2)/2
/// along μ̂ and squared orthogonal separation D⊥² (orthogonal norms at their mean `p`, the
/// orthogonal overlap set by D⊥²).
pub fn state(m: f64, delta: f64, dperp2: f64, p: f64) -> [f64; N] {
    let (m1, m2) = (m + delta, m - delta);
    let c = p - 0.5 * dperp2;
    [m1, m2, m1 * m1 + p, m1 * m2 + c, m2 * m2 + p]
}

/// The smallest half-split |δ| ∈ (0, δ_max] (on the side sign(δ) = `side`) from which the
/// flow does not collapse, by bisection to `tol`, assuming collapse for |δ| below it and not
/// above (checked by tests against direct integration). `f64::INFINITY` when even δ_max
/// collapses; 0 when even δ → 0 does not.
#[allow(clippy::too_many_arguments)]
pub fn split_threshold(
    flow: &QuasiStatic,
    m: f64,
    dperp2: f64,
    p: f64,
    side: f64,
    delta_max: f64,
    tol: f64,
    (tau_kink, tau_end): (f64, f64),
) -> Result<f64, IntegrateError> {
    let col = |dl: f64| collapses(flow, state(m, side * dl, dperp2, p), tau_kink, tau_end);
    if col(delta_max)? {
        return Ok(f64::INFINITY);
    }
    let (mut lo, mut hi) = (0.0, delta_max);
    if !col(tol)? {
        return Ok(0.0);
    }
    while hi - lo > tol {
        let mid = 0.5 * (lo + hi);
        if col(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(0.5 * (lo + hi))
}
