//! The students against a target evaluated outside the library, a batch of points at a time
//! ([`ExternalTarget`], e.g. a Python callable): the Gaussian-mixture student with the
//! batched reference estimator, and the RealNVP flow with its batched passes. They run
//! through the library's loop ([`train_with`](super::train_with)) with its random streams, so
//! against an external copy of a built-in target they reproduce the built-in runs (the flow
//! bit for bit; the mixture student up to the kernel's rounding).

use super::builtin::{FlowWorkspace, flow_record, flow_result};
use super::{Observer, Record, RunResult, Student, TrainSettings, TrainTarget};
use crate::family::realnvp::FlowStats;
use crate::family::{GmmStudent, RealNvp, VariationalFamily};
use crate::metrics::{nearest, outcome_from_covered};
use crate::objective::{BatchWorkspace, mc_gradient_batched};
use crate::target::{LogDensity, ManyWell};
use rand::Rng;
use std::cell::RefCell;

/// A target evaluated outside the library: ln π and ∇ ln π of an unnormalised π on a batch of
/// points, and optionally the centres of its modes (for outcomes and mode masses).
pub trait ExternalTarget {
    /// Why an evaluation failed (e.g. a Python exception).
    type Error;
    /// Dimension d.
    fn dim(&self) -> usize;
    /// Fills `log_prob` (n) with ln π(x_b) and `grad` (n × d, row-major) with ∇ ln π(x_b) at
    /// the n = `log_prob.len()` points `x` (n × d, row-major).
    fn evaluate(
        &self,
        x: &[f64],
        log_prob: &mut [f64],
        grad: &mut [f64],
    ) -> Result<(), Self::Error>;
    /// The centres of the modes, if known.
    fn modes(&self) -> Option<&[Vec<f64>]>;
}

/// Many Well evaluated a batch at a time (it never fails; it gives no mode centres: its
/// 2^{d/2} modes are measured by their wells, see [`crate::run::Trainer`]).
impl ExternalTarget for ManyWell {
    type Error = std::convert::Infallible;
    fn dim(&self) -> usize {
        LogDensity::dim(self)
    }
    fn evaluate(
        &self,
        x: &[f64],
        log_prob: &mut [f64],
        grad: &mut [f64],
    ) -> Result<(), Self::Error> {
        let d = LogDensity::dim(self);
        for ((xb, lp), gb) in x
            .chunks_exact(d)
            .zip(log_prob.iter_mut())
            .zip(grad.chunks_exact_mut(d))
        {
            *lp = self.grad_log_density(xb, gb);
        }
        Ok(())
    }
    fn modes(&self) -> Option<&[Vec<f64>]> {
        None
    }
}

/// One run's view of an [`ExternalTarget`]: the target, the axis of the recorded statistics
/// and the first failure of its evaluations (the loop ends the run with it).
pub struct External<'a, X: ExternalTarget + ?Sized> {
    target: &'a X,
    axis: Vec<f64>,
    error: RefCell<Option<X::Error>>,
}

impl<'a, X: ExternalTarget + ?Sized> External<'a, X> {
    /// The view of `target` for one run.
    pub fn new(target: &'a X) -> Self {
        Self {
            target,
            axis: axis(target.dim(), target.modes()),
            error: RefCell::new(None),
        }
    }

    /// The axis u of the recorded statistics m_k = μ_k·u: the direction of the first mode,
    /// else e_1.
    pub fn axis(&self) -> &[f64] {
        &self.axis
    }

    /// The mode centres (none when unknown).
    fn modes(&self) -> &[Vec<f64>] {
        self.target.modes().unwrap_or_default()
    }

