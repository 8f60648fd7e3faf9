//! An analytical estimate of the collapse probability under exponential annealing
//! (docs/theory.md §9), for the bimodal target and a 2-component student with fixed equal
//! weights w_1 = w_2 = ½ in the quasi-static model σ² = 1/β.
//!
//! **Branch.** With m_1 = m_2 the student stays on the symmetric branch (centre M_b, orthogonal
//! separation D_b), which obeys (ρ = D_b/σ, T and S at (R M_b + h, R σ))
//!
//!   dM_b/dτ = (β/2)(R T − M_b),   d ln D_b²/dτ = −β (1 − 4ψ(ρ)).
//!
//! **Linearised split.** The half-split δ = (m_1 − m_2)/2 and the centre's deviation
//! ΔM = M − M_b obey, to first order,
//!
//!   dδ/dτ = γ_δ δ,  γ_δ = (β/2)(R² S − 1) + 2β ψ(ρ),
//!   dΔM/dτ = γ_M ΔM, γ_M = (β/2)(R² S − 1),
//!
//! so δ(τ) = δ_0 G(τ), ΔM(τ) = ΔM_0 H(τ) with G = e^{∫γ_δ}, H = e^{∫γ_M}. (At full overlap
//! ψ = ¼ cancels the −β/2: the entropy's repulsion exactly balances the target's confinement and
//! only the target's curvature R²S drives the split.)
//!
//! **Decision.** Once separated, a component follows the lone drift
//! dm/dτ = (β/2)(R T(R m + h, Rσ) − m), which is monostable at small β and bistable from β_c
//! on (a light-side basin appears through a saddle-node). The boundary of the light basin at
//! the end of the run, the unstable zero m_u(β_end), propagated backwards in time with the
//! lone drift, is a moving separatrix m_sep(τ) (backwards, the unstable point attracts, so this
//! is well conditioned). A light component that gets beyond m_sep at any time τ ends in the
//! light mode. With the linearised motion, the lighter component sits at
//! M_b + ΔM_0 H − |δ_0| G, so
//!
//!   covered ⇔ ∃τ: |δ_0| G(τ) − ΔM_0 H(τ) > ℓ(τ),   ℓ(τ) = M_b(τ) − m_sep(τ),
//!
//! i.e. collapse ⇔ |δ_0| < δ_c(ΔM_0) = min_τ (ℓ(τ) + ΔM_0 H(τ))/G(τ) (floored at 0).
//!
//! **Probability.** With means drawn from N(0, s² I_d), δ_0 and ΔM_0 are independent
//! N(0, s²/2), so with y ~ N(0, 1)
//!
//!   P(collapse) = E_y erf(δ_c(y s/√2)/s),
//!
//! a one-dimensional integral of quantities computed by one integration of the 4-variable
//! branch ODE and one of the 1-variable separatrix per cell (400 time nodes). As β_i → 0 at
//! fixed rate r = β_i^{−1/t0} (λ = ln r/η per unit τ) the growth integrals converge (γ = O(β)
//! at small β) and the branch forgets β_i, so P tends to a function of r alone:
//! [`asymptote`].

use super::tables::{EntropyTable, TanhTable};
use super::{OdeSystem, Tolerance, integrate};
use crate::gauss1d::log_cosh_moments;
use crate::quadrature::standard_normal;
use crate::schedule::{Exponential, Schedule};
use crate::target::Bimodal;

/// The onset of bistability of a lone component's drift: β_c and the saddle-node m_sn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bistability {
    /// Inverse temperature at which the light-side basin appears.
    pub beta_c: f64,
    /// Position (along μ̂) of the saddle-node at β_c.
    pub m_sn: f64,
}

/// min over m ∈ [−R − 3, 0] of f(m) = R T(R m + h, R/√β) − m, and its argmin.
fn drift_min(target: &Bimodal, beta: f64) -> (f64, f64) {
    let tab = TanhTable::get();
    let (r, h) = (target.r, target.h);
    let b = r / beta.sqrt();
    let f = |m: f64| r * tab.eval(r * m + h, b) - m;
    let (lo, hi) = (-r - 3.0, 0.0);
    let n = 600;
    let mut best = (f64::INFINITY, 0.0);
    for i in 0..=n {
        let m = lo + (hi - lo) * i as f64 / n as f64;
        let v = f(m);
        if v < best.0 {
            best = (v, m);
        }
    }
    // golden-section refinement around the grid minimum
    let step = (hi - lo) / n as f64;
    let (mut a, mut c) = ((best.1 - step).max(lo), (best.1 + step).min(hi));
    let g = 0.5 * (5f64.sqrt() - 1.0);
    for _ in 0..60 {
        let x1 = c - g * (c - a);
        let x2 = a + g * (c - a);
        if f(x1) < f(x2) {
            c = x2;
        } else {
            a = x1;
        }
    }
    let m = 0.5 * (a + c);
    (f(m), m)
}

