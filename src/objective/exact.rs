//! The exact objective for the bimodal target and a K ≤ 2 student: F_β as a function of the
//! summary statistics (m_k, q_kl, σ_k, w_k), by one- and two-dimensional quadrature (see
//! docs/theory.md, "Exact objective"), and its gradient in θ.

use crate::error::{Error, Result};
use crate::family::{GmmStudent, VariationalFamily};
use crate::gauss1d::{log_cosh, log_cosh_moments};
use crate::quadrature::{Rule, chi_squared, standard_normal};
use crate::target::{Bimodal, IsotropicMixture};

/// The exact objective's value and gradient.
#[derive(Clone, Debug)]
pub struct ExactValue {
    /// F_β = KL(q ‖ π_β) in nats.
    pub kl: f64,
    /// Σ_k w_k E_k[ln q − β ln π] = F_β − ln Z_β.
    pub neg_elbo: f64,
    /// ∇_θ F_β, in the layout of θ.
    pub grad: Vec<f64>,
    /// Partial derivatives with respect to the summary statistics.
    pub stats_grad: StatsGrad,
}

/// ∂F_β with respect to the summary statistics of a K ≤ 2 student (entries for component 2
/// are zero when K = 1).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StatsGrad {
    /// ∂F/∂m_k.
    pub m: [f64; 2],
    /// ∂F/∂q_11, ∂F/∂q_12, ∂F/∂q_22 (q_12 = q_21 counted once).
    pub q: [f64; 3],
    /// ∂F/∂σ_k.
    pub sigma: [f64; 2],
    /// ∂F/∂w_1 with w_2 = 1 − w_1.
    pub w1: f64,
}

/// The exact objective as a function of the summary statistics.
#[derive(Clone, Debug)]
pub struct ReducedValue {
    /// F_β = KL(q ‖ π_β).
    pub kl: f64,
    /// F_β − ln Z_β.
    pub neg_elbo: f64,
    /// ∂F_β/∂(statistics).
    pub grad: StatsGrad,
    /// E_q ln q = Σ_k w_k H_k (minus the entropy of q).
    pub entropy_term: f64,
    /// E_q ln π = Σ_k w_k P_k (untempered), so that KL(q ‖ π) = entropy_term − cross_term.
    pub cross_term: f64,
}

/// Summary statistics of a K ≤ 2 student (component 2 ignored when K = 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reduced {
    /// Number of components (1 or 2).
    pub k: usize,
    /// m_k = μ_k·μ̂.
    pub m: [f64; 2],
    /// q_11, q_12, q_22.
    pub q: [f64; 3],
    /// σ_k.
    pub sigma: [f64; 2],
    /// w_1 (w_2 = 1 − w_1).
    pub w1: f64,
}

/// Exact F_β for the bimodal target and a K ≤ 2 Gaussian-mixture student.
#[derive(Clone, Debug)]
pub struct ExactObjective {
    d: usize,
    rule_u: Rule,
    rule_v: Rule,
}

/// Value and partial derivatives of one component's entropy term
/// H_k = E_{x~N(μ_k, σ_k²)} ln q(x).
#[derive(Clone, Copy, Debug, Default)]
struct EntropyTerm {
    h: f64,
    d_dist: f64,
    d_sk: f64,
    d_sl: f64,
    d_wk: f64,
}

impl ExactObjective {
    /// Quadrature rules for dimension d: 401-node trapezoid for u ~ N(0, 1) on [−10, 10] and
    /// 96-node Gauss–Legendre panels for v ~ χ²_{d−1}.
    pub fn new(d: usize) -> Self {
        Self {
            d,
            rule_u: standard_normal(401, 10.0),
            rule_v: chi_squared(d.saturating_sub(1), 16, 6),
        }
    }

    /// Summary statistics of `q` in the layout [`Reduced`] (errors for K > 2).
    pub fn reduce(q: &GmmStudent, axis: &[f64]) -> Result<Reduced> {
        let k = q.components();
        if k > 2 {
            return Err(Error::Invalid(format!(
                "the exact objective supports students with 1 or 2 components, not {k}; use \
                 objective.estimator = \"full\" or \"stl\""
            )));
        }
        let s = q.stats(axis);
        Ok(if k == 1 {
            Reduced {
                k,
                m: [s.m[0], 0.0],
                q: [s.q[0], 0.0, 0.0],
                sigma: [s.sigma[0], 1.0],
                w1: 1.0,
            }
        } else {
            Reduced {
                k,
                m: [s.m[0], s.m[1]],
                q: [s.q[0], s.q[1], s.q[2]],
                sigma: [s.sigma[0], s.sigma[1]],
                w1: s.w[0],
            }
        })
    }

