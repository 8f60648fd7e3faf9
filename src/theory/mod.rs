//! The closed dynamics of the summary statistics.
//!
//! For the bimodal target and a 2-component student, the exact objective F_β depends on the
//! student only through s = (m_1, m_2, q_11, q_12, q_22, σ_1, σ_2, w_1) (docs/theory.md §3),
//! so the gradient flow that SGD follows (docs/theory.md §5, τ = η t)
//!
//!   dμ_k/dτ = −∇_{μ_k} F_β,   d ln σ_k/dτ = −κ_σ ∂F_β/∂ln σ_k,   da/dτ = −κ_w ∂F_β/∂a
//!
//! closes on s. With g = ∂F_β/∂s and ∇_{μ_k} F = g_{m_k} μ̂ + 2 g_{q_kk} μ_k + g_{q_12} μ_l:
//!
//!   dm_k/dτ   = −(g_{m_k} + 2 g_{q_kk} m_k + g_{q_12} m_l)
//!   dq_kk/dτ  = −2 (g_{m_k} m_k + 2 g_{q_kk} q_kk + g_{q_12} q_12)
//!   dq_12/dτ  = −(g_{m_1} m_2 + g_{m_2} m_1 + 2 (g_{q_11} + g_{q_22}) q_12 + g_{q_12} (q_11 + q_22))
//!   dσ_k/dτ   = −κ_σ σ_k² g_{σ_k}
//!   dw_1/dτ   = −2 κ_w (w_1 w_2)² g_{w_1}        (trainable weights only)
//!
//! with κ_σ = c_σ/d (the optimiser's group rate) and β = β(τ/η). In the quasi-static limit
//! the variances are slaved to the temperature, σ_k² = 1/β(τ), and only (m, q) evolve.
//!
//! Integration: Dormand–Prince 5(4) with adaptive steps (hand-written: the ODE crates on
//! crates.io pull in nalgebra, a long build for an 8-dimensional system).

pub mod formula;
pub mod grid;
pub mod monte_carlo;
pub mod quasi_static;
pub mod tables;

use crate::error::{Error, Result};
use crate::objective::{ExactObjective, Reduced};
use crate::schedule::Schedule;
use crate::target::Bimodal;

/// Number of state variables: m1, m2, q11, q12, q22, σ1, σ2, w1.
pub const DIM: usize = 8;

/// The statistics as a state vector.
pub fn to_vec(s: &Reduced) -> [f64; DIM] {
    [
        s.m[0], s.m[1], s.q[0], s.q[1], s.q[2], s.sigma[0], s.sigma[1], s.w1,
    ]
}

/// The state vector of a 2-component student's recorded statistics (σ and w included).
pub fn state_from_stats(s: &crate::family::gmm::Stats) -> [f64; DIM] {
    [
        s.m[0], s.m[1], s.q[0], s.q[1], s.q[2], s.sigma[0], s.sigma[1], s.w[0],
    ]
}

/// The state vector as statistics (K = 2).
pub fn from_vec(x: &[f64; DIM]) -> Reduced {
    Reduced {
        k: 2,
        m: [x[0], x[1]],
        q: [x[2], x[3], x[4]],
        sigma: [x[5], x[6]],
        w1: x[7],
    }
}

/// Everything the right-hand side needs besides the state.
pub struct Dynamics<'a> {
    /// Exact objective (quadrature rules for dimension d).
    pub exact: ExactObjective,
    /// The target.
    pub target: Bimodal,
    /// β as a function of the SGD step.
    pub schedule: &'a dyn Schedule,
    /// Base learning rate η (τ = η t).
    pub lr: f64,
    /// κ_σ = c_σ/d.
    pub sigma_rate: f64,
    /// κ_w = c_w (0 for fixed weights).
    pub logit_rate: f64,
    /// Slave the variances to σ² = 1/β(τ).
    pub quasi_static: bool,
}

