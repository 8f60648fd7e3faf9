//! The objective F_β(θ) = KL(q_θ ‖ π_β) = E_q[ln q_θ] − β E_q[ln π] + ln Z_β and its gradients.
//!
//! Two ways to get ∇F_β:
//!
//! * **Monte Carlo** ([`mc_gradient`]): B reparametrised samples per student component,
//!   x = μ_k + σ_k z, z ~ N(0, I_d), weighted by the fixed w_k (stratified over components).
//!   The *full* estimator differentiates ln q_θ(x) through both the sample path and θ; the
//!   *sticking-the-landing* (STL) estimator drops the score term ∂_θ ln q_θ(x)|_x, whose
//!   expectation Σ_k w_k E_k[∂_θ ln q_θ] = ∂_θ ∫ q_θ = 0 vanishes. Both are unbiased.
//!   The kernel uses that, for an isotropic-mixture target, every distance ‖x − c‖² is a
//!   function of a few dot products of z (with the means and with itself), so each sample costs
//!   (K + 1) dot products plus one or two axpys of length d, and the sampling of z.
//! * **Exact** ([`ExactObjective`]): for the bimodal target and a K ≤ 2 student, F_β is a
//!   function of the summary statistics (m_k, q_kl, σ_k, w_k) that needs only one-dimensional
//!   Gaussian expectations (for ln π) and a two-dimensional (u ~ N(0,1), v ~ χ²_{d−1})
//!   expectation for the mixture entropy; see docs/theory.md, "Exact objective". It does not
//!   apply to K > 2 students or to other targets (it returns an error there).
//!
//! All gradients are with respect to θ = (μ, ln σ, logits) as laid out by [`GmmStudent`].
//! The returned loss is the −ELBO against the *unnormalised* tempered target,
//! Σ_k w_k E_k[ln q − β ln π] = F_β − ln Z_β.

use crate::error::{Error, Result};
use crate::family::gmm::dot;
use crate::family::{GmmStudent, VariationalFamily};
use crate::gauss1d::{log_cosh, log_cosh_moments};
use crate::normal::{Isa, NormalGen};
use crate::quadrature::{Rule, chi_squared, standard_normal};
use crate::target::{Bimodal, IsotropicMixture, LogDensity, log_sum_exp};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Which gradient estimator drives training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Estimator {
    /// Full reparametrised gradient (path + score).
    Full,
    /// Sticking the landing: path term only.
    Stl,
    /// Exact gradient from the closed form + quadrature ("perfect gradients").
    Exact,
}

/// Reusable buffers for [`mc_gradient`].
#[derive(Clone, Debug, Default)]
pub struct McWorkspace {
    z: Vec<f64>,
    acc: Vec<f64>,
    normals: Option<NormalGen>,
}

/// Monte-Carlo reverse-KL gradient for a Gaussian-mixture student and an isotropic-mixture
/// target tempered at β. Writes ∇_θ into `grad` (length = θ's) and returns the loss estimate
/// Σ_k w_k (1/B) Σ_b [ln q(x_kb) − β ln π(x_kb)].
///
/// The noise comes from a [`NormalGen`] seeded from `rng` (a fixed number of draws), read in
/// the order component, then sample, then coordinate; so results depend only on the RNG's state
/// (and not on the CPU: every instruction-set path gives the same bits).
#[allow(clippy::too_many_arguments)]
pub fn mc_gradient<R: Rng + ?Sized>(
    q: &GmmStudent,
    target: &IsotropicMixture,
    beta: f64,
    estimator: Estimator,
    samples: usize,
    rng: &mut R,
    ws: &mut McWorkspace,
    grad: &mut [f64],
) -> f64 {
    // Reseeding the workspace's generator gives the same numbers as a fresh one, without
    // reallocating its buffers.
    let mut normals = match ws.normals.take() {
        Some(mut g) => {
            g.reseed(rng);
            g
        }
        None => NormalGen::from_rng(rng),
    };
    let loss = mc_gradient_with(q, target, beta, estimator, samples, &mut normals, ws, grad);
    ws.normals = Some(normals);
    loss
}

/// [`mc_gradient`] with an explicit normal generator; its instruction set ([`NormalGen::isa`])
/// also selects the kernel's (the results do not depend on it).
#[allow(clippy::too_many_arguments)]
pub fn mc_gradient_with(
    q: &GmmStudent,
    target: &IsotropicMixture,
    beta: f64,
    estimator: Estimator,
    samples: usize,
    normals: &mut NormalGen,
    ws: &mut McWorkspace,
    grad: &mut [f64],
) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: a generator never reports an instruction set the CPU lacks.
        match normals.isa() {
            Isa::Avx512 => {
                return unsafe {
                    mc_kernel_avx512(q, target, beta, estimator, samples, normals, ws, grad)
                };
            }
            Isa::Avx2 => {
                return unsafe {
                    mc_kernel_avx2(q, target, beta, estimator, samples, normals, ws, grad)
                };
            }
            Isa::Baseline => {}
        }
    }
    mc_kernel(q, target, beta, estimator, samples, normals, ws, grad)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
unsafe fn mc_kernel_avx2(
    q: &GmmStudent,
    target: &IsotropicMixture,
    beta: f64,
    estimator: Estimator,
    samples: usize,
    normals: &mut NormalGen,
    ws: &mut McWorkspace,
    grad: &mut [f64],
) -> f64 {
    mc_kernel(q, target, beta, estimator, samples, normals, ws, grad)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn mc_kernel_avx512(
    q: &GmmStudent,
    target: &IsotropicMixture,
    beta: f64,
    estimator: Estimator,
    samples: usize,
    normals: &mut NormalGen,
    ws: &mut McWorkspace,
    grad: &mut [f64],
) -> f64 {
    mc_kernel(q, target, beta, estimator, samples, normals, ws, grad)
}

/// Partial sums per dot product (lane l takes the elements i ≡ l mod 16): enough independent
/// addition chains to hide the adder's latency with AVX-512 (two registers per product).
const DOT_LANES: usize = 16;

/// Sum of the 16 lanes in a fixed order.
#[inline(always)]
fn sum16(a: &[f64; DOT_LANES]) -> f64 {
    let t: [f64; 8] = std::array::from_fn(|l| a[l] + a[l + 8]);
    ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]))
}