    /// H_k and its partials, for component k at distance `dist` = ‖μ_k − μ_l‖ from the other
    /// component l (scales sk, sl; weights wk, 1 − wk).
    fn entropy_term(&self, dist: f64, sk: f64, sl: f64, wk: f64) -> EntropyTerm {
        let dn = self.d as f64;
        let wl = 1.0 - wk;
        let ln2pi = (2.0 * std::f64::consts::PI).ln();
        let base = wk.ln() - 0.5 * dn * (ln2pi + 2.0 * sk.ln()) - 0.5 * dn;
        let sl2 = sl * sl;
        let sl3 = sl2 * sl;
        let rho2m1 = sk * sk / sl2 - 1.0;
        let c0 = (wl / wk).ln() + dn * (sk / sl).ln() - dist * dist / (2.0 * sl2);
        let c1 = -sk * dist / sl2;
        let (vx, vw): (&[f64], &[f64]) = if sk == sl {
            // v enters only linearly (through the derivative brackets): use its mean.
            (&[0.0][..], &[1.0][..])
        } else {
            (&self.rule_v.x, &self.rule_v.w)
        };
        let vmean_shift = if sk == sl {
            (self.d.saturating_sub(1)) as f64
        } else {
            0.0
        };
        let mut t = EntropyTerm::default();
        let (mut sp, mut e_dd, mut e_sk, mut e_sl, mut e_sig) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (&u, &wu) in self.rule_u.x.iter().zip(&self.rule_u.w) {
            let yu = c0 + c1 * u;
            for (&v0, &wv) in vx.iter().zip(vw) {
                let v = v0 + vmean_shift;
                let uv = u * u + v;
                let y = yu - 0.5 * uv * rho2m1;
                let wt = wu * wv;
                let sig = sigmoid(y);
                sp += wt * softplus(y);
                let ws = wt * sig;
                e_sig += ws;
                e_dd += ws * (-(dist + sk * u) / sl2);
                e_sk += ws * (dn / sk - dist * u / sl2 - uv * sk / sl2);
                e_sl += ws
                    * (-dn / sl + (dist * dist + 2.0 * sk * dist * u) / sl3 + uv * sk * sk / sl3);
            }
        }
        t.h = base + sp;
        t.d_dist = e_dd;
        t.d_sk = -dn / sk + e_sk;
        t.d_sl = e_sl;
        t.d_wk = 1.0 / wk - e_sig * (1.0 / wl + 1.0 / wk);
        t
    }

