//! The reference Monte-Carlo gradient: the estimator of [`mc_gradient`](super::mc_gradient)
//! written directly on full d-vectors, for any target ([`mc_gradient_reference`]) or for a
//! target the caller evaluates on the whole batch of samples at once ([`mc_gradient_batched`],
//! e.g. a Python callable).

use super::Estimator;
use crate::family::{GmmStudent, VariationalFamily};
use crate::normal::NormalGen;
use crate::target::LogDensity;
use rand::Rng;

/// Reference Monte-Carlo gradient: the same estimator as [`mc_gradient`](super::mc_gradient),
/// written directly on full d-vectors through the [`LogDensity`] trait (any target). Slow; it
/// is the oracle the fast kernel is tested against, and the path for targets that are not
/// isotropic mixtures. Consumes random numbers in the same order as
/// [`mc_gradient`](super::mc_gradient). The arithmetic of [`mc_gradient_batched`], with the
/// target evaluated point by point.
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
    let pointwise = |x: &[f64], lp: &mut [f64], gp: &mut [f64]| {
        for ((x, lp), gp) in x.chunks_exact(d).zip(lp).zip(gp.chunks_exact_mut(d)) {
            *lp = target.grad_log_density(x, gp);
        }
        Ok::<(), std::convert::Infallible>(())
    };
    let mut ws = BatchWorkspace::default();
    match mc_gradient_batched(q, pointwise, beta, estimator, samples, rng, &mut ws, grad) {
        Ok(loss) => loss,
        Err(never) => match never {},
    }
}

/// Reusable buffers of [`mc_gradient_batched`].
#[derive(Clone, Debug, Default)]
pub struct BatchWorkspace {
    normals: Option<NormalGen>,
    z: Vec<f64>,
    x: Vec<f64>,
    lp: Vec<f64>,
    gp: Vec<f64>,
}

/// The reverse-KL Monte-Carlo gradient of `q` against the tempered target π^β (estimator full
/// or STL, B = `samples` per component) with ln π and ∇ ln π of all K·B samples taken from one
/// call `target(x, log_prob, grad)`: x is n × d (row-major, component, then sample), and the
/// call fills `log_prob` (n) and `grad` (n × d) for an unnormalised π. Writes ∇_θ into `grad`
/// and returns the loss estimate Σ_k w_k (1/B) Σ_b [ln q(x_kb) − β ln π(x_kb)], or the error
/// of `target`, unchanged. The normals are those of [`mc_gradient`](super::mc_gradient), in its
/// order (component, sample, coordinate).
#[allow(clippy::too_many_arguments)]
pub fn mc_gradient_batched<R, E, F>(
    q: &GmmStudent,
    mut target: F,
    beta: f64,
    estimator: Estimator,
    samples: usize,
    rng: &mut R,
    ws: &mut BatchWorkspace,
    grad: &mut [f64],
) -> Result<f64, E>
where
    R: Rng + ?Sized,
    F: FnMut(&[f64], &mut [f64], &mut [f64]) -> Result<(), E>,
{
    let d = q.dim();
    let kc = q.components();
    let n = kc * samples;
    let w = q.weights();
    let sig: Vec<f64> = (0..kc).map(|k| q.sigma(k)).collect();
    // hoisted out of the per-coordinate loops
    let mu: Vec<&[f64]> = (0..kc).map(|k| q.mean(k)).collect();
    let (sigma_off, logit_off) = (q.log_sigma_offset(), q.logit_offset());
    let dn = d as f64;
    grad.iter_mut().for_each(|g| *g = 0.0);
    // reseeding gives the numbers of a fresh generator without rebuilding its buffers
    let mut normals = match ws.normals.take() {
        Some(mut g) => {
            g.reseed(rng);
            g
        }
        None => NormalGen::from_rng(rng),
    };
    ws.z.resize(n * d, 0.0);
    ws.x.resize(n * d, 0.0);
    ws.lp.resize(n, 0.0);
    ws.gp.resize(n * d, 0.0);
    for k in 0..kc {
        for b in 0..samples {
            let row = (k * samples + b) * d;
            normals.fill(&mut ws.z[row..row + d]);
            for i in 0..d {
                ws.x[row + i] = mu[k][i] + sig[k] * ws.z[row + i];
            }
        }
    }
    ws.normals = Some(normals);
    target(&ws.x, &mut ws.lp, &mut ws.gp)?;
    let mut fbar = vec![0.0; kc];
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    let mut gx = vec![0.0; d];
    for k in 0..kc {
        let scale = w[k] / samples as f64;
        for b in 0..samples {
            let row = (k * samples + b) * d;
            let x = &ws.x[row..row + d];
            let z = &ws.z[row..row + d];
            let gp = &ws.gp[row..row + d];
            // ln q and its responsibilities
            let terms: Vec<f64> = (0..kc)
                .map(|l| {
                    let dist: f64 = (0..d).map(|i| (x[i] - mu[l][i]).powi(2)).sum();
                    w[l].ln() - 0.5 * dn * (ln2pi + 2.0 * sig[l].ln()) - 0.5 * dist / sig[l].powi(2)
                })
                .collect();
            let lq = ln_sum_exp(&terms);
            let resp: Vec<f64> = terms.iter().map(|t| (t - lq).exp()).collect();
            let lp = ws.lp[k * samples + b];
            fbar[k] += (lq - beta * lp) / samples as f64;
            // ∇_x f
            for i in 0..d {
                let mut v = -beta * gp[i];
                for l in 0..kc {
                    v += resp[l] * (mu[l][i] - x[i]) / sig[l].powi(2);
                }
                gx[i] = v;
            }
            for i in 0..d {
                grad[k * d + i] += scale * gx[i];
            }
            let dsig: f64 = (0..d).map(|i| gx[i] * z[i]).sum();
            grad[sigma_off + k] += scale * dsig * sig[k];
            if estimator == Estimator::Full {
                for l in 0..kc {
                    let s2 = sig[l].powi(2);
                    let mut dist = 0.0;
                    for i in 0..d {
                        let diff = x[i] - mu[l][i];
                        grad[l * d + i] += scale * resp[l] * diff / s2;
                        dist += diff * diff;
                    }
                    grad[sigma_off + l] += scale * resp[l] * (-dn + dist / s2);
                    grad[logit_off + l] += scale * (resp[l] - w[l]);
                }
            }
        }
    }
    let loss: f64 = (0..kc).map(|k| w[k] * fbar[k]).sum();
    if q.trainable_weights() {
        for j in 0..kc {
            grad[logit_off + j] += w[j] * (fbar[j] - loss);
        }
    } else {
        grad[logit_off..logit_off + kc]
            .iter_mut()
            .for_each(|g| *g = 0.0);
    }
    Ok(loss)
}

/// ln Σ exp(t) = m + ln Σ exp(t − m) with m = max t, without a guard for infinite m (NaN
/// when every term is −∞, where [`crate::target::log_sum_exp`] returns −∞).
fn ln_sum_exp(t: &[f64]) -> f64 {
    let m = t.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    m + t.iter().map(|v| (v - m).exp()).sum::<f64>().ln()
}
