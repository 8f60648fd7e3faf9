//! The students against the built-in mixtures: [`Student`] for the Gaussian-mixture student
//! (Monte-Carlo kernel or exact gradient, exact or Monte-Carlo records, closed-form marginals)
//! and for the RealNVP flow (its batched passes, Monte-Carlo records and outcome).

use super::{
    MarginalSnapshot, Observer, Record, RunResult, Student, TrainSettings, Trainable, plain_update,
};
use crate::family::gmm::Stats;
use crate::family::realnvp::FlowStats;
use crate::family::{GmmStudent, ParamGroup, RealNvp, VariationalFamily};
use crate::metrics::{Outcome, classify, light_mode_mass};
use crate::objective::{Estimator, ExactObjective, McWorkspace, mc_gradient};
use crate::optim::Optimizer;
use crate::target::{IsotropicMixture, LogDensity};
use rand::Rng;

/// Workspace of the Gaussian-mixture student.
pub struct GmmWorkspace {
    exact: Option<ExactObjective>,
    mc: McWorkspace,
}

impl Trainable for GmmStudent {
    fn params_within(&self, bound: f64) -> bool {
        self.within(bound)
    }
}

impl Student for GmmStudent {
    type Workspace = GmmWorkspace;
    type Stats = Stats;

    fn workspace(&self, target: &IsotropicMixture, settings: &TrainSettings) -> GmmWorkspace {
        let exact = if settings.estimator == Estimator::Exact
            || (target.as_bimodal().is_some()
                && self.components() <= 2
                && settings.record_every > 0)
        {
            Some(ExactObjective::new(target.dim()))
        } else {
            None
        };
        GmmWorkspace {
            exact,
            mc: McWorkspace::default(),
        }
    }

    fn loss_and_grad<R: Rng + ?Sized>(
        &mut self,
        ws: &mut GmmWorkspace,
        target: &IsotropicMixture,
        beta: f64,
        settings: &TrainSettings,
        _want_loss: bool,
        rng: &mut R,
        grad: &mut [f64],
    ) -> f64 {
        match settings.estimator {
            Estimator::Exact => match ws.exact.as_ref().map(|e| e.evaluate(self, target, beta)) {
                Some(Ok(v)) => {
                    grad.copy_from_slice(&v.grad);
                    v.neg_elbo
                }
                _ => f64::NAN,
            },
            est => mc_gradient(
                self,
                target,
                beta,
                est,
                settings.samples,
                rng,
                &mut ws.mc,
                grad,
            ),
        }
    }

    fn record<R: Rng + ?Sized>(
        &mut self,
        ws: &mut GmmWorkspace,
        target: &IsotropicMixture,
        beta: f64,
        step: usize,
        loss: f64,
        settings: &TrainSettings,
        eval_rng: &mut R,
        observer: &mut dyn Observer,
    ) {
        let rec = record(
            self,
            target,
            beta,
            step,
            loss,
            ws.exact.as_ref(),
            settings.kl_samples,
            eval_rng,
        );
        observer.on_record(&rec);
    }

    fn log_target_at_samples<R: Rng + ?Sized>(
        &mut self,
        target: &IsotropicMixture,
        n: usize,
        rng: &mut R,
        out: &mut Vec<f64>,
    ) {
        let mut x = vec![0.0; self.dim()];
        let mut rng = rng;
        out.clear();
        for _ in 0..n {
            self.sample(&mut rng, &mut x);
            out.push(target.log_density(&x));
        }
    }

    fn marginal(
        &self,
        target: &IsotropicMixture,
        beta: f64,
        step: usize,
        grid: (f64, usize),
    ) -> Option<MarginalSnapshot> {
        Some(marginal_snapshot(self, target, beta, step, grid))
    }

    fn finish<R: Rng + ?Sized>(
        &mut self,
        target: &IsotropicMixture,
        step: usize,
        diverged: bool,
        _settings: &TrainSettings,
        _eval_rng: &mut R,
    ) -> RunResult {
        gmm_result(self, target, step, diverged)
    }
}