/// β_c: the smallest β ≤ 1 at which f has a zero on the light side (bisection in ln β), and
/// the saddle-node there. `None` when f stays positive up to β = 1 (no light basin).
pub fn bistability(target: &Bimodal) -> Option<Bistability> {
    if drift_min(target, 1.0).0 > 0.0 {
        return None;
    }
    let (mut lo, mut hi) = ((1e-8f64).ln(), 0.0f64);
    if drift_min(target, lo.exp()).0 <= 0.0 {
        return Some(Bistability {
            beta_c: lo.exp(),
            m_sn: drift_min(target, lo.exp()).1,
        });
    }
    for _ in 0..60 {
        let mid = 0.5 * (lo + hi);
        if drift_min(target, mid.exp()).0 <= 0.0 {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    let beta_c = hi.exp();
    Some(Bistability {
        beta_c,
        m_sn: drift_min(target, beta_c).1,
    })
}

/// The branch and the linearised growth: state (M_b, ln D_b², ln G, ln H).
struct Branch<'a> {
    target: Bimodal,
    schedule: &'a dyn Schedule,
    lr: f64,
    entropy: &'a EntropyTable,
}

impl OdeSystem<4> for Branch<'_> {
    fn rhs(&self, tau: f64, x: &[f64; 4]) -> [f64; 4] {
        let beta = self.schedule.beta(tau / self.lr);
        let (r, h) = (self.target.r, self.target.h);
        let sigma = 1.0 / beta.sqrt();
        let mo = log_cosh_moments(r * x[0] + h, r * sigma);
        let rho = (0.5 * x[1]).exp() / sigma;
        let psi = self.entropy.eval(rho);
        let g_m = 0.5 * beta * (r * r * mo.sech2 - 1.0);
        [
            0.5 * beta * (r * mo.tanh - x[0]),
            -beta * (1.0 - 4.0 * psi),
            g_m + 2.0 * beta * psi,
            g_m,
        ]
    }
}

/// The lone light component's drift run backwards in time, s = τ_end − τ:
/// dm/ds = −(β/2)(R T(R m + h, Rσ) − m).
struct Separatrix<'a> {
    target: Bimodal,
    schedule: &'a dyn Schedule,
    lr: f64,
    tau_end: f64,
}

impl OdeSystem<1> for Separatrix<'_> {
    fn rhs(&self, s: f64, x: &[f64; 1]) -> [f64; 1] {
        let beta = self.schedule.beta((self.tau_end - s) / self.lr);
        let (r, h) = (self.target.r, self.target.h);
        let t = TanhTable::get().eval(r * x[0] + h, r / beta.sqrt());
        [-0.5 * beta * (r * t - x[0])]
    }
}

/// The unstable zero of the lone drift at β (the boundary of the light basin), if β ≥ β_c.
pub fn unstable_zero(target: &Bimodal, beta: f64) -> Option<f64> {
    let (fmin, mut lo) = drift_min(target, beta);
    if fmin > 0.0 {
        return None;
    }
    let tab = TanhTable::get();
    let (r, h) = (target.r, target.h);
    let f = |m: f64| r * tab.eval(r * m + h, r / beta.sqrt()) - m;
    let mut hi = 0.0;
    if f(hi) <= 0.0 {
        return Some(hi);
    }
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if f(mid) <= 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(0.5 * (lo + hi))
}

/// Everything the formula computes for one cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FormulaCell {
    /// P(collapse) predicted.
    pub p: f64,
    /// The critical half-split δ_c at ΔM_0 = 0: collapse iff |δ_0| < δ_c.
    pub delta_c: f64,
    /// Growth of the split at the decisive time, G(τ*).
    pub growth_split: f64,
    /// Growth of the centre's deviation there, H(τ*).
    pub growth_centre: f64,
    /// ℓ(τ*) = M_b(τ*) − m_sep(τ*).
    pub ell: f64,
    /// SGD step τ*/η of the decisive time.
    pub t_star: f64,
}

/// The model the formula needs.
#[derive(Clone, Debug)]
pub struct FormulaModel {
    /// The target.
    pub target: Bimodal,
    /// Dimension d.
    pub d: usize,
    /// η (τ = η t).
    pub lr: f64,
    /// Standard deviation s of the initial means' coordinates.
    pub init_scale: f64,
    /// Steps after t0 (at β = 1).
    pub extra_steps: f64,
    /// The bistability onset of the target.
    pub onset: Option<Bistability>,
    entropy: EntropyTable,
    /// m_u(β = 1) (computed once: most schedules end at β = 1).
    m_u_one: Option<f64>,
}

/// Number of time nodes on which the first-passage condition is checked.
const NODES: usize = 400;

impl FormulaModel {
    /// The model for `target` in dimension d (w_1 = ½ fixed), η = `lr`, initial means
    /// N(0, s² I_d), `extra_steps` at β = 1 after the annealing.
    ///
    /// ```
    /// use annealvi::target::IsotropicMixture;
    /// use annealvi::theory::formula::FormulaModel;
    ///
    /// // the paper's problem: d = 512, R = 3, w* = 0.8, η = 0.05, initial means N(0, I_d / d)
    /// let target = *IsotropicMixture::bimodal(512, 3.0, 0.8).as_bimodal().unwrap();
    /// let model = FormulaModel::new(target, 512, 0.05, 1.0 / 512f64.sqrt(), 1000.0);
    /// let fast = model.cell(0.01, 100.0).p; // quick annealing
    /// let slow = model.cell(0.01, 10_000.0).p; // slow annealing
    /// assert!((0.0..=1.0).contains(&fast) && (0.0..=1.0).contains(&slow));
    /// assert!(slow < fast); // annealing slowly mitigates collapse
    /// ```
    pub fn new(target: Bimodal, d: usize, lr: f64, init_scale: f64, extra_steps: f64) -> Self {
        Self {
            onset: bistability(&target),
            target,
            d,
            lr,
            init_scale,
            extra_steps,
            entropy: EntropyTable::new(0.5),
            m_u_one: unstable_zero(&target, 1.0),
        }
    }