    /// F_β, Σ w_k E_k[ln q − β ln π] and ∂F_β/∂(statistics).
    pub fn evaluate_reduced(&self, st: &Reduced, target: &Bimodal, beta: f64) -> ReducedValue {
        let dn = self.d as f64;
        let r = target.r;
        let ln2pi = (2.0 * std::f64::consts::PI).ln();
        let qkk = [st.q[0], st.q[2]];
        // E_k ln π and its partials
        let mut p = [0.0; 2];
        let mut dp_dm = [0.0; 2];
        let mut dp_ds = [0.0; 2];
        for k in 0..st.k {
            let mo = log_cosh_moments(r * st.m[k] + target.h, r * st.sigma[k]);
            p[k] = -0.5 * dn * ln2pi - 0.5 * (qkk[k] + dn * st.sigma[k].powi(2)) - 0.5 * r * r
                + mo.log_cosh
                - log_cosh(target.h);
            dp_dm[k] = r * mo.tanh;
            dp_ds[k] = -dn * st.sigma[k] + r * r * st.sigma[k] * mo.sech2;
        }
        let mut g = StatsGrad::default();
        let log_z = target.log_z_tempered(beta);
        if st.k == 1 {
            let s = st.sigma[0];
            let h = -0.5 * dn * (ln2pi + 2.0 * s.ln()) - 0.5 * dn;
            let neg_elbo = h - beta * p[0];
            g.m[0] = -beta * dp_dm[0];
            g.q[0] = 0.5 * beta;
            g.sigma[0] = -dn / s - beta * dp_ds[0];
            return ReducedValue {
                kl: neg_elbo + log_z,
                neg_elbo,
                grad: g,
                entropy_term: h,
                cross_term: p[0],
            };
        }
        let w = [st.w1, 1.0 - st.w1];
        let dist2 = (st.q[0] + st.q[2] - 2.0 * st.q[1]).max(0.0);
        let dist = dist2.sqrt();
        let e1 = self.entropy_term(dist, st.sigma[0], st.sigma[1], w[0]);
        let e2 = self.entropy_term(dist, st.sigma[1], st.sigma[0], w[1]);
        let g1 = e1.h - beta * p[0];
        let g2 = e2.h - beta * p[1];
        let neg_elbo = w[0] * g1 + w[1] * g2;
        let gd = w[0] * e1.d_dist + w[1] * e2.d_dist;
        // ∂D/∂q11 = ∂D/∂q22 = 1/(2D), ∂D/∂q12 = −1/D; near D = 0, G_D ∝ D (symmetry)
        let gd_over_d = gd / dist.max(1e-6);
        g.m = [-beta * w[0] * dp_dm[0], -beta * w[1] * dp_dm[1]];
        g.q = [
            0.5 * beta * w[0] + 0.5 * gd_over_d,
            -gd_over_d,
            0.5 * beta * w[1] + 0.5 * gd_over_d,
        ];
        g.sigma = [
            w[0] * (e1.d_sk - beta * dp_ds[0]) + w[1] * e2.d_sl,
            w[1] * (e2.d_sk - beta * dp_ds[1]) + w[0] * e1.d_sl,
        ];
        g.w1 = g1 - g2 + w[0] * e1.d_wk - w[1] * e2.d_wk;
        ReducedValue {
            kl: neg_elbo + log_z,
            neg_elbo,
            grad: g,
            entropy_term: w[0] * e1.h + w[1] * e2.h,
            cross_term: w[0] * p[0] + w[1] * p[1],
        }
    }

    /// F_β and ∇_θ F_β for the student `q` (K ≤ 2) and the bimodal `target`.
    pub fn evaluate(
        &self,
        q: &GmmStudent,
        target: &IsotropicMixture,
        beta: f64,
    ) -> Result<ExactValue> {
        let b = target.as_bimodal().ok_or_else(|| {
            Error::Invalid(
                "the exact objective needs the bimodal target (target.kind = \"bimodal\"); \
                 use objective.estimator = \"full\" or \"stl\""
                    .into(),
            )
        })?;
        let axis = target.axis();
        let st = Self::reduce(q, axis)?;
        let ReducedValue {
            kl,
            neg_elbo,
            grad: sg,
            ..
        } = self.evaluate_reduced(&st, b, beta);
        let d = self.d;
        let mut grad = vec![0.0; q.params().len()];
        let kc = st.k;
        for k in 0..kc {
            let g = &mut grad[k * d..(k + 1) * d];
            for (i, gi) in g.iter_mut().enumerate() {
                *gi = sg.m[k] * axis[i];
            }
            let (own, cross) = if k == 0 {
                (sg.q[0], sg.q[1])
            } else {
                (sg.q[2], sg.q[1])
            };
            let other = 1 - k;
            for (i, gi) in g.iter_mut().enumerate() {
                *gi += 2.0 * own * q.mean(k)[i];
                if kc == 2 {
                    *gi += cross * q.mean(other)[i];
                }
            }
        }
        let off = q.log_sigma_offset();
        for k in 0..kc {
            grad[off + k] = st.sigma[k] * sg.sigma[k];
        }
        if kc == 2 && q.trainable_weights() {
            let w1w2 = st.w1 * (1.0 - st.w1);
            grad[q.logit_offset()] = sg.w1 * w1w2;
            grad[q.logit_offset() + 1] = -sg.w1 * w1w2;
        }
        Ok(ExactValue {
            kl,
            neg_elbo,
            grad,
            stats_grad: sg,
        })
    }
}

#[inline]
fn sigmoid(y: f64) -> f64 {
    if y >= 0.0 {
        1.0 / (1.0 + (-y).exp())
    } else {
        let e = y.exp();
        e / (1.0 + e)
    }
}

#[inline]
fn softplus(y: f64) -> f64 {
    y.max(0.0) + (-y.abs()).exp().ln_1p()
}