/// (z·v_n for each n, z·z): 16 partial sums per product, each accumulated in element order,
/// added in a fixed order, then the tail. Every instruction-set path computes exactly these
/// operations (however it interleaves the products), so the results agree bit for bit.
#[inline(always)]
fn dots<const N: usize>(isa: Isa, z: &[f64], vs: [&[f64]; N]) -> ([f64; N], f64) {
    let n = z.len();
    let vs: [&[f64]; N] = vs.map(|v| &v[..n]);
    let full = n / DOT_LANES * DOT_LANES;
    let mut acc = [[0.0f64; DOT_LANES]; N];
    let mut accz = [0.0f64; DOT_LANES];
    #[cfg(target_arch = "x86_64")]
    {
        if isa == Isa::Avx512 {
            // SAFETY: `Isa::Avx512` is only ever selected on CPUs with AVX-512 F (see
            // `NormalGen`); all loads are within `full` ≤ the slices' length.
            unsafe {
                use std::arch::x86_64::*;
                let mut va = [[_mm512_setzero_pd(); 2]; N];
                let mut vz = [_mm512_setzero_pd(); 2];
                let zp = z.as_ptr();
                for i in (0..full).step_by(DOT_LANES) {
                    let z0 = _mm512_loadu_pd(zp.add(i));
                    let z1 = _mm512_loadu_pd(zp.add(i + 8));
                    for (a, v) in va.iter_mut().zip(&vs) {
                        let vp = v.as_ptr();
                        a[0] = _mm512_add_pd(a[0], _mm512_mul_pd(z0, _mm512_loadu_pd(vp.add(i))));
                        a[1] =
                            _mm512_add_pd(a[1], _mm512_mul_pd(z1, _mm512_loadu_pd(vp.add(i + 8))));
                    }
                    vz[0] = _mm512_add_pd(vz[0], _mm512_mul_pd(z0, z0));
                    vz[1] = _mm512_add_pd(vz[1], _mm512_mul_pd(z1, z1));
                }
                for (a, v) in acc.iter_mut().zip(&va) {
                    _mm512_storeu_pd(a.as_mut_ptr(), v[0]);
                    _mm512_storeu_pd(a.as_mut_ptr().add(8), v[1]);
                }
                _mm512_storeu_pd(accz.as_mut_ptr(), vz[0]);
                _mm512_storeu_pd(accz.as_mut_ptr().add(8), vz[1]);
            }
        } else if isa == Isa::Avx2 {
            // SAFETY: as above, for AVX2.
            unsafe {
                use std::arch::x86_64::*;
                let mut va = [[_mm256_setzero_pd(); 4]; N];
                let mut vz = [_mm256_setzero_pd(); 4];
                let zp = z.as_ptr();
                for i in (0..full).step_by(DOT_LANES) {
                    let zc: [__m256d; 4] =
                        std::array::from_fn(|q| _mm256_loadu_pd(zp.add(i + 4 * q)));
                    for (a, v) in va.iter_mut().zip(&vs) {
                        let vp = v.as_ptr();
                        for q in 0..4 {
                            let vv = _mm256_loadu_pd(vp.add(i + 4 * q));
                            a[q] = _mm256_add_pd(a[q], _mm256_mul_pd(zc[q], vv));
                        }
                    }
                    for q in 0..4 {
                        vz[q] = _mm256_add_pd(vz[q], _mm256_mul_pd(zc[q], zc[q]));
                    }
                }
                for (a, v) in acc.iter_mut().zip(&va) {
                    for q in 0..4 {
                        _mm256_storeu_pd(a.as_mut_ptr().add(4 * q), v[q]);
                    }
                }
                for q in 0..4 {
                    _mm256_storeu_pd(accz.as_mut_ptr().add(4 * q), vz[q]);
                }
            }
        }
    }
    if isa == Isa::Baseline || cfg!(not(target_arch = "x86_64")) {
        // One product at a time (16 partial sums fit the baseline's registers).
        for (a, v) in acc.iter_mut().zip(&vs) {
            for i in (0..full).step_by(DOT_LANES) {
                let zc: &[f64; DOT_LANES] = z[i..i + DOT_LANES].try_into().unwrap();
                let vc: &[f64; DOT_LANES] = v[i..i + DOT_LANES].try_into().unwrap();
                for l in 0..DOT_LANES {
                    a[l] += zc[l] * vc[l];
                }
            }
        }
        for i in (0..full).step_by(DOT_LANES) {
            let zc: &[f64; DOT_LANES] = z[i..i + DOT_LANES].try_into().unwrap();
            for l in 0..DOT_LANES {
                accz[l] += zc[l] * zc[l];
            }
        }
    }
    let mut out = [0.0; N];
    for (o, (a, v)) in out.iter_mut().zip(acc.iter().zip(&vs)) {
        let mut s = sum16(a);
        for i in full..n {
            s += z[i] * v[i];
        }
        *o = s;
    }
    let mut zz = sum16(&accz);
    for i in full..n {
        zz += z[i] * z[i];
    }
    (out, zz)
}