    /// The model of a sweep's runs, where the formula applies (bimodal target, 2 components,
    /// fixed weights ½, random initial means).
    pub fn from_sweep(cfg: &crate::sweep::SweepConfig) -> Option<Self> {
        let run = &cfg.run;
        let target = run.build_target();
        let b = *target.as_bimodal()?;
        if run.student.components != 2 || run.fixed_w1() != Some(0.5) {
            return None;
        }
        Some(Self::new(
            b,
            run.target.d,
            run.optim.lr,
            run.init_scale()?,
            cfg.grid.extra_steps as f64,
        ))
    }

    /// The formula for the exponential schedule (β_i, t0) followed by `extra_steps` at β = 1.
    pub fn cell(&self, beta_i: f64, t0: f64) -> FormulaCell {
        let nan = FormulaCell {
            p: f64::NAN,
            delta_c: f64::NAN,
            growth_split: f64::NAN,
            growth_centre: f64::NAN,
            ell: f64::NAN,
            t_star: f64::NAN,
        };
        let sched = Exponential { beta_i, t0 };
        let tau_end = self.lr * (t0 + self.extra_steps);
        if tau_end <= 0.0 {
            return nan;
        }
        let times: Vec<f64> = (0..=NODES)
            .map(|k| tau_end * k as f64 / NODES as f64)
            .collect();
        // the symmetric branch and the linearised growth factors
        let s = self.init_scale;
        let d2 = 2.0 * s * s * (self.d.saturating_sub(1)) as f64;
        let branch = Branch {
            target: self.target,
            schedule: &sched,
            lr: self.lr,
            entropy: &self.entropy,
        };
        let tol = Tolerance {
            rtol: 1e-8,
            atol: 1e-10,
            max_step: 20.0,
        };
        let Ok(br) = integrate(
            &branch,
            0.0,
            [0.0, d2.max(1e-300).ln(), 0.0, 0.0],
            &times[1..],
            tol,
        ) else {
            return nan;
        };
        // the separatrix, backwards from the light basin's boundary at the end
        let beta_end = sched.beta(t0 + self.extra_steps);
        let sep: Vec<f64> = match unstable_zero(&self.target, beta_end) {
            None => vec![f64::NEG_INFINITY; NODES + 1],
            Some(mu) => {
                let back = Separatrix {
                    target: self.target,
                    schedule: &sched,
                    lr: self.lr,
                    tau_end,
                };
                let s_times: Vec<f64> = times[1..].iter().map(|t| t - times[0]).collect();
                match integrate(&back, 0.0, [mu], &s_times, tol) {
                    // s_k = τ_end − τ_{NODES−k}
                    Ok(v) => {
                        let mut out = vec![0.0; NODES + 1];
                        out[NODES] = mu;
                        for (k, x) in v.iter().enumerate() {
                            out[NODES - 1 - k] = x[0];
                        }
                        out
                    }
                    Err(_) => return nan,
                }
            }
        };
        let node = |k: usize| -> (f64, f64, f64) {
            let (mb, lg, lh) = if k == 0 {
                (0.0, 0.0, 0.0)
            } else {
                let x = br[k - 1];
                (x[0], x[2], x[3])
            };
            (mb - sep[k], lg.exp(), lh.exp())
        };
        let nodes: Vec<(f64, f64, f64)> = (0..=NODES).map(node).collect();
        // δ_c(ΔM_0) = min_τ (ℓ(τ) + ΔM_0 H(τ))/G(τ), floored at 0
        let delta_c = |dm: f64| -> (f64, usize) {
            let mut best = (f64::INFINITY, 0);
            for (k, &(l, g, h)) in nodes.iter().enumerate() {
                let v = (l + dm * h) / g;
                if v < best.0 {
                    best = (v, k);
                }
            }
            (best.0.max(0.0), best.1)
        };
        // P = E_y erf(δ_c(y s/√2)/s), y ~ N(0, 1)
        let rule = standard_normal(161, 8.0);
        let p = rule.integrate(|y| {
            let dc = delta_c(y * s / std::f64::consts::SQRT_2).0;
            if dc.is_infinite() {
                1.0
            } else {
                libm::erf(dc / s)
            }
        });
        let (dc0, k0) = delta_c(0.0);
        let (l, g, h) = nodes[k0];
        FormulaCell {
            p: p.clamp(0.0, 1.0),
            delta_c: dc0,
            growth_split: g,
            growth_centre: h,
            ell: l,
            t_star: times[k0] / self.lr,
        }
    }
}

impl FormulaModel {
    /// The start m* = m_sep(0) of the lone drift's separatrix: the lone drift
    /// dm/dτ = (β/2)(R T(R m + h, Rσ) − m) integrated backwards from the unstable zero
    /// m_u(β_end) through the exponential schedule (β_i, t0) and `extra_steps` at β = 1. The
    /// symmetric state m_1 = m_2 follows the lone drift exactly (the entropy's force on m_k is
    /// ∝ m_k − m_l), so m* is the vertex of the collapse region δ_c(M) (docs/theory.md §9).
    /// `None` when the end has no light basin or the integration fails.
    pub fn separatrix_start(&self, beta_i: f64, t0: f64) -> Option<f64> {
        self.separatrix_start_for(&Exponential { beta_i, t0 }, t0 + self.extra_steps)
    }

