//! The reverse-KL loss of a flow and its gradients (full and sticking-the-landing), against
//! the built-in mixture or a caller's batch target ([`BatchTarget`]); the fused optimiser step
//! of the f32 engine.

use super::engine::{AnyEngine, with_engine};
use super::flow::RealNvp;
use super::linalg::Scalar;
use crate::family::{ParamGroup, fill_standard_normal};
use crate::objective::Estimator;
use crate::target::IsotropicMixture;
use rand::Rng;

/// A target evaluated by the caller on a whole batch: `target(x, log_prob, grad)` receives the
/// n samples x (n × d, row-major, f64) and fills `log_prob` (n) with ln π(x_b) and `grad`
/// (n × d, row-major) with ∇_x ln π(x_b), for an unnormalised π (nats). Returning `Err` ends
/// the pass that called it, and the error reaches that pass's caller unchanged (e.g. an
/// exception of a Python callable). Used by [`RealNvp::loss_and_grad_batched`] and
/// [`RealNvp::evaluate_batched`] in place of the built-in [`IsotropicMixture`].
pub type BatchTarget<'a, E> =
    dyn FnMut(&[f64], &mut [f64], &mut [f64]) -> std::result::Result<(), E> + 'a;

/// Where a pass takes ln π and ∇ ln π from.
pub(super) enum TargetSource<'a, 'b, E> {
    /// The built-in mixture, sample by sample.
    Mixture(&'a IsotropicMixture),
    /// A caller's batch evaluation.
    Batch(&'a mut BatchTarget<'b, E>),
}

/// Reusable buffers of a [`BatchTarget`] call: x (n × d), ln π (n), ∇ ln π (n × d).
#[derive(Clone, Debug, Default)]
pub(super) struct BatchScratch {
    pub(super) x: Vec<f64>,
    pub(super) lp: Vec<f64>,
    pub(super) g: Vec<f64>,
}

impl BatchScratch {
    pub(super) fn resize(&mut self, n: usize, d: usize) {
        self.x.resize(n * d, 0.0);
        self.lp.resize(n, 0.0);
        self.g.resize(n * d, 0.0);
    }
}

/// ∇ ln π(x) into `grad` and ln π(x) for an isotropic mixture, without allocating.
pub(super) fn target_grad(
    t: &IsotropicMixture,
    x: &[f64],
    grad: &mut [f64],
    comp: &mut [f64],
) -> f64 {
    let d = x.len() as f64;
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    let (means, vars, lw) = (t.means(), t.variances(), t.log_weights());
    for j in 0..means.len() {
        let dist2 = x
            .iter()
            .zip(&means[j])
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>();
        comp[j] = lw[j] - 0.5 * d * (ln2pi + vars[j].ln()) - 0.5 * dist2 / vars[j];
    }
    let lse = crate::target::log_sum_exp(&comp[..means.len()]);
    grad.iter_mut().for_each(|g| *g = 0.0);
    for j in 0..means.len() {
        let r = (comp[j] - lse).exp() / vars[j];
        for ((g, m), xi) in grad.iter_mut().zip(&means[j]).zip(x) {
            *g += r * (m - xi);
        }
    }
    lse
}

impl RealNvp {
    /// The reverse-KL loss L = (1/B) Σ_b [ln q(x_b) − β ln π(x_b)] (nats) on the batch given by
    /// standard-normal noise ε (B × d), and its gradient (full or STL; `Exact` is treated as
    /// full) into `grad` (length = number of parameters).
    pub fn loss_and_grad_from_noise(
        &mut self,
        target: &IsotropicMixture,
        beta: f64,
        estimator: Estimator,
        eps: &[f64],
        grad: &mut [f64],
    ) -> f64 {
        self.loss_and_grad_inner(target, beta, estimator, eps, Some(grad))
    }