/// The model the summary-statistics ODE describes: plain SGD on the raw KL of a 2-component
/// Gaussian-mixture student against the bimodal target in dimension d.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OdeModel {
    /// The target (dimension d, R, w*).
    pub target: Bimodal,
    /// Base learning rate η (τ = η t, t in SGD steps).
    pub lr: f64,
    /// c_σ: the log-scales' learning rate is η c_σ/d.
    pub sigma_lr_factor: f64,
    /// c_w for trainable weights (their learning rate η c_w); `None`: fixed weights.
    pub logit_lr_factor: Option<f64>,
}

impl OdeModel {
    /// The model of the training configured by `cfg` (bimodal target, 2 components).
    /// Errors with [`Error::OdeModel`] for another target or student.
    pub fn from_config(cfg: &crate::config::Config) -> Result<Self> {
        let target = cfg.build_target();
        let bimodal = *target.as_bimodal().ok_or(Error::OdeModel {
            needs: "target.kind = \"bimodal\"",
        })?;
        if cfg.student.components != 2 {
            return Err(Error::OdeModel {
                needs: "a 2-component student",
            });
        }
        Ok(OdeModel {
            target: bimodal,
            lr: cfg.optim.lr,
            sigma_lr_factor: cfg.optim.sigma_lr_factor,
            logit_lr_factor: cfg
                .student
                .trainable_weights
                .then_some(cfg.optim.logit_lr_factor),
        })
    }
}

impl<'a> Dynamics<'a> {
    /// The dynamics of `model` under `schedule`: κ_σ = c_σ/d, κ_w = c_w (0 for fixed weights).
    pub fn new(model: &OdeModel, schedule: &'a dyn Schedule, quasi_static: bool) -> Self {
        let d = model.target.d;
        Dynamics {
            exact: ExactObjective::new(d),
            target: model.target,
            schedule,
            lr: model.lr,
            sigma_rate: model.sigma_lr_factor / d as f64,
            logit_rate: model.logit_lr_factor.unwrap_or(0.0),
            quasi_static,
        }
    }

    /// [`Dynamics::new`] with the model of the training configured by `cfg`
    /// ([`OdeModel::from_config`]).
    pub fn from_config(
        cfg: &crate::config::Config,
        schedule: &'a dyn Schedule,
        quasi_static: bool,
    ) -> Result<Self> {
        Ok(Self::new(
            &OdeModel::from_config(cfg)?,
            schedule,
            quasi_static,
        ))
    }

    /// β at ODE time τ.
    pub fn beta(&self, tau: f64) -> f64 {
        self.schedule.beta(tau / self.lr)
    }
}

/// An autonomous-or-not ODE dx/dτ = f(τ, x) on R^N, with an optional projection applied
/// after every accepted step (to impose constraints such as σ² = 1/β).
pub trait OdeSystem<const N: usize> {
    /// dx/dτ at (τ, x).
    fn rhs(&self, tau: f64, x: &[f64; N]) -> [f64; N];
    /// Imposes constraints on an accepted state (default: none).
    fn project(&self, _tau: f64, _x: &mut [f64; N]) {}
    /// The largest |component| of an accepted state before [`integrate`] reports
    /// [`IntegrateError::Diverged`] (default: none, ∞). The summary-statistics flows use
    /// [`STATE_BOUND`]; the formula's auxiliary systems (log-growths, separatrices) have
    /// no such scale.
    fn state_bound(&self) -> f64 {
        f64::INFINITY
    }
}

