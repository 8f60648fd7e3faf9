//! Monte-Carlo evaluation of a flow against the target: [`FlowStats`] (mode masses, ESS, KL,
//! −ELBO) and the outcome it implies.

use super::engine::with_engine;
use super::flow::RealNvp;
use super::loss::{BatchTarget, target_grad};
use crate::family::fill_standard_normal;
use crate::metrics::{Outcome, mode_name, mode_of, nearest, outcome_from_covered};
use crate::target::{BenchmarkMetrics, IsotropicMixture};
use rand::Rng;
use serde::Serialize;

/// Monte-Carlo summary of a flow against the target, from N samples x_i ~ q (nats).
///
/// * mode masses: the fraction of samples in each target mode's basin — for the bimodal
///   target the half-spaces x·μ̂ > 0 (heavy, +μ*) and x·μ̂ < 0 (light); otherwise the nearest
///   target mean (Euclidean);
/// * `light_mode_mass`: the lightest mode's estimated mass (true value 1 − w* for the bimodal
///   target), standard error ≈ √(m(1−m)/N);
/// * `mode_weight_error` = |light_mode_mass − ω_light|;
/// * `ess_fraction` = (Σ w_i)² / (N Σ w_i²) with w_i = π(x_i)/q(x_i) (importance-sampling
///   effective sample size over N, in (0, 1]; 1 when q = π);
/// * `kl` = (1/N) Σ [ln q(x_i) − ln π(x_i)] + ln Z, with the target's known normaliser
///   (ln Z = 0 for the normalised mixture): an unbiased estimate of KL(q‖π);
/// * `neg_elbo` = (1/N) Σ [ln q(x_i) − β ln π(x_i)].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowStats {
    /// Estimated mass on the lightest target mode.
    pub light_mode_mass: f64,
    /// |light_mode_mass − true weight of the lightest mode|.
    pub mode_weight_error: f64,
    /// Importance-sampling ESS / N.
    pub ess_fraction: f64,
    /// KL(q‖π) estimate (nats).
    pub kl: f64,
    /// E_q[ln q − β ln π] estimate (nats).
    pub neg_elbo: f64,
    /// Estimated mass of each target mode.
    pub mode_masses: Vec<f64>,
    /// Collapse threshold used by [`FlowStats::outcome`].
    pub collapse_threshold: f64,
    /// N.
    pub samples: usize,
    /// The metrics of a benchmark target (`target.kind = "gmm40"` or `"many_well"`; see
    /// [`BenchmarkMetrics`]), from the same samples; absent for other targets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub benchmark: Option<BenchmarkMetrics>,
}

impl FlowStats {
    /// All-NaN statistics (diverged runs).
    pub fn nan() -> Self {
        FlowStats {
            light_mode_mass: f64::NAN,
            mode_weight_error: f64::NAN,
            ess_fraction: f64::NAN,
            kl: f64::NAN,
            neg_elbo: f64::NAN,
            mode_masses: Vec::new(),
            collapse_threshold: f64::NAN,
            samples: 0,
            benchmark: None,
        }
    }

    /// The outcome: a mode counts as covered when its estimated mass is at least the collapse
    /// threshold; all covered → covered, exactly one → collapsed onto it, else partial.
    pub fn outcome(&self, target: &IsotropicMixture) -> Outcome {
        self.outcome_named(|mode| mode_name(target, mode))
    }

    /// [`Self::outcome`] with the modes named by `name(index)` (for targets other than the
    /// built-in mixtures).
    pub fn outcome_named(&self, name: impl FnOnce(usize) -> String) -> Outcome {
        if !self.kl.is_finite() && self.samples == 0 {
            return Outcome::Diverged { step: 0 };
        }
        let covered: Vec<bool> = self
            .mode_masses
            .iter()
            .map(|&m| m >= self.collapse_threshold)
            .collect();
        outcome_from_covered(&covered, name)
    }
}

/// The importance-sampling ESS fraction (Σ w_i)² / (N Σ w_i²) from the log-weights
/// ln w_i = ln π(x_i) − ln q(x_i) (shifted by their maximum); NaN when Σ w_i² is 0.
fn ess_fraction(log_w: &[f64]) -> f64 {
    let mx = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let (mut s1, mut s2) = (0.0, 0.0);
    for lw in log_w {
        let w = (lw - mx).exp();
        s1 += w;
        s2 += w * w;
    }
    if s2 > 0.0 {
        s1 * s1 / (s2 * log_w.len() as f64)
    } else {
        f64::NAN
    }
}