/// out[n] = z·vecs[n] (up to three products per pass over z); returns z·z.
#[inline(always)]
fn multi_dot(isa: Isa, z: &[f64], vecs: &[&[f64]], out: &mut [f64]) -> f64 {
    let mut zz = None;
    let mut i = 0;
    while i < vecs.len() {
        let (len, zi) = match vecs.len() - i {
            1 => {
                let (o, zi) = dots(isa, z, [vecs[i]]);
                out[i] = o[0];
                (1, zi)
            }
            2 => {
                let (o, zi) = dots(isa, z, [vecs[i], vecs[i + 1]]);
                out[i..i + 2].copy_from_slice(&o);
                (2, zi)
            }
            _ => {
                let (o, zi) = dots(isa, z, [vecs[i], vecs[i + 1], vecs[i + 2]]);
                out[i..i + 3].copy_from_slice(&o);
                (3, zi)
            }
        };
        zz.get_or_insert(zi);
        i += len;
    }
    zz.unwrap_or_else(|| dots(isa, z, []).1)
}

/// Samples per block of the kernel's accumulation pass.
const BLOCK: usize = 4;

/// acc_l += Σ_j c[j][l] z_j for NB samples z_j (rows of `z`, length d) and their coefficient
/// rows c[j] (length K): one pass over each accumulator row for NB samples, the products added
/// in sample order. Elementwise, so every instruction set gives the same bits.
#[inline(always)]
fn accumulate<const NB: usize>(isa: Isa, acc: &mut [f64], d: usize, c: &[f64], z: &[f64]) {
    let kc = acc.len() / d;
    let zs: [&[f64]; NB] = std::array::from_fn(|j| &z[j * d..(j + 1) * d]);
    for (l, row) in acc.chunks_exact_mut(d).enumerate() {
        let cl: [f64; NB] = std::array::from_fn(|j| c[j * kc + l]);
        if cl.iter().all(|&v| v == 0.0) {
            continue;
        }
        let full = d / 8 * 8;
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: the instruction set is one the CPU supports (see `NormalGen`); all
            // accesses are below `full` ≤ d, the length of `row` and of every `zs[j]`.
            unsafe {
                use std::arch::x86_64::*;
                if isa == Isa::Avx512 {
                    let cv: [__m512d; NB] = cl.map(|v| _mm512_set1_pd(v));
                    for i in (0..full).step_by(8) {
                        let p = row.as_mut_ptr().add(i);
                        let mut x = _mm512_loadu_pd(p);
                        for j in 0..NB {
                            let zv = _mm512_loadu_pd(zs[j].as_ptr().add(i));
                            x = _mm512_add_pd(x, _mm512_mul_pd(cv[j], zv));
                        }
                        _mm512_storeu_pd(p, x);
                    }
                } else if isa == Isa::Avx2 {
                    let cv: [__m256d; NB] = cl.map(|v| _mm256_set1_pd(v));
                    for i in (0..full).step_by(4) {
                        let p = row.as_mut_ptr().add(i);
                        let mut x = _mm256_loadu_pd(p);
                        for j in 0..NB {
                            let zv = _mm256_loadu_pd(zs[j].as_ptr().add(i));
                            x = _mm256_add_pd(x, _mm256_mul_pd(cv[j], zv));
                        }
                        _mm256_storeu_pd(p, x);
                    }
                } else {
                    let cv: [__m128d; NB] = cl.map(|v| _mm_set1_pd(v));
                    for i in (0..full).step_by(2) {
                        let p = row.as_mut_ptr().add(i);
                        let mut x = _mm_loadu_pd(p);
                        for j in 0..NB {
                            let zv = _mm_loadu_pd(zs[j].as_ptr().add(i));
                            x = _mm_add_pd(x, _mm_mul_pd(cv[j], zv));
                        }
                        _mm_storeu_pd(p, x);
                    }
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let full = {
            let _ = isa;
            0
        };
        for i in full..d {
            let mut x = row[i];
            for j in 0..NB {
                x += cl[j] * zs[j][i];
            }
            row[i] = x;
        }
    }
}

/// The per-sample formulas of the Monte-Carlo gradient, shared by the d-dimensional kernel
/// ([`mc_gradient`]) and the summary-statistics engine ([`crate::statistics`]).
///
/// A sample x = μ_k + σ_k z of component k enters the estimator only through the projections
/// a_l = z·μ_l (student means), c_j = z·ν_j (target means) and ‖z‖²: every squared distance is
/// ‖x − μ_l‖² = ‖μ_k − μ_l‖² + 2σ_k(a_k − a_l) + σ_k²‖z‖² (and likewise for ν_j). The gradient
/// with respect to the means is then Σ_l coef_m[k,l] μ_l + Σ_j coef_n[k,j] ν_j + Σ_i cz_i z_i,
/// with scalar coefficients from [`SampleTerms::sample`]; the scale and weight gradients are
/// scalars too. `gmm[k·K+l]` = μ_k·μ_l, `gmt[k·J+j]` = μ_k·ν_j and `nn[j]` = ν_j·ν_j are the
/// Gram quantities, computed by the caller in whatever coordinates it has.
#[derive(Default)]
pub(crate) struct SampleTerms {
    kc: usize,
    jc: usize,
    full: bool,
    beta: f64,
    w: Vec<f64>,
    sig: Vec<f64>,
    s2: Vec<f64>,
    gmm: Vec<f64>,
    gmt: Vec<f64>,
    nn: Vec<f64>,
    inv_s2: Vec<f64>,
    half_inv_s2: Vec<f64>,
    inv_s3: Vec<f64>,
    dn_inv_s: Vec<f64>,
    lq0: Vec<f64>,
    lnorm_t: Vec<f64>,
    half_inv_vt: Vec<f64>,
    mbeta_inv_vt: Vec<f64>,
    // per-component constants (set by `component`) and per-sample scratch
    dkl0: Vec<f64>,
    dkj0: Vec<f64>,
    tq: Vec<f64>,
    dq: Vec<f64>,
    tp: Vec<f64>,
    /// Σ over samples of scale·α: the coefficient of μ_l in ∇_{μ_k} (row-major K×K).
    pub coef_m: Vec<f64>,
    /// The coefficient of ν_j in ∇_{μ_k} (row-major K×J).
    pub coef_n: Vec<f64>,
    /// ∂/∂σ_k of the loss estimate.
    pub gsig: Vec<f64>,
    /// The score part of ∂/∂a_k (full estimator).
    pub glogit: Vec<f64>,
    /// Per component: the running sum, then (after [`SampleTerms::finish`]) the mean, of
    /// ln q − β ln π over its samples.
    pub fbar: Vec<f64>,
}

impl SampleTerms {
    /// Constants for a student with weights `w` and scales `sig` in dimension `d`, the Gram
    /// quantities `gmm`, `gmt`, `nn` (see the type's docs), and a target with log-weights
    /// `log_wt` and variances `v_t`, tempered at β.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        d: usize,
        w: &[f64],
        sig: &[f64],
        gmm: &[f64],
        gmt: &[f64],
        nn: &[f64],
        log_wt: &[f64],
        v_t: &[f64],
        beta: f64,
        estimator: Estimator,
    ) -> Self {
        let mut t = Self::default();
        t.reset(d, w, sig, gmm, gmt, nn, log_wt, v_t, beta, estimator);
        t
    }

    /// Recomputes every constant and zeroes the sums, as [`SampleTerms::new`] would, reusing
    /// the allocations.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reset(
        &mut self,
        d: usize,
        w: &[f64],
        sig: &[f64],
        gmm: &[f64],
        gmt: &[f64],
        nn: &[f64],
        log_wt: &[f64],
        v_t: &[f64],
        beta: f64,
        estimator: Estimator,
    ) {
        fn set(v: &mut Vec<f64>, it: impl Iterator<Item = f64>) {
            v.clear();
            v.extend(it);
        }
        let kc = w.len();
        let jc = v_t.len();
        let dn = d as f64;
        let ln2pi = (2.0 * std::f64::consts::PI).ln();
        self.kc = kc;
        self.jc = jc;
        self.full = estimator == Estimator::Full;
        self.beta = beta;
        set(&mut self.w, w.iter().copied());
        set(&mut self.sig, sig.iter().copied());
        set(&mut self.s2, sig.iter().map(|s| s * s));
        set(&mut self.gmm, gmm.iter().copied());
        set(&mut self.gmt, gmt.iter().copied());
        set(&mut self.nn, nn.iter().copied());
        // ln w_l − (d/2) ln(2π σ_l²), and the target's normalisations
        set(
            &mut self.lq0,
            (0..kc).map(|l| w[l].ln() + -0.5 * dn * (ln2pi + self.s2[l].ln())),
        );
        set(
            &mut self.lnorm_t,
            (0..jc).map(|j| log_wt[j] - 0.5 * dn * (ln2pi + v_t[j].ln())),
        );
        // Reciprocals and constant parts of the per-sample formulas.
        set(&mut self.inv_s2, self.s2.iter().map(|v| 1.0 / v));
        set(&mut self.half_inv_s2, self.inv_s2.iter().map(|v| 0.5 * v));
        set(
            &mut self.inv_s3,
            (0..kc).map(|l| 1.0 / (self.sig[l] * self.s2[l])),
        );
        set(&mut self.dn_inv_s, self.sig.iter().map(|s| dn / s));
        set(&mut self.half_inv_vt, v_t.iter().map(|v| 0.5 / v));
        set(&mut self.mbeta_inv_vt, v_t.iter().map(|v| -beta / v));
        for v in [
            &mut self.dkl0,
            &mut self.tq,
            &mut self.dq,
            &mut self.gsig,
            &mut self.glogit,
            &mut self.fbar,
        ] {
            set(v, std::iter::repeat_n(0.0, kc));
        }
        set(&mut self.dkj0, std::iter::repeat_n(0.0, jc));
        set(&mut self.tp, std::iter::repeat_n(0.0, jc));
        set(&mut self.coef_m, std::iter::repeat_n(0.0, kc * kc));
        set(&mut self.coef_n, std::iter::repeat_n(0.0, kc * jc));
    }

    /// Per-component constants: squared distances between the means (clamped at 0). Call
    /// before the samples of component k.
    #[inline(always)]
    pub(crate) fn component(&mut self, k: usize) {
        let (kc, jc) = (self.kc, self.jc);
        for l in 0..kc {
            self.dkl0[l] =
                (self.gmm[k * kc + k] + self.gmm[l * kc + l] - 2.0 * self.gmm[k * kc + l]).max(0.0);
        }
        for j in 0..jc {
            self.dkj0[j] =
                (self.gmm[k * kc + k] + self.nn[j] - 2.0 * self.gmt[k * jc + j]).max(0.0);
        }
    }

    /// Adds one sample of component k (weight `scale` = w_k/B) with projections `a` (K),
    /// `c` (J) and ‖z‖² = `zz`; writes into `cz` (K) the coefficients of this sample's z in
    /// ∇_{μ_l}.
    #[inline(always)]
    pub(crate) fn sample(
        &mut self,
        k: usize,
        scale: f64,
        a: &[f64],
        c: &[f64],
        zz: f64,
        cz: &mut [f64],
    ) {
        // the paper's case (two components, two modes) with constant loop bounds: the same
        // operations in the same order, unrolled by the compiler
        if self.kc == 2 && self.jc == 2 {
            self.sample_sized::<2, 2>(k, scale, a, c, zz, cz)
        } else {
            self.sample_sized::<0, 0>(k, scale, a, c, zz, cz)
        }
    }

    /// [`SampleTerms::sample`] for K = `KC`, J = `JC` known at compile time (0: read from
    /// `self`).
    #[inline(always)]
    fn sample_sized<const KC: usize, const JC: usize>(
        &mut self,
        k: usize,
        scale: f64,
        a: &[f64],
        c: &[f64],
        zz: f64,
        cz: &mut [f64],
    ) {
        let kc = if KC > 0 { KC } else { self.kc };
        let jc = if JC > 0 { JC } else { self.jc };
        // slices of exactly K or J entries, so that the loops below need no bounds checks
        let (a, c, cz) = (&a[..kc], &c[..jc], &mut cz[..kc]);
        let tq = &mut self.tq[..kc];
        let dq = &mut self.dq[..kc];
        let tp = &mut self.tp[..jc];
        let (dkl0, lq0, half_inv_s2, inv_s2) = (
            &self.dkl0[..kc],
            &self.lq0[..kc],
            &self.half_inv_s2[..kc],
            &self.inv_s2[..kc],
        );
        let (dkj0, lnorm_t, half_inv_vt, mbeta_inv_vt) = (
            &self.dkj0[..jc],
            &self.lnorm_t[..jc],
            &self.half_inv_vt[..jc],
            &self.mbeta_inv_vt[..jc],
        );
        let coef_m = &mut self.coef_m[..kc * kc];
        let coef_n_row = &mut self.coef_n[k * jc..(k + 1) * jc];
        let sk = self.sig[k];
        let ak = a[k];
        // ln q(x) with x = μ_k + σ_k z
        let s2zz = self.s2[k] * zz;
        for l in 0..kc {
            dq[l] = dkl0[l] + 2.0 * sk * (ak - a[l]) + s2zz;
            tq[l] = lq0[l] - half_inv_s2[l] * dq[l];
        }
        // responsibilities r_l = e_l / Σ e, ln q = max + ln Σ e with e_l = exp(t_l − max)
        let lq = softmax_in_place(tq);
        // ln π(x)
        for j in 0..jc {
            let dist = dkj0[j] + 2.0 * sk * (ak - c[j]) + s2zz;
            tp[j] = lnorm_t[j] - half_inv_vt[j] * dist;
        }
        let lp = softmax_in_place(tp);
        self.fbar[k] += lq - self.beta * lp;

        // ∇_x f = Σ_l α_l μ_l + Σ_j γ_j ν_j + A x
        let mut big_a = 0.0;
        let mut dsig = 0.0;
        {
            let cm_row = &mut coef_m[k * kc..(k + 1) * kc];
            for l in 0..kc {
                let alpha = tq[l] * inv_s2[l];
                big_a -= alpha;
                cm_row[l] += scale * alpha;
                dsig += alpha * a[l];
            }
        }
        for j in 0..jc {
            let gamma = tp[j] * mbeta_inv_vt[j];
            big_a -= gamma;
            coef_n_row[j] += scale * gamma;
            dsig += gamma * c[j];
        }
        coef_m[k * kc + k] += scale * big_a;
        dsig += big_a * (ak + sk * zz);
        self.gsig[k] += scale * dsig;
        cz.iter_mut().for_each(|v| *v = 0.0);
        cz[k] = scale * big_a * sk;

        if self.full {
            // score: ∂_θ ln q(x)|_x
            let (inv_s3, dn_inv_s, w) = (&self.inv_s3[..kc], &self.dn_inv_s[..kc], &self.w[..kc]);
            let (gsig, glogit) = (&mut self.gsig[..kc], &mut self.glogit[..kc]);
            for l in 0..kc {
                let r = tq[l];
                let alpha = r * inv_s2[l];
                coef_m[l * kc + k] += scale * alpha;
                coef_m[l * kc + l] -= scale * alpha;
                cz[l] += scale * alpha * sk;
                gsig[l] += scale * r * (dq[l] * inv_s3[l] - dn_inv_s[l]);
                glogit[l] += scale * (r - w[l]);
            }
        }
    }

    /// The constants of the two-component, two-mode case, copied into a [`Terms2`] whose
    /// sums start at zero (call after [`SampleTerms::reset`]).
    pub(crate) fn two_by_two(&self) -> Terms2 {
        debug_assert!(self.kc == 2 && self.jc == 2);
        let two = |v: &[f64]| [v[0], v[1]];
        Terms2 {
            beta: self.beta,
            w: two(&self.w),
            sig: two(&self.sig),
            s2: two(&self.s2),
            lq0: two(&self.lq0),
            inv_s2: two(&self.inv_s2),
            half_inv_s2: two(&self.half_inv_s2),
            inv_s3: two(&self.inv_s3),
            dn_inv_s: two(&self.dn_inv_s),
            lnorm_t: two(&self.lnorm_t),
            half_inv_vt: two(&self.half_inv_vt),
            mbeta_inv_vt: two(&self.mbeta_inv_vt),
            dkl0: [0.0; 2],
            dkj0: [0.0; 2],
            coef_m: [0.0; 4],
            coef_n: [0.0; 4],
            gsig: [0.0; 2],
            glogit: [0.0; 2],
            fbar: [0.0; 2],
            check: 0.0,
        }
    }

    /// Takes back the sums of a [`Terms2`] (the constants are unchanged).
    pub(crate) fn store_two_by_two(&mut self, t: &Terms2) {
        self.coef_m.copy_from_slice(&t.coef_m);
        self.coef_n.copy_from_slice(&t.coef_n);
        self.gsig.copy_from_slice(&t.gsig);
        self.glogit.copy_from_slice(&t.glogit);
        self.fbar.copy_from_slice(&t.fbar);
    }

    /// Ends the samples of component k (B of them): fbar_k becomes their mean.
    #[inline(always)]
    pub(crate) fn end_component(&mut self, k: usize, samples: usize) {
        self.fbar[k] /= samples as f64;
    }

    /// The loss estimate Σ_k w_k fbar_k; writes ∂/∂ln σ_k (= σ_k ∂/∂σ_k) into `grad_log_sigma`
    /// and ∂/∂a_k into `grad_logit` (zeros when the weights are fixed).
    pub(crate) fn finish(
        &self,
        trainable_weights: bool,
        grad_log_sigma: &mut [f64],
        grad_logit: &mut [f64],
    ) -> f64 {
        let kc = self.kc;
        let w = &self.w;
        let loss: f64 = (0..kc).map(|k| w[k] * self.fbar[k]).sum();
        for k in 0..kc {
            grad_log_sigma[k] = self.sig[k] * self.gsig[k];
        }
        if trainable_weights {
            for j in 0..kc {
                grad_logit[j] = self.glogit[j] + w[j] * (self.fbar[j] - loss);
            }
        } else {
            grad_logit.iter_mut().for_each(|g| *g = 0.0);
        }
        loss
    }
}

