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

//!
//! Files: this one holds the estimator's API and the Monte-Carlo kernel's driver; `kernel`
//! the SIMD dot products and accumulation it runs on; `terms` the per-sample formulas (shared
//! with the statistics engine); `reference` the plain reference estimator (any target, or a
//! target evaluated by the caller in batches); `exact` the exact objective.

mod exact;
mod kernel;
mod reference;
mod terms;

pub use exact::{ExactObjective, ExactValue, Reduced, ReducedValue, StatsGrad};
pub use reference::{BatchWorkspace, mc_gradient_batched, mc_gradient_reference};
pub(crate) use terms::{SampleTerms, Terms2};

use crate::family::GmmStudent;
use crate::family::gmm::dot;
use crate::normal::{Isa, NormalGen};
use crate::target::{IsotropicMixture, LogDensity};
use kernel::{BLOCK, accumulate, multi_dot};
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::family::VariationalFamily;
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