    /// The batch evaluation, as the batched passes take it.
    fn batch(&self) -> impl FnMut(&[f64], &mut [f64], &mut [f64]) -> Result<(), X::Error> + '_ {
        |x, lp, g| self.target.evaluate(x, lp, g)
    }

    /// ln π at the points `x` (n × d, row-major) into `out` (resized to n; NaN where the
    /// evaluation failed, the failure kept for the loop). The gradient is computed and
    /// discarded: the batch evaluation gives both.
    fn log_prob(&self, x: &[f64], out: &mut Vec<f64>) {
        let n = x.len() / self.target.dim().max(1);
        out.clear();
        out.resize(n, f64::NAN);
        let mut g = vec![0.0; x.len()];
        let r = self.target.evaluate(x, out, &mut g);
        if self.keep(r.map(|_| true), false) {
            return;
        }
        out.iter_mut().for_each(|v| *v = f64::NAN);
    }

    /// The value of `r`, or `fallback` with the error kept for the loop.
    fn keep<V>(&self, r: Result<V, X::Error>, fallback: V) -> V {
        r.unwrap_or_else(|e| {
            self.error.borrow_mut().get_or_insert(e);
            fallback
        })
    }
}

impl<X: ExternalTarget + ?Sized> TrainTarget for External<'_, X> {
    type Error = X::Error;
    fn take_error(&self) -> Result<(), X::Error> {
        match self.error.borrow_mut().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The unit vector along the first mode centre, else e_1.
fn axis(d: usize, modes: Option<&[Vec<f64>]>) -> Vec<f64> {
    let mut u = vec![0.0; d];
    if let Some(m) = modes.and_then(|m| m.first()) {
        let n = m.iter().map(|v| v * v).sum::<f64>().sqrt();
        if n > 0.0 {
            for i in 0..d {
                u[i] = m[i] / n;
            }
            return u;
        }
    }
    u[0] = 1.0;
    u
}

/// The Gaussian-mixture student against an external target: the batched reference estimator
/// (full or STL; the exact estimator needs a built-in target), records with the loss as
/// −ELBO (KL unknown: NaN), and as result statistics the mass of q on each mode's cell
/// (nearest centre; empty for a diverged run or a target without modes).
impl<X: ExternalTarget + ?Sized> Student<External<'_, X>> for GmmStudent {
    type Workspace = BatchWorkspace;
    type Stats = Vec<f64>;

    fn workspace(&self, _target: &External<'_, X>, _settings: &TrainSettings) -> BatchWorkspace {
        BatchWorkspace::default()
    }

    fn loss_and_grad<R: Rng + ?Sized>(
        &mut self,
        ws: &mut BatchWorkspace,
        target: &External<'_, X>,
        beta: f64,
        settings: &TrainSettings,
        _want_loss: bool,
        rng: &mut R,
        grad: &mut [f64],
    ) -> f64 {
        let (est, b) = (settings.estimator, settings.samples);
        let r = mc_gradient_batched(self, target.batch(), beta, est, b, rng, ws, grad);
        target.keep(r, f64::NAN)
    }

    fn log_target_at_samples<R: Rng + ?Sized>(
        &mut self,
        target: &External<'_, X>,
        n: usize,
        rng: &mut R,
        out: &mut Vec<f64>,
    ) {
        let d = self.dim();
        let mut x = vec![0.0; n * d];
        let mut rng = rng;
        for xb in x.chunks_exact_mut(d) {
            self.sample(&mut rng, xb);
        }
        target.log_prob(&x, out);
    }

    fn record<R: Rng + ?Sized>(
        &mut self,
        _ws: &mut BatchWorkspace,
        target: &External<'_, X>,
        beta: f64,
        step: usize,
        loss: f64,
        _settings: &TrainSettings,
        _eval_rng: &mut R,
        observer: &mut dyn Observer,
    ) {
        observer.on_record(&Record {
            step,
            beta,
            loss,
            kl: f64::NAN,
            neg_elbo: loss,
            stats: self.stats(target.axis()),
        });
    }

    /// Each component belongs to the mode of the nearest centre (covered / collapsed /
    /// partial, as for the built-in mixtures, modes named "mode j"); the masses come from
    /// `settings.outcome_samples` draws of q with `eval_rng`; the light-mode mass is the
    /// smallest (NaN without modes).
    fn finish<R: Rng + ?Sized>(
        &mut self,
        target: &External<'_, X>,
        step: usize,
        diverged: bool,
        settings: &TrainSettings,
        mut eval_rng: &mut R,
    ) -> RunResult<Vec<f64>> {
        if diverged {
            return RunResult::diverged(step, Vec::new());
        }
        let modes = target.modes();
        let mut covered = vec![false; modes.len()];
        for k in 0..self.components() {
            if let Some(m) = nearest(self.mean(k), modes) {
                covered[m] = true;
            }
        }
        let outcome = outcome_from_covered(&covered, |m| format!("mode {m}"));
        let samples = if modes.is_empty() {
            0
        } else {
            settings.outcome_samples
        };
        let mut counts = vec![0usize; modes.len()];
        let mut x = vec![0.0; self.dim()];
        for _ in 0..samples {
            self.sample(&mut eval_rng, &mut x);
            if let Some(m) = nearest(&x, modes) {
                counts[m] += 1;
            }
        }
        let masses: Vec<f64> = counts
            .iter()
            .map(|&c| c as f64 / samples.max(1) as f64)
            .collect();
        RunResult {
            outcome,
            final_step: step,
            light_mode_mass: masses.iter().cloned().reduce(f64::min).unwrap_or(f64::NAN),
            stats: masses,
        }
    }
}