/// [`SampleTerms`] for K = J = 2 (the paper's case) as fixed-size arrays, so that a kernel
/// holding one by value keeps its constants and sums in registers. [`Terms2::sample`] does
/// the operations of [`SampleTerms::sample`] in the same order: the sums are bit for bit
/// those of the general path.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Terms2 {
    beta: f64,
    w: [f64; 2],
    sig: [f64; 2],
    s2: [f64; 2],
    lq0: [f64; 2],
    inv_s2: [f64; 2],
    half_inv_s2: [f64; 2],
    inv_s3: [f64; 2],
    dn_inv_s: [f64; 2],
    lnorm_t: [f64; 2],
    half_inv_vt: [f64; 2],
    mbeta_inv_vt: [f64; 2],
    dkl0: [f64; 2],
    dkj0: [f64; 2],
    coef_m: [f64; 4],
    coef_n: [f64; 4],
    gsig: [f64; 2],
    glogit: [f64; 2],
    fbar: [f64; 2],
    /// 0, or NaN once a per-sample term of the loss was not finite (samples with `LOSS`
    /// false only).
    pub check: f64,
}

impl Terms2 {
    /// The student's weights w_1, w_2.
    pub(crate) fn weights(&self) -> [f64; 2] {
        self.w
    }

    /// Per-component constants from the Gram quantities of `t` (as
    /// [`SampleTerms::component`]).
    #[inline(always)]
    pub(crate) fn component(&mut self, t: &SampleTerms, k: usize) {
        for l in 0..2 {
            self.dkl0[l] = (t.gmm[k * 2 + k] + t.gmm[l * 2 + l] - 2.0 * t.gmm[k * 2 + l]).max(0.0);
        }
        for j in 0..2 {
            self.dkj0[j] = (t.gmm[k * 2 + k] + t.nn[j] - 2.0 * t.gmt[k * 2 + j]).max(0.0);
        }
    }