/// Workspace of the flow student: the noise buffer.
pub struct FlowWorkspace {
    pub(super) eps: Vec<f64>,
}

impl Trainable for RealNvp {
    fn update(
        &mut self,
        opt: &mut dyn Optimizer,
        grad: &mut [f64],
        groups: &[ParamGroup],
        scale: f64,
    ) -> bool {
        self.fused_update(opt, groups, scale)
            .unwrap_or_else(|| plain_update(self, opt, grad, groups, scale))
    }

    fn params_within(&self, bound: f64) -> bool {
        self.within(bound)
    }
}

impl Student for RealNvp {
    type Workspace = FlowWorkspace;
    type Stats = FlowStats;

    fn workspace(&self, _target: &IsotropicMixture, _settings: &TrainSettings) -> FlowWorkspace {
        FlowWorkspace { eps: Vec::new() }
    }

    fn loss_and_grad<R: Rng + ?Sized>(
        &mut self,
        ws: &mut FlowWorkspace,
        target: &IsotropicMixture,
        beta: f64,
        settings: &TrainSettings,
        _want_loss: bool,
        rng: &mut R,
        grad: &mut [f64],
    ) -> f64 {
        self.loss_and_grad_deferred(
            target,
            beta,
            settings.estimator,
            settings.samples,
            rng,
            &mut ws.eps,
            grad,
        )
    }

    fn record<R: Rng + ?Sized>(
        &mut self,
        _ws: &mut FlowWorkspace,
        target: &IsotropicMixture,
        beta: f64,
        step: usize,
        loss: f64,
        settings: &TrainSettings,
        eval_rng: &mut R,
        observer: &mut dyn Observer,
    ) {
        let st = self.evaluate(
            target,
            beta,
            settings.kl_samples,
            settings.collapse_threshold,
            eval_rng,
        );
        observer.on_record(&flow_record(step, beta, loss, st));
    }

    fn log_target_at_samples<R: Rng + ?Sized>(
        &mut self,
        target: &IsotropicMixture,
        n: usize,
        rng: &mut R,
        out: &mut Vec<f64>,
    ) {
        let d = VariationalFamily::dim(self);
        let (x, _) = self.sample_with_log_q(n, rng);
        out.clear();
        out.extend(x.chunks_exact(d).take(n).map(|xb| target.log_density(xb)));
    }

    fn finish<R: Rng + ?Sized>(
        &mut self,
        target: &IsotropicMixture,
        step: usize,
        diverged: bool,
        settings: &TrainSettings,
        eval_rng: &mut R,
    ) -> RunResult<FlowStats> {
        if diverged || !self.is_finite() {
            return RunResult::diverged(step, FlowStats::nan());
        }
        let st = self.evaluate(
            target,
            1.0,
            settings.outcome_samples,
            settings.collapse_threshold,
            eval_rng,
        );
        flow_result(step, st.outcome(target), st)
    }
}

/// A flow's trajectory record: its Monte-Carlo statistics, with their KL and −ELBO.
pub(super) fn flow_record(step: usize, beta: f64, loss: f64, st: FlowStats) -> Record<FlowStats> {
    Record {
        step,
        beta,
        loss,
        kl: st.kl,
        neg_elbo: st.neg_elbo,
        stats: st,
    }
}

/// The result of a flow run that did not diverge: its final statistics and their outcome.
pub(super) fn flow_result(step: usize, outcome: Outcome, st: FlowStats) -> RunResult<FlowStats> {
    RunResult {
        outcome,
        final_step: step,
        light_mode_mass: st.light_mode_mass,
        stats: st,
    }
}