    /// [`Self::separatrix_start`] for any schedule run for `steps` SGD steps (β at the end
    /// must be where the light basin exists; the schedule's kink at `schedule.end()` is a
    /// breakpoint of the integration).
    pub fn separatrix_start_for(&self, schedule: &dyn Schedule, steps: f64) -> Option<f64> {
        self.separatrix_start_tol(schedule, steps, SEPARATRIX_TOL)
    }

    /// [`Self::separatrix_start_for`] with the tolerances `tol` of the backward integration
    /// (backwards the unstable zero attracts, so the error does not grow).
    pub fn separatrix_start_tol(
        &self,
        schedule: &dyn Schedule,
        steps: f64,
        tol: Tolerance,
    ) -> Option<f64> {
        let tau_end = self.lr * steps;
        let beta_end = schedule.beta(steps);
        let mu = if beta_end == 1.0 {
            self.m_u_one
        } else {
            unstable_zero(&self.target, beta_end)
        }?;
        if tau_end <= 0.0 {
            return Some(mu);
        }
        let back = Separatrix {
            target: self.target,
            schedule,
            lr: self.lr,
            tau_end,
        };
        let mut times = vec![tau_end];
        let kink = tau_end - self.lr * schedule.end();
        if kink > 0.0 && kink < tau_end {
            times.insert(0, kink);
        }
        integrate(&back, 0.0, [mu], &times, tol)
            .ok()
            .and_then(|v| v.last().map(|x| x[0]))
    }

    /// The decoupled limit of P(collapse): each component on its own follows the lone drift
    /// and ends in the light mode iff it starts below m* = [`Self::separatrix_start`], so with
    /// m_k ~ N(0, s²) independent, P = Φ(m*/s)² + Φ(−m*/s)². Exact when the components never
    /// interact (no annealing at d = 512: D⊥/σ ≈ 32 while the outcome is decided); above the
    /// ODE Monte Carlo on every cell of configs/fig2.toml otherwise (the entropy's repulsion
    /// helps the split), and useless for slow annealing, where m* → −∞ and it tends to 1.
    pub fn decoupled_limit(&self, beta_i: f64, t0: f64) -> f64 {
        match self.separatrix_start(beta_i, t0) {
            None => 1.0,
            Some(m) => {
                let p = 0.5 * libm::erfc(-m / (self.init_scale * std::f64::consts::SQRT_2));
                p * p + (1.0 - p) * (1.0 - p)
            }
        }
    }
}

/// Tolerances of [`FormulaModel::separatrix_start_for`].
const SEPARATRIX_TOL: Tolerance = Tolerance {
    rtol: 1e-9,
    atol: 1e-12,
    max_step: 5.0,
};

/// The exact reduced flow of a pair with equal fixed weights, x = (m_1, m_2, ln D⊥²)
/// (docs/theory.md §9, "The sharp formula"):
///
///   dm_k/dτ = (β/2)(R T(R m_k + h, Rσ) − m_k) + βψ(ρ)(m_k − m_l),
///   d ln D⊥²/dτ = −β(1 − 4ψ(ρ)),   ρ² = ((m_1 − m_2)² + D⊥²)/σ².
struct Pair<'a> {
    target: Bimodal,
    schedule: &'a dyn Schedule,
    lr: f64,
    entropy: &'a EntropyTable,
    tanh: &'static TanhTable,
}

impl OdeSystem<3> for Pair<'_> {
    fn rhs(&self, tau: f64, x: &[f64; 3]) -> [f64; 3] {
        let beta = self.schedule.beta(tau / self.lr);
        let (r, h) = (self.target.r, self.target.h);
        let rs = r / beta.sqrt();
        let dm = x[0] - x[1];
        let psi = self.entropy.eval(((dm * dm + x[2].exp()) * beta).sqrt());
        let (t1, t2) = self.tanh.eval2(r * x[0] + h, r * x[1] + h, rs);
        let hb = 0.5 * beta;
        [
            hb * (r * t1 - x[0]) + beta * psi * dm,
            hb * (r * t2 - x[1]) - beta * psi * dm,
            -beta * (1.0 - 4.0 * psi),
        ]
    }
}