    /// [`SampleTerms::sample`] for component `K`; returns the coefficients c_il of this
    /// sample's z in ∇_{μ_l}. `FULL`: the full estimator (else sticking the landing).
    #[inline(always)]
    ///
    /// `LOSS` false: the loss's value is not wanted, so its logarithms (ln q, ln π) are not
    /// taken; [`Terms2::check`] records instead whether every per-sample term of the loss
    /// would have been finite. The gradient sums do not depend on `LOSS`.
    pub(crate) fn sample<const K: usize, const FULL: bool, const LOSS: bool>(
        &mut self,
        scale: f64,
        a: [f64; 2],
        c: [f64; 2],
        zz: f64,
    ) -> [f64; 2] {
        let sk = self.sig[K];
        let ak = a[K];
        let s2zz = self.s2[K] * zz;
        let mut dq = [0.0; 2];
        let mut tq = [0.0; 2];
        for l in 0..2 {
            dq[l] = self.dkl0[l] + 2.0 * sk * (ak - a[l]) + s2zz;
            tq[l] = self.lq0[l] - self.half_inv_s2[l] * dq[l];
        }
        let (mq, eq) = softmax2(&mut tq);
        let mut tp = [0.0; 2];
        for j in 0..2 {
            let dist = self.dkj0[j] + 2.0 * sk * (ak - c[j]) + s2zz;
            tp[j] = self.lnorm_t[j] - self.half_inv_vt[j] * dist;
        }
        let (mp, ep) = softmax2(&mut tp);
        if LOSS {
            // ln q = max + ln(1 + e), as in `softmax_in_place`
            self.fbar[K] += (mq + eq.ln_1p()) - self.beta * (mp + ep.ln_1p());
        } else {
            // ln(1 + e) is finite unless e is NaN: 0 where the term is finite, else NaN
            self.check += ((mq - self.beta * mp) + eq * 0.0 + ep * 0.0) * 0.0;
        }

        let mut big_a = 0.0;
        let mut dsig = 0.0;
        for l in 0..2 {
            let alpha = tq[l] * self.inv_s2[l];
            big_a -= alpha;
            self.coef_m[K * 2 + l] += scale * alpha;
            dsig += alpha * a[l];
        }
        for j in 0..2 {
            let gamma = tp[j] * self.mbeta_inv_vt[j];
            big_a -= gamma;
            self.coef_n[K * 2 + j] += scale * gamma;
            dsig += gamma * c[j];
        }
        self.coef_m[K * 2 + K] += scale * big_a;
        dsig += big_a * (ak + sk * zz);
        self.gsig[K] += scale * dsig;
        let mut cz = [0.0; 2];
        cz[K] = scale * big_a * sk;
        if FULL {
            for l in 0..2 {
                let r = tq[l];
                let alpha = r * self.inv_s2[l];
                self.coef_m[l * 2 + K] += scale * alpha;
                self.coef_m[l * 2 + l] -= scale * alpha;
                cz[l] += scale * alpha * sk;
                self.gsig[l] += scale * r * (dq[l] * self.inv_s3[l] - self.dn_inv_s[l]);
                self.glogit[l] += scale * (r - self.w[l]);
            }
        }
        cz
    }