    /// The pass behind [`Self::loss_and_grad_from_noise`]; with `grad = None` the gradient
    /// stays in the engine for [`Self::fused_update`].
    pub(super) fn loss_and_grad_inner(
        &mut self,
        target: &IsotropicMixture,
        beta: f64,
        estimator: Estimator,
        eps: &[f64],
        grad: Option<&mut [f64]>,
    ) -> f64 {
        let source = TargetSource::<std::convert::Infallible>::Mixture(target);
        match self.loss_and_grad_core(source, beta, estimator, eps, grad) {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// The reverse-KL pass against either target source: the built-in mixture is evaluated
    /// sample by sample, a caller's [`BatchTarget`] once on the whole batch (its error ends
    /// the pass before the backward pass).
    pub(super) fn loss_and_grad_core<E>(
        &mut self,
        mut target: TargetSource<'_, '_, E>,
        beta: f64,
        estimator: Estimator,
        eps: &[f64],
        grad: Option<&mut [f64]>,
    ) -> std::result::Result<f64, E> {
        let d = self.arch.d;
        let synced = std::mem::take(&mut self.w_synced);
        self.grad_pending = grad.is_none();
        let bsz = eps.len() / d;
        self.ensure_batch(bsz);
        if let TargetSource::Mixture(t) = &target
            && self.comp.len() < t.means().len()
        {
            self.comp = vec![0.0; t.means().len()];
        }
        let s0 = self.arch.sigma0;
        let stl = estimator == Estimator::Stl;
        let inv_b = 1.0 / bsz as f64;
        let theta = &self.theta;
        let (arch, lay) = (&self.arch, &self.layout);
        let (xrow, grow, comp) = (&mut self.xrow, &mut self.grow, &mut self.comp);
        let scratch = &mut self.scratch;
        let mut total = 0.0;
        with_engine!(self, e => {
            if !synced {
                e.load_params(theta);
            }
            for (v, z) in e.xs[0].iter_mut().zip(eps) {
                *v = Scalar::from_f64(s0 * z);
            }
            e.forward(arch, lay);
            if stl {
                e.grad_x_log_q(arch, lay);
            }
            let xl = &e.xs[arch.layers];
            if let TargetSource::Batch(f) = &mut target {
                scratch.resize(bsz, d);
                for (o, v) in scratch.x.iter_mut().zip(&xl[..bsz * d]) {
                    *o = v.to_f64();
                }
                f(&scratch.x, &mut scratch.lp, &mut scratch.g)?;
            }
            for b in 0..bsz {
                let (lp, gp): (f64, &[f64]) = match &target {
                    TargetSource::Mixture(t) => {
                        for (o, v) in xrow.iter_mut().zip(&xl[b * d..(b + 1) * d]) {
                            *o = v.to_f64();
                        }
                        (target_grad(t, xrow, grow, comp), &grow[..])
                    }
                    TargetSource::Batch(_) => (scratch.lp[b], &scratch.g[b * d..(b + 1) * d]),
                };
                let z2: f64 = eps[b * d..(b + 1) * d].iter().map(|v| s0 * s0 * v * v).sum();
                let d_f = d as f64;
                let lnp0 = -0.5 * d_f * (2.0 * std::f64::consts::PI * s0 * s0).ln()
                    - 0.5 * z2 / (s0 * s0);
                total += lnp0 - e.logdet[b] - beta * lp;
                let gx = &mut e.gx[b * d..(b + 1) * d];
                for (gv, gp) in gx.iter_mut().zip(gp.iter()) {
                    let base = if stl { gv.to_f64() } else { 0.0 };
                    *gv = Scalar::from_f64((base - beta * gp) * inv_b);
                }
            }
            let coef = if stl { 0.0 } else { -inv_b };
            e.backward(arch, lay, Scalar::from_f64(coef));
            if let Some(grad) = grad {
                for (o, v) in grad.iter_mut().zip(&e.g) {
                    *o = v.to_f64();
                }
            }
        });
        Ok(total * inv_b)
    }

    /// [`Self::loss_and_grad`] against a target evaluated by the caller: the same noise (ε
    /// drawn from `rng` into `eps`, B × d), the same loss and gradient (full or STL; `Exact`
    /// is treated as full) into `grad`, with ln π and ∇ ln π of the whole batch x = f(σ0 ε)
    /// taken from one call of `target` (see [`BatchTarget`]). With a `target` that returns
    /// the built-in mixture's values, the numbers are those of [`Self::loss_and_grad`]. An
    /// error of `target` is returned as is (θ and the optimiser are untouched).
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_grad_batched<R: Rng + ?Sized, E>(
        &mut self,
        target: &mut BatchTarget<'_, E>,
        beta: f64,
        estimator: Estimator,
        batch: usize,
        rng: &mut R,
        eps: &mut Vec<f64>,
        grad: &mut [f64],
    ) -> std::result::Result<f64, E> {
        self.draw_noise(batch, rng, eps);
        self.loss_and_grad_core(
            TargetSource::Batch(target),
            beta,
            estimator,
            eps,
            Some(grad),
        )
    }

    /// Like [`Self::loss_and_grad`] for the training loop: with the f32 engine the gradient
    /// is left in the engine (and `grad` untouched) for [`Self::fused_update`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn loss_and_grad_deferred<R: Rng + ?Sized>(
        &mut self,
        target: &IsotropicMixture,
        beta: f64,
        estimator: Estimator,
        batch: usize,
        rng: &mut R,
        eps: &mut Vec<f64>,
        grad: &mut [f64],
    ) -> f64 {
        self.draw_noise(batch, rng, eps);
        let defer = matches!(self.engine, AnyEngine::F32(_));
        self.loss_and_grad_inner(target, beta, estimator, eps, (!defer).then_some(grad))
    }

    /// The optimiser step on the gradient left in the f32 engine by the last deferred pass
    /// ([`Optimizer::step_mixed`](crate::optim::Optimizer::step_mixed): θ updated in f64 and
    /// rounded into the engine's copy in one pass, the results of the unfused path bit for
    /// bit). `None` when no such gradient is pending (the caller then uses its f64 gradient);
    /// `Some(false)` when the gradient is not finite (θ untouched).
    pub(crate) fn fused_update(
        &mut self,
        opt: &mut dyn crate::optim::Optimizer,
        groups: &[ParamGroup],
        scale: f64,
    ) -> Option<bool> {
        if !std::mem::take(&mut self.grad_pending) {
            return None;
        }
        let AnyEngine::F32(e) = &mut self.engine else {
            return None;
        };
        if e.g.iter().any(|g| !g.is_finite()) {
            return Some(false);
        }
        let finite = opt.step_mixed(&mut self.theta, &e.g, &mut e.w, groups, scale);
        self.finite_cache = Some(finite);
        self.w_synced = true;
        Some(true)
    }

    /// Draws ε ~ N(0, I) (B × d) from `rng` and calls [`Self::loss_and_grad_from_noise`];
    /// `eps` is a reusable buffer.
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_grad<R: Rng + ?Sized>(
        &mut self,
        target: &IsotropicMixture,
        beta: f64,
        estimator: Estimator,
        batch: usize,
        rng: &mut R,
        eps: &mut Vec<f64>,
        grad: &mut [f64],
    ) -> f64 {
        self.draw_noise(batch, rng, eps);
        self.loss_and_grad_from_noise(target, beta, estimator, eps, grad)
    }

    /// ε ~ N(0, I), B × d, into the reusable buffer `eps` (the training loop's noise).
    pub(super) fn draw_noise<R: Rng + ?Sized>(
        &self,
        batch: usize,
        rng: &mut R,
        eps: &mut Vec<f64>,
    ) {
        eps.resize(batch * self.arch.d, 0.0);
        fill_standard_normal(rng, eps);
    }
}