impl RealNvp {
    /// Monte-Carlo statistics from `n` samples drawn with `rng` (see [`FlowStats`]); samples
    /// are pushed through in chunks of the current batch size (no reallocation during training).
    pub fn evaluate<R: Rng + ?Sized>(
        &mut self,
        target: &IsotropicMixture,
        beta: f64,
        n: usize,
        collapse_threshold: f64,
        rng: &mut R,
    ) -> FlowStats {
        let d = self.arch.d;
        let n = n.max(1);
        let cur = with_engine!(self, e => e.batch);
        let chunk = if cur > 1 { cur } else { n.min(256) };
        let jm = target.means().len();
        if self.comp.len() < jm {
            self.comp = vec![0.0; jm];
        }
        let mut counts = vec![0usize; jm];
        let (mut eps, mut x, mut lq) =
            (vec![0.0; chunk * d], vec![0.0; chunk * d], vec![0.0; chunk]);
        let mut log_w = Vec::with_capacity(n);
        let (mut kl, mut ne) = (0.0, 0.0);
        let mut done = 0;
        while done < n {
            fill_standard_normal(rng, &mut eps);
            self.push_forward(&eps, &mut x, &mut lq);
            let take = chunk.min(n - done);
            for b in 0..take {
                let xb = &x[b * d..(b + 1) * d];
                let lp = target_grad(target, xb, &mut self.grow, &mut self.comp);
                kl += lq[b] - lp;
                ne += lq[b] - beta * lp;
                log_w.push(lp - lq[b]);
                counts[mode_of(target, xb)] += 1;
            }
            done += take;
        }
        let nf = n as f64;
        let mode_masses: Vec<f64> = counts.iter().map(|&c| c as f64 / nf).collect();
        let light = target.lightest_mode();
        let ln_z = 0.0; // the mixture is normalised
        FlowStats {
            light_mode_mass: mode_masses[light],
            mode_weight_error: (mode_masses[light] - target.weights()[light]).abs(),
            ess_fraction: ess_fraction(&log_w),
            kl: kl / nf + ln_z,
            neg_elbo: ne / nf,
            mode_masses,
            collapse_threshold,
            samples: n,
            benchmark: None,
        }
    }

    /// `n` samples x_i ~ q (n × d, row-major) and their ln q(x_i), drawn with `rng` as
    /// [`Self::evaluate`] and [`Self::evaluate_batched`] draw theirs (the same chunks): from a
    /// copy of the stream they were given, the same points.
    pub fn sample_with_log_q<R: Rng + ?Sized>(
        &mut self,
        n: usize,
        rng: &mut R,
    ) -> (Vec<f64>, Vec<f64>) {
        let d = self.arch.d;
        let n = n.max(1);
        let cur = with_engine!(self, e => e.batch);
        let chunk = if cur > 1 { cur } else { n.min(256) };
        let (mut eps, mut x, mut lq) =
            (vec![0.0; chunk * d], vec![0.0; chunk * d], vec![0.0; chunk]);
        let (mut xs, mut lqs) = (Vec::with_capacity(n * d), Vec::with_capacity(n));
        while lqs.len() < n {
            fill_standard_normal(rng, &mut eps);
            self.push_forward(&eps, &mut x, &mut lq);
            let take = chunk.min(n - lqs.len());
            xs.extend_from_slice(&x[..take * d]);
            lqs.extend_from_slice(&lq[..take]);
        }
        (xs, lqs)
    }

    /// [`Self::evaluate`] against a target evaluated by the caller (see [`BatchTarget`]),
    /// whose modes are given by their centres `modes` (possibly none): the same draws from
    /// `rng` in the same chunks, each chunk's samples evaluated by one call of `target`. A
    /// sample belongs to the mode of the nearest centre (Euclidean); `light_mode_mass` is the
    /// smallest mode mass (NaN without modes). The target's normaliser and mode weights are
    /// unknown, so `kl` and `mode_weight_error` are NaN; `neg_elbo` = (1/N) Σ [ln q − β ln π]
    /// against the unnormalised π, and the ESS fraction does not depend on the normaliser.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate_batched<R: Rng + ?Sized, E>(
        &mut self,
        target: &mut BatchTarget<'_, E>,
        modes: &[Vec<f64>],
        beta: f64,
        n: usize,
        collapse_threshold: f64,
        rng: &mut R,
    ) -> std::result::Result<FlowStats, E> {
        let d = self.arch.d;
        let n = n.max(1);
        let cur = with_engine!(self, e => e.batch);
        let chunk = if cur > 1 { cur } else { n.min(256) };
        let mut counts = vec![0usize; modes.len()];
        let (mut eps, mut x, mut lq) =
            (vec![0.0; chunk * d], vec![0.0; chunk * d], vec![0.0; chunk]);
        let (mut lp, mut gp) = (vec![0.0; chunk], vec![0.0; chunk * d]);
        let mut log_w = Vec::with_capacity(n);
        let mut ne = 0.0;
        let mut done = 0;
        while done < n {
            fill_standard_normal(rng, &mut eps);
            self.push_forward(&eps, &mut x, &mut lq);
            let take = chunk.min(n - done);
            target(&x[..take * d], &mut lp[..take], &mut gp[..take * d])?;
            for b in 0..take {
                let xb = &x[b * d..(b + 1) * d];
                ne += lq[b] - beta * lp[b];
                log_w.push(lp[b] - lq[b]);
                if let Some(m) = nearest(xb, modes) {
                    counts[m] += 1;
                }
            }
            done += take;
        }
        let nf = n as f64;
        let mode_masses: Vec<f64> = counts.iter().map(|&c| c as f64 / nf).collect();
        let light = mode_masses
            .iter()
            .cloned()
            .reduce(f64::min)
            .unwrap_or(f64::NAN);
        Ok(FlowStats {
            light_mode_mass: light,
            mode_weight_error: f64::NAN,
            ess_fraction: ess_fraction(&log_w),
            kl: f64::NAN,
            neg_elbo: ne / nf,
            mode_masses,
            collapse_threshold,
            samples: n,
            benchmark: None,
        })
    }
}