    /// Ends the samples of component k (B of them): fbar_k becomes their mean.
    #[inline(always)]
    pub(crate) fn end_component(&mut self, k: usize, samples: usize) {
        self.fbar[k] /= samples as f64;
    }
}

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn mc_kernel(
    q: &GmmStudent,
    target: &IsotropicMixture,
    beta: f64,
    estimator: Estimator,
    samples: usize,
    normals: &mut NormalGen,
    ws: &mut McWorkspace,
    grad: &mut [f64],
) -> f64 {
    let d = target.dim();
    let kc = q.components();
    let jc = target.means().len();
    let nu = target.means();
    // the bimodal shortcut reduces a sample to s = x_1: only valid for mu* along e_1
    let bimodal_r = target
        .as_bimodal()
        .filter(|_| target.axis_is_e1())
        .map(|b| b.r);

    // Gram quantities
    let mut gmm = vec![0.0; kc * kc];
    for k in 0..kc {
        for l in 0..kc {
            gmm[k * kc + l] = dot(q.mean(k), q.mean(l));
        }
    }
    let mut gmt = vec![0.0; kc * jc];
    for k in 0..kc {
        for j in 0..jc {
            gmt[k * jc + j] = dot(q.mean(k), &nu[j]);
        }
    }
    let nn: Vec<f64> = nu.iter().map(|v| dot(v, v)).collect();
    let w = q.weights();
    let sig: Vec<f64> = (0..kc).map(|k| q.sigma(k)).collect();
    let mut terms = SampleTerms::new(
        d,
        &w,
        &sig,
        &gmm,
        &gmt,
        &nn,
        target.log_weights(),
        target.variances(),
        beta,
        estimator,
    );

    // The vectors z is projected on: the student means, then (general targets) the target's.
    let mut vecs: Vec<&[f64]> = (0..kc).map(|l| q.mean(l)).collect();
    if bimodal_r.is_none() {
        vecs.extend(nu.iter().map(|v| v.as_slice()));
    }
    let mut proj = vec![0.0; vecs.len()];
    let isa = normals.isa();

    ws.z.resize(BLOCK * d, 0.0);
    ws.acc.clear();
    ws.acc.resize(kc * d, 0.0);
    let mut c = vec![0.0; jc];
    let mut cz = vec![0.0; BLOCK * kc];
    let bf = samples as f64;

    for k in 0..kc {
        let scale = w[k] / bf;
        terms.component(k);
        let mut b0 = 0;
        while b0 < samples {
            let nb = BLOCK.min(samples - b0);
            for jb in 0..nb {
                let z = &mut ws.z[jb * d..(jb + 1) * d];
                normals.fill(z);
                let z = &*z;
                let zz = multi_dot(isa, z, &vecs, &mut proj);
                match bimodal_r {
                    Some(r) => {
                        c[0] = r * z[0];
                        c[1] = -r * z[0];
                    }
                    None => c.copy_from_slice(&proj[kc..]),
                }
                terms.sample(
                    k,
                    scale,
                    &proj[..kc],
                    &c,
                    zz,
                    &mut cz[jb * kc..(jb + 1) * kc],
                );
            }
            if nb == BLOCK {
                accumulate::<BLOCK>(isa, &mut ws.acc, d, &cz, &ws.z);
            } else {
                for jb in 0..nb {
                    accumulate::<1>(isa, &mut ws.acc, d, &cz[jb * kc..], &ws.z[jb * d..]);
                }
            }
            b0 += nb;
        }
        terms.end_component(k, samples);
    }

    // assemble
    let coef_m = &terms.coef_m;
    let coef_n = &terms.coef_n;
    for k in 0..kc {
        let g = &mut grad[k * d..(k + 1) * d];
        g.copy_from_slice(&ws.acc[k * d..(k + 1) * d]);
        for l in 0..kc {
            let cm = coef_m[k * kc + l];
            for (gi, mi) in g.iter_mut().zip(q.mean(l)) {
                *gi += cm * mi;
            }
        }
        match bimodal_r {
            Some(r) => g[0] += r * (coef_n[k * jc] - coef_n[k * jc + 1]),
            None => {
                for j in 0..jc {
                    let cn = coef_n[k * jc + j];
                    for (gi, ni) in g.iter_mut().zip(&nu[j]) {
                        *gi += cn * ni;
                    }
                }
            }
        }
    }
    let off = q.log_sigma_offset();
    let offw = q.logit_offset();
    let (gs, gw) = grad[off..offw + kc].split_at_mut(kc);
    terms.finish(q.trainable_weights(), gs, gw)
}