impl OdeSystem<DIM> for Dynamics<'_> {
    /// Imposes the quasi-static variances on a state, if that is the model.
    fn project(&self, tau: f64, x: &mut [f64; DIM]) {
        if self.quasi_static {
            let s = 1.0 / self.beta(tau).sqrt();
            x[5] = s;
            x[6] = s;
        }
    }

    /// [`STATE_BOUND`]: the statistics (q_kk = ‖μ_k‖²) of a run the training loop calls
    /// diverged.
    fn state_bound(&self) -> f64 {
        STATE_BOUND
    }

    /// dx/dτ at (τ, x).
    fn rhs(&self, tau: f64, x: &[f64; DIM]) -> [f64; DIM] {
        let beta = self.beta(tau);
        let mut st = from_vec(x);
        if self.quasi_static {
            st.sigma = [1.0 / beta.sqrt(); 2];
        }
        let g = self.exact.evaluate_reduced(&st, &self.target, beta).grad;
        let (m, q, s) = (st.m, st.q, st.sigma);
        let mut dx = [0.0; DIM];
        dx[0] = -(g.m[0] + 2.0 * g.q[0] * m[0] + g.q[1] * m[1]);
        dx[1] = -(g.m[1] + 2.0 * g.q[2] * m[1] + g.q[1] * m[0]);
        dx[2] = -2.0 * (g.m[0] * m[0] + 2.0 * g.q[0] * q[0] + g.q[1] * q[1]);
        dx[4] = -2.0 * (g.m[1] * m[1] + 2.0 * g.q[2] * q[2] + g.q[1] * q[1]);
        dx[3] = -(g.m[0] * m[1]
            + g.m[1] * m[0]
            + 2.0 * (g.q[0] + g.q[2]) * q[1]
            + g.q[1] * (q[0] + q[2]));
        if !self.quasi_static {
            dx[5] = -self.sigma_rate * s[0] * s[0] * g.sigma[0];
            dx[6] = -self.sigma_rate * s[1] * s[1] * g.sigma[1];
        }
        let w1w2 = st.w1 * (1.0 - st.w1);
        dx[7] = -2.0 * self.logit_rate * w1w2 * w1w2 * g.w1;
        dx
    }
}

/// Tolerances and limits of the adaptive integrator.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Largest step in τ.
    pub max_step: f64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Self {
            rtol: 1e-7,
            atol: 1e-9,
            max_step: 1.0,
        }
    }
}

/// The most steps (accepted or rejected) one call of [`integrate`] may take. Normal
/// integrations of the paper's grids take a few thousand; a call that needs more (an absurd
/// learning rate or target scale) ends with [`IntegrateError::StepBudget`] instead of running
/// for hours.
pub const MAX_STEPS: usize = 20_000;

/// The largest magnitude of an ODE state variable (m_k, q_kl, …) before the integration ends
/// with [`IntegrateError::Diverged`]: 10¹², the square of the training loop's default
/// divergence bound on ‖μ_k‖ (q_kk = ‖μ_k‖²), so that theory and SGD call the same runs
/// diverged.
pub const STATE_BOUND: f64 = 1e12;

pub use crate::error::IntegrateError;