/// Integrates the pair flow from (0, x0) through each of `times` (ascending) with the
/// Bogacki–Shampine 3(2) pair (FSAL: three new right-hand sides per step) and adaptive steps;
/// returns the state at the last time, `None` if a state becomes non-finite or the step
/// underflows or more than [`super::MAX_STEPS`] steps are needed. On the pair flow the step is
/// limited by stability (rates up to ~4β per unit τ) more than by accuracy, and a cheap
/// low-order step then costs fewer right-hand sides than Dormand–Prince's six or seven.
fn integrate_bs3<S: OdeSystem<3>>(
    dy: &S,
    x0: [f64; 3],
    times: &[f64],
    tol: Tolerance,
) -> Option<[f64; 3]> {
    let mut t = 0.0f64;
    let mut x = x0;
    let mut k1 = dy.rhs(t, &x);
    let mut h = 0.01f64.min(tol.max_step);
    let mut taken = 0usize;
    for &target in times {
        while t < target {
            taken += 1;
            if taken > super::MAX_STEPS {
                return None;
            }
            let hh = h.min(target - t).min(tol.max_step);
            let ax = |k: &[f64; 3], c: f64| -> [f64; 3] {
                [
                    x[0] + hh * c * k[0],
                    x[1] + hh * c * k[1],
                    x[2] + hh * c * k[2],
                ]
            };
            let k2 = dy.rhs(t + 0.5 * hh, &ax(&k1, 0.5));
            let k3 = dy.rhs(t + 0.75 * hh, &ax(&k2, 0.75));
            let mut xn = x;
            for i in 0..3 {
                xn[i] += hh * (2.0 / 9.0 * k1[i] + 1.0 / 3.0 * k2[i] + 4.0 / 9.0 * k3[i]);
            }
            let k4 = dy.rhs(t + hh, &xn);
            let mut err = 0.0f64;
            for i in 0..3 {
                // third-order solution minus the embedded second-order one
                let e = hh
                    * (-5.0 / 72.0 * k1[i] + 1.0 / 12.0 * k2[i] + 1.0 / 9.0 * k3[i]
                        - 1.0 / 8.0 * k4[i]);
                let sc = tol.atol + tol.rtol * x[i].abs().max(xn[i].abs());
                err = err.max(e.abs() / sc);
            }
            if !err.is_finite() || xn.iter().any(|v| !v.is_finite()) {
                if hh < 1e-12 {
                    return None;
                }
                h = hh * 0.25;
                continue;
            }
            if err <= 1.0 {
                t += hh;
                x = xn;
                k1 = k4;
            }
            let factor = if err == 0.0 {
                5.0
            } else {
                (0.9 * err.powf(-1.0 / 3.0)).clamp(0.2, 5.0)
            };
            let untruncated = h.min(tol.max_step);
            h = hh * factor;
            if h < 1e-12 {
                if err <= 1.0 && hh < untruncated {
                    h = untruncated;
                } else {
                    return None;
                }
            }
        }
    }
    Some(x)
}

/// Settings of the sharp formula ([`FormulaModel::sharp_for_with`]): how the thresholds δ_c(M)
/// are found and integrated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SharpSettings {
    /// Tolerances of the pair integrations (the outcome is a sign at the end).
    pub pair_tol: Tolerance,
    /// Integrate the pair with the Bogacki–Shampine 3(2) pair (else Dormand–Prince 5(4)).
    pub low_order: bool,
    /// Tolerances of the backward integration of the lone separatrix that finds the vertex m*.
    pub separatrix_tol: Tolerance,
    /// Final width of a threshold's bracket, relative to s (δ_c is its midpoint, so its error is
    /// at most half of it; an error ε in δ_c moves P by at most (2/√π) ε/s ≈ 1.1 ε/s).
    pub delta_tol: f64,
    /// First step of a bracket around the predicted threshold, relative to s (doubled until
    /// the threshold is bracketed).
    pub bracket: f64,
    /// Predict a node's threshold by linear extrapolation from its two inner neighbours (else
    /// start from the nearest neighbour's threshold).
    pub extrapolate: bool,
    /// Centres M, in standard deviations s/√2 of M, at which δ_c is found (ascending).
    pub nodes: &'static [f64],
    /// Once a node's δ_c exceeds this (relative to s; erf(2.5) = 0.9996), the nodes further
    /// out on that side are not integrated: δ_c grows away from the vertex, and those nodes
    /// get δ_c(M) = δ_c(last) + |M − M_last| (the far arms' slope, 1).
    pub saturation: f64,
    /// Largest factor by which `delta_tol` is widened where a threshold matters less: at a
    /// node y standard deviations of M from 0 with predicted threshold g, P depends on δ_c
    /// through φ(y) e^{−g²/s²}, so the width is `delta_tol` · min(`tol_growth`,
    /// e^{y²/2 + g²/s²}) (1: the same width everywhere).
    pub tol_growth: f64,
    /// Nodes of the final 1-D quadrature over M.
    pub quadrature: usize,
}

/// Centres of [`SharpSettings::reference`].
const REFERENCE_NODES: [f64; 11] = [
    -3.5, -2.5, -1.75, -1.1, -0.55, 0.0, 0.55, 1.1, 1.75, 2.5, 3.5,
];

impl SharpSettings {
    /// The first published settings (docs/theory.md §9): rtol 1e-4, 11 centres, thresholds to
    /// 4e-3 s bracketed from the nearest neighbour's by steps of 0.1 s, every node integrated
    /// to the end. Kept to measure the default against.
    pub const fn reference() -> Self {
        Self {
            pair_tol: Tolerance {
                rtol: 1e-4,
                atol: 1e-6,
                max_step: 50.0,
            },
            low_order: false,
            separatrix_tol: SEPARATRIX_TOL,
            delta_tol: 4e-3,
            bracket: 0.1,
            extrapolate: false,
            nodes: &REFERENCE_NODES,
            saturation: f64::INFINITY,
            tol_growth: 1.0,
            quadrature: 401,
        }
    }
}

impl Default for SharpSettings {
    /// The default (fast) settings: see docs/theory.md §9 ("Cost").
    fn default() -> Self {
        Self {
            pair_tol: Tolerance {
                rtol: 1e-2,
                atol: 1e-4,
                max_step: 200.0,
            },
            low_order: true,
            separatrix_tol: Tolerance {
                rtol: 1e-7,
                atol: 1e-9,
                max_step: 50.0,
            },
            delta_tol: 7e-3,
            bracket: 0.05,
            extrapolate: true,
            nodes: &REFERENCE_NODES,
            saturation: 1.5,
            tol_growth: 10.0,
            quadrature: 401,
        }
    }
}