/// [`softmax_in_place`] for two entries, without the logarithm: writes the
/// responsibilities and returns (max, e) with ln Σ exp = max + ln(1 + e).
#[inline(always)]
fn softmax2(t: &mut [f64; 2]) -> (f64, f64) {
    let (ta, tb) = (t[0], t[1]);
    let e = (-(ta - tb).abs()).exp();
    let s = 1.0 + e;
    let (ra, rb) = if ta >= tb { (1.0, e) } else { (e, 1.0) };
    t[0] = ra / s;
    t[1] = rb / s;
    (ta.max(tb), e)
}

/// Replaces t by softmax(t) and returns ln Σ exp(t) (one exp per entry; one exp and one ln_1p
/// for two entries).
#[inline(always)]
fn softmax_in_place(t: &mut [f64]) -> f64 {
    if let [a, b] = t {
        let (ta, tb) = (*a, *b);
        let e = (-(ta - tb).abs()).exp();
        let s = 1.0 + e;
        let (ra, rb) = if ta >= tb { (1.0, e) } else { (e, 1.0) };
        *a = ra / s;
        *b = rb / s;
        return ta.max(tb) + e.ln_1p();
    }
    let m = t.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut s = 0.0;
    for v in t.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    for v in t.iter_mut() {
        *v /= s;
    }
    m + s.ln()
}