/// The flow against an external target: its batched passes with the noise, records and final
/// evaluation of the built-in flow runs (modes named "mode j"; KL and mode-weight error
/// NaN: the normaliser and the mode weights are unknown).
impl<X: ExternalTarget + ?Sized> Student<External<'_, X>> for RealNvp {
    type Workspace = FlowWorkspace;
    type Stats = FlowStats;

    fn workspace(&self, _target: &External<'_, X>, _settings: &TrainSettings) -> FlowWorkspace {
        FlowWorkspace { eps: Vec::new() }
    }

    fn loss_and_grad<R: Rng + ?Sized>(
        &mut self,
        ws: &mut FlowWorkspace,
        target: &External<'_, X>,
        beta: f64,
        settings: &TrainSettings,
        _want_loss: bool,
        rng: &mut R,
        grad: &mut [f64],
    ) -> f64 {
        let (est, b) = (settings.estimator, settings.samples);
        let mut f = target.batch();
        let r = self.loss_and_grad_batched(&mut f, beta, est, b, rng, &mut ws.eps, grad);
        target.keep(r, f64::NAN)
    }

    fn log_target_at_samples<R: Rng + ?Sized>(
        &mut self,
        target: &External<'_, X>,
        n: usize,
        rng: &mut R,
        out: &mut Vec<f64>,
    ) {
        let (x, _) = self.sample_with_log_q(n, rng);
        let d = VariationalFamily::dim(self);
        target.log_prob(&x[..n * d], out);
    }

    fn record<R: Rng + ?Sized>(
        &mut self,
        _ws: &mut FlowWorkspace,
        target: &External<'_, X>,
        beta: f64,
        step: usize,
        loss: f64,
        settings: &TrainSettings,
        eval_rng: &mut R,
        observer: &mut dyn Observer,
    ) {
        let (n, c) = (settings.kl_samples, settings.collapse_threshold);
        let r = self.evaluate_batched(&mut target.batch(), target.modes(), beta, n, c, eval_rng);
        if let Some(st) = target.keep(r.map(Some), None) {
            observer.on_record(&flow_record(step, beta, loss, st));
        }
    }

    fn finish<R: Rng + ?Sized>(
        &mut self,
        target: &External<'_, X>,
        step: usize,
        diverged: bool,
        settings: &TrainSettings,
        eval_rng: &mut R,
    ) -> RunResult<FlowStats> {
        if diverged || !self.is_finite() {
            return RunResult::diverged(step, FlowStats::nan());
        }
        let (n, c) = (settings.outcome_samples, settings.collapse_threshold);
        let r = self.evaluate_batched(&mut target.batch(), target.modes(), 1.0, n, c, eval_rng);
        match target.keep(r.map(Some), None) {
            Some(st) => flow_result(step, st.outcome_named(|m| format!("mode {m}")), st),
            None => RunResult::diverged(step, FlowStats::nan()),
        }
    }
}