/// The result of a mixture-student run after `step` steps: its statistics along the target's
/// axis, and unless it diverged its outcome and light-mode mass.
pub(crate) fn gmm_result(
    q: &GmmStudent,
    target: &IsotropicMixture,
    step: usize,
    diverged: bool,
) -> RunResult {
    let stats = q.stats(target.axis());
    if diverged {
        RunResult::diverged(step, stats)
    } else {
        RunResult {
            outcome: classify(q, target),
            final_step: step,
            light_mode_mass: light_mode_mass(q, target),
            stats,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn record<R: Rng + ?Sized>(
    q: &GmmStudent,
    target: &IsotropicMixture,
    beta: f64,
    step: usize,
    loss: f64,
    exact: Option<&ExactObjective>,
    kl_samples: usize,
    eval_rng: &mut R,
) -> Record {
    let stats = q.stats(target.axis());
    let (kl, neg_elbo) = exact_kl(exact, q, target.axis(), target, beta)
        .unwrap_or_else(|| mc_kl(q, target, beta, kl_samples, eval_rng));
    Record {
        step,
        beta,
        loss,
        kl,
        neg_elbo,
        stats,
    }
}

/// (KL(q‖π), E_q[ln q − β ln π]) from the exact objective where it applies: an `exact`
/// objective, the bimodal target and a finite student with K ≤ 2 components (μ̂ in the
/// student's coordinates: `q_axis`). `None` elsewhere.
pub(crate) fn exact_kl(
    exact: Option<&ExactObjective>,
    q: &GmmStudent,
    q_axis: &[f64],
    target: &IsotropicMixture,
    beta: f64,
) -> Option<(f64, f64)> {
    let (e, b) = (exact?, target.as_bimodal()?);
    if !q.is_finite() {
        return None;
    }
    let st = ExactObjective::reduce(q, q_axis).ok()?;
    let v = e.evaluate_reduced(&st, b, beta);
    Some((v.entropy_term - v.cross_term, v.neg_elbo))
}

/// Monte-Carlo (KL(q‖π), E_q[ln q − β ln π]) with `n` samples per component (stratified).
pub fn mc_kl<R: Rng + ?Sized>(
    q: &GmmStudent,
    target: &IsotropicMixture,
    beta: f64,
    n: usize,
    rng: &mut R,
) -> (f64, f64) {
    let d = target.dim();
    let w = q.weights();
    let mut z = vec![0.0; d];
    let (mut kl, mut ne) = (0.0, 0.0);
    for k in 0..q.components() {
        let (mut a, mut b) = (0.0, 0.0);
        for _ in 0..n {
            crate::family::fill_standard_normal(rng, &mut z);
            let s = q.sigma(k);
            for (zi, mi) in z.iter_mut().zip(q.mean(k)) {
                *zi = mi + s * *zi;
            }
            let lq = q.log_density(&z);
            let lp = target.log_density(&z);
            a += lq - lp;
            b += lq - beta * lp;
        }
        kl += w[k] * a / n as f64;
        ne += w[k] * b / n as f64;
    }
    (kl, ne)
}

/// Marginals of q, π and π_β along μ̂ on the grid [−range, range].
pub fn marginal_snapshot(
    q: &GmmStudent,
    target: &IsotropicMixture,
    beta: f64,
    step: usize,
    grid: (f64, usize),
) -> MarginalSnapshot {
    marginal_along(q, target.axis(), target, beta, step, grid)
}

/// [`marginal_snapshot`] with μ̂ in the student's own coordinates given as `q_axis` (the
/// statistics engine's frame).
pub(crate) fn marginal_along(
    q: &GmmStudent,
    q_axis: &[f64],
    target: &IsotropicMixture,
    beta: f64,
    step: usize,
    (range, n): (f64, usize),
) -> MarginalSnapshot {
    let axis = target.axis();
    let s: Vec<f64> = (0..n)
        .map(|i| -range + 2.0 * range * i as f64 / (n - 1) as f64)
        .collect();
    MarginalSnapshot {
        step,
        beta,
        q: s.iter().map(|&x| q.axis_density(q_axis, x)).collect(),
        target: s.iter().map(|&x| target.axis_density(axis, x)).collect(),
        target_tempered: target
            .as_bimodal()
            .map(|b| b.tempered_axis_densities(beta, &s)),
        s,
    }
}