/// Reference Monte-Carlo gradient: the same estimator as [`mc_gradient`], written directly on
/// full d-vectors through the [`LogDensity`] trait (any target). Slow; it is the oracle the
/// fast kernel is tested against, and the path for targets that are not isotropic mixtures.
/// Consumes random numbers in the same order as [`mc_gradient`].
#[allow(clippy::too_many_arguments)]
pub fn mc_gradient_reference<R: Rng + ?Sized>(
    q: &GmmStudent,
    target: &dyn LogDensity,
    beta: f64,
    estimator: Estimator,
    samples: usize,
    rng: &mut R,
    grad: &mut [f64],
) -> f64 {
    let d = target.dim();
    let kc = q.components();
    let w = q.weights();
    let sig: Vec<f64> = (0..kc).map(|k| q.sigma(k)).collect();
    let dn = d as f64;
    grad.iter_mut().for_each(|g| *g = 0.0);
    let mut normals = NormalGen::from_rng(rng);
    let mut z = vec![0.0; d];
    let mut x = vec![0.0; d];
    let mut gp = vec![0.0; d];
    let mut fbar = vec![0.0; kc];
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    for k in 0..kc {
        let scale = w[k] / samples as f64;
        for _ in 0..samples {
            normals.fill(&mut z);
            for i in 0..d {
                x[i] = q.mean(k)[i] + sig[k] * z[i];
            }
            // ln q and its responsibilities
            let terms: Vec<f64> = (0..kc)
                .map(|l| {
                    let dist: f64 = (0..d).map(|i| (x[i] - q.mean(l)[i]).powi(2)).sum();
                    w[l].ln() - 0.5 * dn * (ln2pi + 2.0 * sig[l].ln()) - 0.5 * dist / sig[l].powi(2)
                })
                .collect();
            let lq = log_sum_exp(&terms);
            let resp: Vec<f64> = terms.iter().map(|t| (t - lq).exp()).collect();
            let lp = target.grad_log_density(&x, &mut gp);
            fbar[k] += (lq - beta * lp) / samples as f64;
            // ∇_x f
            let mut gx = vec![0.0; d];
            for i in 0..d {
                let mut v = -beta * gp[i];
                for l in 0..kc {
                    v += resp[l] * (q.mean(l)[i] - x[i]) / sig[l].powi(2);
                }
                gx[i] = v;
            }
            for i in 0..d {
                grad[k * d + i] += scale * gx[i];
            }
            let dsig: f64 = (0..d).map(|i| gx[i] * z[i]).sum();
            grad[q.log_sigma_offset() + k] += scale * dsig * sig[k];
            if estimator == Estimator::Full {
                for l in 0..kc {
                    let s2 = sig[l].powi(2);
                    let mut dist = 0.0;
                    for i in 0..d {
                        let diff = x[i] - q.mean(l)[i];
                        grad[l * d + i] += scale * resp[l] * diff / s2;
                        dist += diff * diff;
                    }
                    grad[q.log_sigma_offset() + l] += scale * resp[l] * (-dn + dist / s2);
                    grad[q.logit_offset() + l] += scale * (resp[l] - w[l]);
                }
            }
        }
    }
    let loss: f64 = (0..kc).map(|k| w[k] * fbar[k]).sum();
    let off = q.logit_offset();
    if q.trainable_weights() {
        for j in 0..kc {
            grad[off + j] += w[j] * (fbar[j] - loss);
        }
    } else {
        grad[off..off + kc].iter_mut().for_each(|g| *g = 0.0);
    }
    loss
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::fill_standard_normal;
    use crate::seed::{Purpose, stream};

    fn student(d: usize, k: usize, seed: u64) -> GmmStudent {
        let mut rng = stream(seed, 0, Purpose::Init);
        let means: Vec<Vec<f64>> = (0..k)
            .map(|_| {
                let mut m = vec![0.0; d];
                fill_standard_normal(&mut rng, &mut m);
                m
            })
            .collect();
        let sigma: Vec<f64> = (0..k).map(|i| 0.7 + 0.2 * i as f64).collect();
        let w: Vec<f64> = (0..k).map(|i| (1 + i) as f64).collect();
        let tot: f64 = w.iter().sum();
        let w: Vec<f64> = w.iter().map(|v| v / tot).collect();
        GmmStudent::new(&means, &sigma, &w, true)
    }

    #[test]
    fn all_instruction_sets_give_bit_identical_kernels() {
        if Isa::detect() == Isa::Baseline {
            eprintln!("no AVX2 on this CPU: nothing to compare");
        }
        let three = IsotropicMixture::new(
            (0..3)
                .map(|j| {
                    (0..13)
                        .map(|i| ((i * 7 + j * 3) % 5) as f64 - 2.0)
                        .collect()
                })
                .collect(),
            vec![0.5, 0.3, 0.2],
            vec![1.0, 0.5, 2.0],
        );
        let cases = [
            (IsotropicMixture::bimodal(512, 3.0, 0.8), student(512, 2, 1)),
            (IsotropicMixture::bimodal(37, 3.0, 0.8), student(37, 3, 2)),
            (three, student(13, 2, 3)),
        ];
        for (target, q) in &cases {
            for est in [Estimator::Full, Estimator::Stl] {
                let n = q.params().len();
                let mut out = Vec::new();
                for isa in Isa::available() {
                    let mut normals =
                        NormalGen::from_rng(&mut stream(5, 6, Purpose::Sgd)).with_isa(isa);
                    let mut ws = McWorkspace::default();
                    let mut g = vec![0.0; n];
                    let l = mc_gradient_with(q, target, 0.7, est, 9, &mut normals, &mut ws, &mut g);
                    g.push(l);
                    out.push(g);
                }
                assert!(
                    out[0]
                        .iter()
                        .zip(&out[1])
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "d = {}, {est:?}",
                    target.dim()
                );
            }
        }
    }
}