/// The sharp formula for one cell ([`FormulaModel::sharp`]).
#[derive(Clone, Debug, PartialEq)]
pub struct SharpCell {
    /// P(collapse).
    pub p: f64,
    /// The vertex m* of the collapse region (start of the lone separatrix); NaN when the end
    /// has no light basin.
    pub m_star: f64,
    /// The centres M (ascending) and the thresholds δ_c(M) there (∞: every split collapses).
    pub nodes: Vec<(f64, f64)>,
    /// Integrations of the pair flow used.
    pub integrations: usize,
}

impl FormulaModel {
    /// The sharp formula for the exponential schedule (β_i, t0) followed by `extra_steps` at
    /// β = 1 (docs/theory.md §9, "The sharp formula").
    ///
    /// ```
    /// use annealvi::target::IsotropicMixture;
    /// use annealvi::theory::formula::FormulaModel;
    ///
    /// let target = *IsotropicMixture::bimodal(512, 3.0, 0.8).as_bimodal().unwrap();
    /// let model = FormulaModel::new(target, 512, 0.05, 1.0, 500.0);
    /// let (fast, slow) = (model.sharp(0.01, 100.0).p, model.sharp(0.01, 10_000.0).p);
    /// assert!(fast > 0.5 && slow < 0.05);
    /// ```
    pub fn sharp(&self, beta_i: f64, t0: f64) -> SharpCell {
        self.sharp_for(&Exponential { beta_i, t0 }, t0 + self.extra_steps)
    }

    /// The sharp formula for any schedule β(t) run for `steps` SGD steps (kink, if any, at
    /// `schedule.end()`), with the default [`SharpSettings`].
    pub fn sharp_for(&self, schedule: &dyn Schedule, steps: f64) -> SharpCell {
        self.sharp_for_with(schedule, steps, &SharpSettings::default())
    }