/// Integrates from (τ0, x0) to each time in `times` (ascending, ≥ τ0) with Dormand–Prince
/// 5(4); returns the state at each. Errors if a state becomes non-finite, the step underflows
/// or more than [`MAX_STEPS`] steps are needed.
pub fn integrate<S: OdeSystem<N> + ?Sized, const N: usize>(
    dy: &S,
    tau0: f64,
    x0: [f64; N],
    times: &[f64],
    tol: Tolerance,
) -> std::result::Result<Vec<[f64; N]>, IntegrateError> {
    let bound = dy.state_bound();
    // Dormand–Prince coefficients
    const C: [f64; 7] = [0.0, 0.2, 0.3, 0.8, 8.0 / 9.0, 1.0, 1.0];
    const A: [[f64; 6]; 7] = [
        [0.0; 6],
        [0.2, 0.0, 0.0, 0.0, 0.0, 0.0],
        [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0],
        [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0],
        [
            19372.0 / 6561.0,
            -25360.0 / 2187.0,
            64448.0 / 6561.0,
            -212.0 / 729.0,
            0.0,
            0.0,
        ],
        [
            9017.0 / 3168.0,
            -355.0 / 33.0,
            46732.0 / 5247.0,
            49.0 / 176.0,
            -5103.0 / 18656.0,
            0.0,
        ],
        [
            35.0 / 384.0,
            0.0,
            500.0 / 1113.0,
            125.0 / 192.0,
            -2187.0 / 6784.0,
            11.0 / 84.0,
        ],
    ];
    const B5: [f64; 7] = [
        35.0 / 384.0,
        0.0,
        500.0 / 1113.0,
        125.0 / 192.0,
        -2187.0 / 6784.0,
        11.0 / 84.0,
        0.0,
    ];
    const B4: [f64; 7] = [
        5179.0 / 57600.0,
        0.0,
        7571.0 / 16695.0,
        393.0 / 640.0,
        -92097.0 / 339200.0,
        187.0 / 2100.0,
        1.0 / 40.0,
    ];
    let mut out = Vec::with_capacity(times.len());
    let mut t = tau0;
    let mut x = x0;
    dy.project(t, &mut x);
    let mut h = 0.01f64.min(tol.max_step);
    let mut taken = 0usize;
    for &target in times {
        while t < target {
            taken += 1;
            if taken > MAX_STEPS {
                return Err(IntegrateError::StepBudget {
                    tau: t,
                    target,
                    steps: MAX_STEPS,
                });
            }
            let hh = h.min(target - t).min(tol.max_step);
            let mut k = [[0.0; N]; 7];
            for s in 0..7 {
                let mut xs = x;
                for (j, kj) in k.iter().enumerate().take(s) {
                    for i in 0..N {
                        xs[i] += hh * A[s][j] * kj[i];
                    }
                }
                k[s] = dy.rhs(t + C[s] * hh, &xs);
            }
            let mut x5 = x;
            let mut err = 0.0f64;
            for i in 0..N {
                let (mut d5, mut d4) = (0.0, 0.0);
                for s in 0..7 {
                    d5 += B5[s] * k[s][i];
                    d4 += B4[s] * k[s][i];
                }
                x5[i] += hh * d5;
                let sc = tol.atol + tol.rtol * x[i].abs().max(x5[i].abs());
                err = err.max((hh * (d5 - d4)).abs() / sc);
            }
            if !err.is_finite() || x5.iter().any(|v| !v.is_finite()) {
                if hh < 1e-12 {
                    return Err(IntegrateError::NonFinite { tau: t });
                }
                h = hh * 0.25;
                continue;
            }
            if err <= 1.0 {
                t += hh;
                x = x5;
                dy.project(t, &mut x);
                if x.iter().any(|v| v.abs() > bound) {
                    return Err(IntegrateError::Diverged { tau: t });
                }
            }
            let factor = if err == 0.0 {
                5.0
            } else {
                (0.9 * err.powf(-0.2)).clamp(0.2, 5.0)
            };
            let untruncated = h.min(tol.max_step);
            h = hh * factor;
            if h < 1e-12 {
                if err <= 1.0 && hh < untruncated {
                    // an accepted step cut short by the output time: when the previous step
                    // stopped a rounding error short of it, this one is ~1e-16 long, and the
                    // next step size must not be derived from it
                    h = untruncated;
                } else {
                    return Err(IntegrateError::StepUnderflow { tau: t });
                }
            }
        }
        out.push(x);
    }
    Ok(out)
}

/// Integrates the quasi-static ODE (σ² = 1/β) from `x0` to `tau_end` and says whether the
/// student collapsed: both m_k on the same side of 0 at the end (docs/theory.md §6).
pub fn ode_collapses(
    dy: &Dynamics,
    x0: [f64; DIM],
    tau_end: f64,
) -> std::result::Result<bool, IntegrateError> {
    let tol = Tolerance {
        rtol: 1e-6,
        atol: 1e-8,
        max_step: 5.0,
    };
    let x = integrate(dy, 0.0, x0, &[tau_end], tol)?[0];
    Ok((x[0] >= 0.0) == (x[1] >= 0.0))
}