    /// The sharp formula for any schedule β(t) run for `steps` SGD steps, with `settings`.
    ///
    /// With w_1 = w_2 = ½ the flow closes exactly on (m_1, m_2, D⊥²) (`Pair`); the
    /// collapse region is |δ| < δ_c(M) with M ~ N(0, s²/2), δ ~ N(0, s²/2) independent, so
    ///
    ///   P(collapse) = E_M erf(δ_c(M)/s),
    ///
    /// one 1-D quadrature. δ_c is found at the centres `settings.nodes` by bracketing and
    /// bisection with forward integrations of the pair flow from the mean orthogonal
    /// separation D⊥² = 2s²(d − 1), walking outwards from the vertex m* (δ_c(m*) = 0, one
    /// backward integration of the lone drift) so that each bracket starts from a prediction
    /// made with the inner neighbours' thresholds; δ_c is linear between nodes and constant
    /// beyond the outer ones.
    pub fn sharp_for_with(
        &self,
        schedule: &dyn Schedule,
        steps: f64,
        settings: &SharpSettings,
    ) -> SharpCell {
        let s = self.init_scale;
        let sd = s / std::f64::consts::SQRT_2;
        let tau_end = self.lr * steps;
        let tau_kink = self.lr * schedule.end();
        let mut times = Vec::with_capacity(2);
        if tau_kink > 0.0 && tau_kink < tau_end {
            times.push(tau_kink);
        }
        times.push(tau_end.max(0.0));
        let pair = Pair {
            target: self.target,
            schedule,
            lr: self.lr,
            entropy: &self.entropy,
            tanh: TanhTable::get(),
        };
        let ld2 = (2.0 * s * s * self.d.saturating_sub(1) as f64)
            .max(1e-300)
            .ln();
        let count = std::cell::Cell::new(0usize);
        // None: the integration failed
        let collapses = |m: f64, delta: f64| -> Option<bool> {
            count.set(count.get() + 1);
            let x0 = [m + delta, m - delta, ld2];
            let x = if settings.low_order {
                integrate_bs3(&pair, x0, &times, settings.pair_tol)?
            } else {
                *integrate(&pair, 0.0, x0, &times, settings.pair_tol)
                    .ok()?
                    .last()?
            };
            Some((x[0] >= 0.0) == (x[1] >= 0.0))
        };
        let m_star = self.separatrix_start_tol(schedule, steps, settings.separatrix_tol);
        let nodes_sd = settings.nodes;
        let (lo_m, hi_m) = (nodes_sd[0] * sd, nodes_sd[nodes_sd.len() - 1] * sd);
        let vertex = m_star.filter(|m| (lo_m..=hi_m).contains(m));
        let mut ms: Vec<f64> = nodes_sd
            .iter()
            .map(|k| k * sd)
            .filter(|m| vertex.is_none_or(|v| (m - v).abs() > 0.15 * sd))
            .collect();
        // walk outwards from the vertex (or from the centre node when it is off the grid)
        let start = match vertex {
            Some(v) => {
                let i = ms.partition_point(|&m| m < v);
                ms.insert(i, v);
                i
            }
            None => ms.len() / 2,
        };
        let delta_max = 6.0 * s;
        let threshold = |m: f64, guess: Option<f64>| -> Option<f64> {
            let tol = settings.delta_tol
                * s
                * match guess {
                    Some(g) if g.is_finite() => {
                        let (y, g) = (m / sd, g / s);
                        (0.5 * y * y + g * g).exp().min(settings.tol_growth)
                    }
                    _ => 1.0,
                };
            let (mut lo, mut hi);
            match guess {
                Some(g) if g.is_finite() => {
                    let mut step = (settings.bracket * s).max(tol);
                    let g = g.max(tol);
                    if collapses(m, g)? {
                        lo = g;
                        hi = lo + step;
                        while collapses(m, hi)? {
                            lo = hi;
                            step *= 2.0;
                            hi = lo + step;
                            if hi > delta_max {
                                return Some(f64::INFINITY);
                            }
                        }
                    } else {
                        if g <= tol {
                            // no collapse at the smallest split resolved
                            return Some(0.0);
                        }
                        hi = g;
                        lo = (hi - step).max(0.0);
                        while lo > 0.0 && !collapses(m, lo.max(tol))? {
                            hi = lo;
                            step *= 2.0;
                            lo = (hi - step).max(0.0);
                        }
                        if lo <= 0.0 && !collapses(m, tol)? {
                            return Some(0.0);
                        }
                    }
                }
                _ => {
                    if collapses(m, delta_max)? {
                        return Some(f64::INFINITY);
                    }
                    if !collapses(m, tol)? {
                        return Some(0.0);
                    }
                    (lo, hi) = (0.0, delta_max);
                }
            }
            while hi - lo > tol {
                let mid = 0.5 * (lo + hi);
                if collapses(m, mid)? {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            Some(0.5 * (lo + hi))
        };
        let nan = |m_star: Option<f64>| SharpCell {
            p: f64::NAN,
            m_star: m_star.unwrap_or(f64::NAN),
            nodes: Vec::new(),
            integrations: count.get(),
        };
        let mut dc = vec![f64::NAN; ms.len()];
        if vertex.is_some() {
            dc[start] = 0.0;
        } else {
            match threshold(ms[start], None) {
                Some(v) => dc[start] = v,
                None => return nan(m_star),
            }
        }
        // the prediction of node i from its inner neighbours j (nearest) and k
        let predict = |dc: &[f64], ms: &[f64], i: usize, j: usize, k: Option<usize>| -> f64 {
            match k {
                Some(k) if settings.extrapolate && dc[k].is_finite() && dc[j].is_finite() => {
                    let slope = (dc[j] - dc[k]) / (ms[j] - ms[k]);
                    // the arms' slope is at most 1 in |M − m*|
                    dc[j] + slope.clamp(-1.0, 1.0) * (ms[i] - ms[j])
                }
                _ => dc[j],
            }
        };
        let sat = settings.saturation * s;
        for side in [-1i64, 1] {
            let mut i = start as i64 + side;
            while i >= 0 && (i as usize) < ms.len() {
                let iu = i as usize;
                let j = (i - side) as usize;
                let k = i - 2 * side;
                let k = (k >= 0 && (k as usize) < ms.len() && (k - start as i64) * side >= 0)
                    .then_some(k as usize);
                if sat.is_finite() && dc[j] >= sat {
                    dc[iu] = if dc[j].is_finite() {
                        dc[j] + (ms[iu] - ms[j]).abs()
                    } else {
                        dc[j]
                    };
                } else {
                    let g = predict(&dc, &ms, iu, j, k);
                    match threshold(ms[iu], Some(g)) {
                        Some(v) => dc[iu] = v,
                        None => return nan(m_star),
                    }
                }
                i += side;
            }
        }
        let nodes: Vec<(f64, f64)> = ms.into_iter().zip(dc).collect();
        let at = |m: f64| -> f64 {
            let k = nodes.partition_point(|n| n.0 <= m);
            if k == 0 {
                return nodes[0].1;
            }
            if k == nodes.len() {
                return nodes[k - 1].1;
            }
            let (a, b) = (nodes[k - 1], nodes[k]);
            let t = (m - a.0) / (b.0 - a.0);
            if a.1.is_infinite() || b.1.is_infinite() {
                if t < 0.5 { a.1 } else { b.1 }
            } else {
                a.1 + t * (b.1 - a.1)
            }
        };
        // P = E_M erf(δ_c(M)/s): the integrand has kinks at the nodes, so a fine rule
        let rule = standard_normal(settings.quadrature, 8.0);
        let p = rule.integrate(|y| {
            let v = at(y * sd);
            if v.is_infinite() {
                1.0
            } else {
                libm::erf(v / s)
            }
        });
        SharpCell {
            p: p.clamp(0.0, 1.0),
            m_star: m_star.unwrap_or(f64::NAN),
            nodes,
            integrations: count.get(),
        }
    }
}

/// CPU time of the calling thread in seconds (Linux: /proc/thread-self/schedstat), `None`
/// where the system does not say.
pub fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: f64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns * 1e-9)
}

/// Cost of the sharp formula with `settings`: `repeat` passes over `cells` (β_i, t0) on the
/// calling thread.
#[derive(Clone, Debug, PartialEq)]
pub struct SharpCost {
    /// Wall-clock seconds per cell.
    pub wall: f64,
    /// CPU seconds of the thread per cell ([`thread_cpu_seconds`]; the wall time where the
    /// system does not give it): on a loaded machine the wall time also counts waiting.
    pub cpu: f64,
    /// Pair-flow integrations per cell.
    pub integrations: f64,
    /// P(collapse) of each cell.
    pub p: Vec<f64>,
}

/// Measures [`SharpCost`]: `repeat` passes over `cells` on the calling thread.
pub fn time_sharp(
    model: &FormulaModel,
    cells: &[(f64, f64)],
    settings: &SharpSettings,
    repeat: usize,
) -> SharpCost {
    let start = std::time::Instant::now();
    let cpu0 = thread_cpu_seconds();
    let mut ps = Vec::new();
    let mut integrations = 0usize;
    for _ in 0..repeat.max(1) {
        ps.clear();
        for &(bi, t0) in cells {
            let c = model.sharp_for_with(
                &Exponential { beta_i: bi, t0 },
                t0 + model.extra_steps,
                settings,
            );
            integrations += c.integrations;
            ps.push(c.p);
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let cpu = match (cpu0, thread_cpu_seconds()) {
        (Some(a), Some(b)) => b - a,
        _ => wall,
    };
    let n = (cells.len() * repeat.max(1)).max(1) as f64;
    SharpCost {
        wall: wall / n,
        cpu: cpu / n,
        integrations: integrations as f64 / n,
        p: ps,
    }
}

/// The β_i → 0 limit at fixed rate r = β_i^{−1/t0} > 1: the formula at β_i = 1e-12.
pub fn asymptote(model: &FormulaModel, rate: f64) -> FormulaCell {
    let beta_i = 1e-12f64;
    let t0 = (1.0 / beta_i).ln() / rate.ln();
    model.cell(beta_i, t0)
}

/// The sharp formula's β_i → 0 limit at fixed rate r = β_i^{−1/t0} > 1: the sharp formula at
/// β_i = 1e-12 (converged to 1e-3 by β_i = 1e-6 on the paper's problem; docs/theory.md §9).
pub fn sharp_asymptote(model: &FormulaModel, rate: f64) -> f64 {
    let beta_i = 1e-12f64;
    model.sharp(beta_i, (1.0 / beta_i).ln() / rate.ln()).p
}

/// The slow-annealing constant J = lim_{r→1} λ ln G(r), λ = ln r/η: the linearised split
/// grows by G ≈ e^{J/λ} before the decision, so P_∞(r) ≈ erf(ℓ_∞ e^{−Jη/ln r}/s). Estimated
/// at r = 1.0001 (the limit is approached like 1/t0: the steps at β = 1 add a constant to
/// ln G).
pub fn slow_annealing_constant(model: &FormulaModel) -> f64 {
    let r = 1.0001f64;
    let a = asymptote(model, r);
    r.ln() / model.lr * a.growth_split.ln()
}

/// Writes DIR/asymptote.csv (`rate,log_rate,p_asymptote,delta_c,growth_split,growth_centre,
/// ell,t_star,p_sharp` at `n` log-spaced ln r in [lo, hi]: the linearised formula's limit and
/// its quantities, then the sharp formula's limit) and returns a summary of the constants.
pub fn write_asymptote(
    dir: &std::path::Path,
    model: &FormulaModel,
    (lo, hi): (f64, f64),
    n: usize,
) -> crate::error::Result<String> {
    use std::fmt::Write as _;
    let mut csv = String::from(
        "rate,log_rate,p_asymptote,delta_c,growth_split,growth_centre,ell,t_star,p_sharp\n",
    );
    for i in 0..n {
        let x = lo * (hi / lo).powf(i as f64 / (n.max(2) - 1) as f64);
        let a = asymptote(model, x.exp());
        let _ = writeln!(
            csv,
            "{},{x},{:.6e},{:.6e},{:.6e},{:.6e},{},{},{:.6e}",
            x.exp(),
            a.p,
            a.delta_c,
            a.growth_split,
            a.growth_centre,
            a.ell,
            a.t_star,
            sharp_asymptote(model, x.exp())
        );
    }
    crate::output::write_text(&dir.join("asymptote.csv"), &csv)?;
    let mut s = String::new();
    match model.onset {
        Some(b) => {
            let _ = write!(
                s,
                "formula constants: beta_c = {:.4}, m_sn = {:.4}, J = {:.4} (slow annealing: \
                 ln G = J eta / ln r)",
                b.beta_c,
                b.m_sn,
                slow_annealing_constant(model)
            );
        }
        None => s.push_str("formula: the target has no light-side basin at beta = 1"),
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::IsotropicMixture;

    fn drift(b: &Bimodal, beta: f64, m: f64) -> f64 {
        b.r * log_cosh_moments(b.r * m + b.h, b.r / beta.sqrt()).tanh - m
    }

    #[test]
    fn saddle_node_and_unstable_zero_are_zeros_of_the_lone_drift() {
        let t = IsotropicMixture::bimodal(512, 3.0, 0.8);
        let b = *t.as_bimodal().unwrap();
        let on = bistability(&b).expect("bistable at β = 1");
        assert!(on.beta_c > 0.01 && on.beta_c < 1.0, "{on:?}");
        // f = 0 and f' = 0 at the saddle-node
        let h = 1e-4;
        assert!(drift(&b, on.beta_c, on.m_sn).abs() < 1e-6);
        let fp =
            (drift(&b, on.beta_c, on.m_sn + h) - drift(&b, on.beta_c, on.m_sn - h)) / (2.0 * h);
        assert!(fp.abs() < 1e-3, "f' = {fp}");
        // just below β_c there is no light-side zero, just above there is
        assert!(unstable_zero(&b, on.beta_c * 0.99).is_none());
        let mu = unstable_zero(&b, 1.0).unwrap();
        assert!(
            drift(&b, 1.0, mu).abs() < 1e-7 && mu < 0.0 && mu > on.m_sn,
            "m_u = {mu}"
        );
        // and it is unstable: f' > 0
        assert!(drift(&b, 1.0, mu + h) > 0.0 && drift(&b, 1.0, mu - h) < 0.0);
        eprintln!("beta_c {} m_sn {} m_u(1) {mu}", on.beta_c, on.m_sn);
    }
}
