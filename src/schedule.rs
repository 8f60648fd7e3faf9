//! Annealing schedules β(t): the inverse temperature of the target π_β ∝ π^β at SGD step t.
//!
//! t counts SGD steps (not gradient-flow time; the map to ODE time is τ = η t, see
//! docs/theory.md). All schedules end at β = 1 for t ≥ t0 unless constant.
//!
//! [`ScheduleConfig`] (the `[schedule]` section of a configuration) validates its fields and
//! builds the schedule with [`ScheduleConfig::init`].
//!
//! The adaptive schedule (`kind = "adaptive"`, [`Adaptive`]) is not a function of t alone: β
//! moves by a rule computed from the student's own samples during training. The training loop
//! owns its state through an [`Annealer`], of which the schedules β(t) are the stateless case.

use crate::check::{self, UNIT};
use crate::error::{Error, Result};
use crate::seed::Stream;
use serde::{Deserialize, Serialize};

/// β as a function of the SGD step.
pub trait Schedule: Send + Sync {
    /// β(t) ∈ (0, 1]; `t` may be fractional.
    fn beta(&self, t: f64) -> f64;
    /// The first step from which β = 1 for good (0 for a constant schedule at β = 1).
    fn end(&self) -> f64;
}

/// β(t) = β for all t.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Constant {
    /// The constant inverse temperature.
    pub beta: f64,
}

impl Schedule for Constant {
    fn beta(&self, _t: f64) -> f64 {
        self.beta
    }
    fn end(&self) -> f64 {
        0.0
    }
}

/// The paper's schedule: β(t) = β_i^(1 − t/t0) for t < t0, then 1. β grows by the factor
/// r = β_i^(−1/t0) per step (the "annealing rate"); t0 = 0 means no annealing (β = 1).
///
/// ```
/// use annealvi::schedule::{Exponential, Schedule};
///
/// let s = Exponential { beta_i: 0.01, t0: 1000.0 };
/// assert_eq!(s.beta(0.0), 0.01);
/// assert!((s.beta(500.0) - 0.1).abs() < 1e-12); // halfway in log β
/// assert_eq!(s.beta(1000.0), 1.0);
/// assert_eq!(s.beta(1e6), 1.0);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Exponential {
    /// Initial inverse temperature β_i ∈ (0, 1].
    pub beta_i: f64,
    /// Annealing time t0 ≥ 0 in SGD steps.
    pub t0: f64,
}

impl Exponential {
    /// The annealing rate r = β_i^(−1/t0) (growth factor of β per step); 1 when t0 = 0.
    pub fn rate(&self) -> f64 {
        if self.t0 == 0.0 {
            1.0
        } else {
            self.beta_i.powf(-1.0 / self.t0)
        }
    }
}

impl Schedule for Exponential {
    fn beta(&self, t: f64) -> f64 {
        if t >= self.t0 {
            1.0
        } else {
            self.beta_i.powf(1.0 - t / self.t0)
        }
    }
    fn end(&self) -> f64 {
        self.t0
    }
}

/// β(t) = β_i + (1 − β_i) t/t0 for t < t0, then 1.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Linear {
    /// Initial inverse temperature.
    pub beta_i: f64,
    /// Annealing time in SGD steps.
    pub t0: f64,
}

impl Schedule for Linear {
    fn beta(&self, t: f64) -> f64 {
        if t >= self.t0 {
            1.0
        } else {
            self.beta_i + (1.0 - self.beta_i) * t / self.t0
        }
    }
    fn end(&self) -> f64 {
        self.t0
    }
}

/// β(t) = 1/(T_i + (1 − T_i) t/t0) for t < t0, then 1, with T_i = 1/β_i: the temperature
/// falls linearly to 1. It lingers at large β, where the split of a Gaussian-mixture student
/// is decided (docs/theory.md §10).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LinearTemperature {
    /// Initial inverse temperature β_i ∈ (0, 1].
    pub beta_i: f64,
    /// Annealing time in SGD steps.
    pub t0: f64,
}

impl Schedule for LinearTemperature {
    fn beta(&self, t: f64) -> f64 {
        if t >= self.t0 {
            1.0
        } else {
            let ti = 1.0 / self.beta_i;
            1.0 / (ti + (1.0 - ti) * t / self.t0)
        }
    }
    fn end(&self) -> f64 {
        self.t0
    }
}

/// User points (t_j, β_j), strictly increasing in t, interpolated geometrically
/// (linearly in ln β): β(t) = β_j (β_{j+1}/β_j)^((t − t_j)/(t_{j+1} − t_j)). Before the first
/// point β = β_1; after the last, β = β_last (usually 1).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Points {
    points: Vec<(f64, f64)>,
}

impl Points {
    /// Points must be non-empty, with strictly increasing t ≥ 0 and β ∈ (0, 1]
    /// (validated by [`ScheduleConfig::validate`]).
    pub fn new(points: Vec<(f64, f64)>) -> Self {
        assert!(!points.is_empty());
        Self { points }
    }
}

impl Schedule for Points {
    fn beta(&self, t: f64) -> f64 {
        let p = &self.points;
        if t <= p[0].0 {
            return p[0].1;
        }
        for w in p.windows(2) {
            let ((t1, b1), (t2, b2)) = (w[0], w[1]);
            if t < t2 {
                let f = (t - t1) / (t2 - t1);
                return (b1.ln() + f * (b2.ln() - b1.ln())).exp();
            }
        }
        p[p.len() - 1].1
    }
    fn end(&self) -> f64 {
        self.points[self.points.len() - 1].0
    }
}

/// Which schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// β(t) = `beta`.
    Constant,
    /// β(t) = β_i^(1 − t/t0), then 1.
    Exponential,
    /// β(t) = β_i + (1 − β_i) t/t0, then 1.
    Linear,
    /// Temperature 1/β falling linearly from 1/β_i to 1 at t0, then β = 1.
    LinearTemperature,
    /// Geometric interpolation of `points`.
    Points,
    /// β from β_i to 1 by the effective sample size of the student's own samples
    /// ([`Adaptive`]), with the hard budget t0.
    Adaptive,
}

/// Schedule settings (the `[schedule]` section of a configuration).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Which schedule.
    pub kind: ScheduleKind,
    /// β for the constant schedule, in (0, 1].
    pub beta: f64,
    /// Initial β_i ∈ (0, 1] (exponential, linear, linear_temperature, adaptive).
    pub beta_i: f64,
    /// Annealing time t0 ≥ 0 in SGD steps (exponential, linear, linear_temperature); for
    /// adaptive, the budget: β = 1 from step t0 on.
    pub t0: f64,
    /// (step, β) points for `points`: steps ≥ 0 strictly increasing, β ∈ (0, 1].
    pub points: Vec<(f64, f64)>,
    /// Adaptive: the target fraction ρ ∈ (0, 1) of the effective sample size of the
    /// incremental weights π(x_i)^Δβ over the samples x_i ~ q (default 0.99, chosen by the
    /// measurements of docs/adaptive.md).
    pub rho: f64,
    /// Adaptive: β is updated every this many SGD steps k ≥ 1.
    pub every: usize,
    /// Adaptive: samples B ≥ 2 of q drawn at each update (B/k extra evaluations of ln π per
    /// step).
    pub samples: usize,
    /// Adaptive: hold β at an update while the fit is still moving: when the mean of
    /// ln π(x_i) over the samples has changed since the previous update by more than `hold`
    /// standard errors (z ∈ [0, 100]; 0, the default, never holds; docs/adaptive.md).
    pub hold: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            kind: ScheduleKind::Constant,
            beta: 1.0,
            beta_i: 0.05,
            t0: 1000.0,
            points: Vec::new(),
            rho: 0.99,
            every: 10,
            samples: 256,
            hold: 0.0,
        }
    }
}

impl ScheduleConfig {
    /// Checks the fields the kind uses (named `schedule.…`); the first violation is returned.
    pub fn validate(&self) -> Result<()> {
        match self.kind {
            ScheduleKind::Constant => {
                check::number_in("schedule.beta", self.beta, UNIT, "a number in (0, 1]")
            }
            ScheduleKind::Exponential | ScheduleKind::Linear | ScheduleKind::LinearTemperature => {
                check::number_in("schedule.beta_i", self.beta_i, UNIT, "a number in (0, 1]")?;
                check::number_in("schedule.t0", self.t0, 0.0.., "a number of steps ≥ 0")
            }
            ScheduleKind::Points => {
                if self.points.is_empty() {
                    return Err(Error::config(
                        "schedule.points",
                        "[]",
                        "at least one [step, beta] pair",
                    ));
                }
                let mut last = -1.0;
                for (j, &(t, b)) in self.points.iter().enumerate() {
                    let f = format!("schedule.points[{j}]");
                    if !t.is_finite() || t < 0.0 || t <= last {
                        return Err(Error::config(
                            &f,
                            format!("[{t}, {b}]"),
                            "a step ≥ 0, strictly larger than the previous point's",
                        ));
                    }
                    check::number_in(&f, b, UNIT, "β in (0, 1]")?;
                    last = t;
                }
                Ok(())
            }
            ScheduleKind::Adaptive => {
                check::number_in("schedule.beta_i", self.beta_i, UNIT, "a number in (0, 1]")?;
                check::number_in(
                    "schedule.t0",
                    self.t0,
                    0.0..=1e9,
                    "a budget of steps in [0, 1e9] (β = 1 from step t0 on, whatever the rule)",
                )?;
                check::number_in(
                    "schedule.rho",
                    self.rho,
                    (
                        std::ops::Bound::Excluded(0.0),
                        std::ops::Bound::Excluded(1.0),
                    ),
                    "a fraction in (0, 1) of the samples (the target effective sample size ρ·B)",
                )?;
                check::count_in("schedule.every", self.every, 1, 1_000_000)?;
                check::count_in("schedule.samples", self.samples, 2, 1_000_000)?;
                check::number_in(
                    "schedule.hold",
                    self.hold,
                    0.0..=100.0,
                    "a threshold in [0, 100] standard errors (0: never hold)",
                )
            }
        }
    }

    /// The adaptive schedule's parameters, for `kind = "adaptive"` (else `None`).
    pub fn adaptive(&self) -> Option<Adaptive> {
        (self.kind == ScheduleKind::Adaptive).then_some(Adaptive {
            beta_i: self.beta_i,
            t_max: self.t0,
            rho: self.rho,
            every: self.every,
            samples: self.samples,
            hold: self.hold,
        })
    }

    /// The schedule β(t) the section describes, after [`Self::validate`].
    pub fn init(&self) -> Result<Box<dyn Schedule>> {
        self.validate()?;
        Ok(self.build())
    }

    /// The schedule β(t), without validation (for a section already validated).
    pub(crate) fn build(&self) -> Box<dyn Schedule> {
        let (beta_i, t0) = (self.beta_i, self.t0);
        match self.kind {
            ScheduleKind::Constant => Box::new(Constant { beta: self.beta }),
            ScheduleKind::Exponential => Box::new(Exponential { beta_i, t0 }),
            ScheduleKind::Linear => Box::new(Linear { beta_i, t0 }),
            ScheduleKind::LinearTemperature => Box::new(LinearTemperature { beta_i, t0 }),
            ScheduleKind::Points => Box::new(Points::new(self.points.clone())),
            ScheduleKind::Adaptive => Box::new(Envelope { beta_i, t_max: t0 }),
        }
    }
}

/// Mean, unbiased variance and count of the finite values of `x` (None with fewer than two).
fn mean_var(x: &[f64]) -> Option<(f64, f64, f64)> {
    let f: Vec<f64> = x.iter().copied().filter(|v| v.is_finite()).collect();
    if f.len() < 2 {
        return None;
    }
    let n = f.len() as f64;
    let m = f.iter().sum::<f64>() / n;
    let v = f.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (n - 1.0);
    Some((m, v, n))
}

/// The adaptive schedule (`schedule.kind = "adaptive"`): β starts at β_i; every `every` = k
/// steps, at step t (0 < t < t_max, β < 1), B = `samples` points x_i ~ q are drawn from the
/// current student (from their own random stream, so the training noise is that of any other
/// schedule) and ℓ_i = ln π(x_i) evaluated; β then grows by the Δβ ∈ (0, 1 − β] at which the
/// effective sample size of the incremental weights w_i ∝ π(x_i)^Δβ = exp(Δβ ℓ_i),
///
///   ESS(Δβ) = (Σ_i w_i)² / Σ_i w_i²  ∈ [1, B],
///
/// equals ρ·B ([`ess_step`], bisection; ESS is non-increasing in Δβ); Δβ = 1 − β when even
/// that keeps ESS ≥ ρ·B. From step t_max on, β = 1 whatever the rule (the hard budget). β is
/// therefore non-decreasing, starts at β_i and is 1 no later than t_max. This is the rule of
/// adaptive tempered SMC, with the student's samples in place of particles: when q fits
/// π_β, the weights w_i are the importance weights of q against π_{β+Δβ} up to a constant.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Adaptive {
    /// Initial inverse temperature β_i ∈ (0, 1].
    pub beta_i: f64,
    /// The hard budget: β = 1 from this step on (SGD steps, `schedule.t0`).
    pub t_max: f64,
    /// Target ESS fraction ρ ∈ (0, 1).
    pub rho: f64,
    /// Steps between updates, k ≥ 1.
    pub every: usize,
    /// Samples per update, B ≥ 2.
    pub samples: usize,
    /// Hold threshold z ≥ 0 (0: never hold): β holds at an update where the mean ℓ̄ of
    /// ℓ_i = ln π(x_i) moved since the previous update by more than z standard errors,
    /// |ℓ̄ − ℓ̄'| > z √(s²/n + s'²/n'), i.e. while the fit has not caught up with the last
    /// change of β.
    pub hold: f64,
}

/// What the static view of an adaptive schedule can say without the run: β(t) = β_i before
/// the budget t_max (the value at t = 0, which sets the flow's σ0 = 1/√β(0) and the Gaussian
/// mixture's initial widths), 1 after. The β actually used comes from the loop's
/// [`Annealer`].
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
struct Envelope {
    beta_i: f64,
    t_max: f64,
}

impl Schedule for Envelope {
    fn beta(&self, t: f64) -> f64 {
        if t >= self.t_max { 1.0 } else { self.beta_i }
    }
    fn end(&self) -> f64 {
        self.t_max
    }
}

/// The increment Δβ ∈ [0, `max`] at which the effective sample size of w_i = exp(Δβ ℓ_i),
/// (Σw)²/Σw², is `rho`·n (n = the number of finite ℓ_i; non-finite values, e.g. ln π = −∞
/// or a failed evaluation, have weight 0 and count as lost samples): `max` when
/// ESS(max) ≥ ρ·n, else the root of ESS(Δβ) = ρ·n by bisection to a relative width 10⁻¹²
/// of `max` (ESS is non-increasing in Δβ: d ln ESS/dΔβ = 2(E_Δβ(ℓ) − E_2Δβ(ℓ)) ≤ 0, with
/// E_s(ℓ) the mean of ℓ under the weights ∝ exp(s ℓ_i), which grows with s). Returns 0 when
/// fewer than two ℓ_i are finite (β holds).
pub fn ess_step(ell: &[f64], rho: f64, max: f64) -> f64 {
    let n = ell.len() as f64;
    let finite = ell.iter().filter(|l| l.is_finite()).count();
    if finite < 2 || max <= 0.0 {
        return 0.0;
    }
    let top = ell
        .iter()
        .copied()
        .filter(|l| l.is_finite())
        .fold(f64::NEG_INFINITY, f64::max);
    let target = rho * n;
    if ess(ell, top, max) >= target {
        return max;
    }
    let (mut lo, mut hi) = (0.0, max);
    while hi - lo > 1e-12 * max {
        let mid = 0.5 * (lo + hi);
        if ess(ell, top, mid) >= target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo
}

/// (Σw)²/Σw² of w_i = exp(Δβ (ℓ_i − top)) over the finite ℓ_i.
pub fn ess(ell: &[f64], top: f64, delta: f64) -> f64 {
    let (mut s1, mut s2) = (0.0, 0.0);
    for &l in ell.iter().filter(|l| l.is_finite()) {
        let w = (delta * (l - top)).exp();
        s1 += w;
        s2 += w * w;
    }
    if s2 > 0.0 { s1 * s1 / s2 } else { 0.0 }
}

/// The β of the training loop: a schedule β(t), or the state of an [`Adaptive`] schedule,
/// which the loop advances with the student's samples. Built once per run
/// ([`crate::run::Trainer`]); with a schedule β(t) it gives the schedule's values and draws
/// nothing, so such runs are those of the schedule itself.
pub struct Annealer<'a> {
    state: AnnealState<'a>,
}

enum AnnealState<'a> {
    Fixed(&'a dyn Schedule),
    Adaptive {
        rule: Adaptive,
        beta: f64,
        rng: Stream,
        reached: Option<usize>,
        /// Mean, variance and count of the finite ℓ_i of the previous update (hold rule).
        last: Option<(f64, f64, f64)>,
    },
}

impl<'a> Annealer<'a> {
    /// β(t) = `schedule`'s.
    pub fn fixed(schedule: &'a dyn Schedule) -> Self {
        Self {
            state: AnnealState::Fixed(schedule),
        }
    }

    /// The adaptive rule, its samples drawn from `rng` (the run's
    /// [`Purpose::Anneal`](crate::seed::Purpose::Anneal) stream).
    pub fn adaptive(rule: Adaptive, rng: Stream) -> Self {
        let beta = if rule.t_max <= 0.0 { 1.0 } else { rule.beta_i };
        Self {
            state: AnnealState::Adaptive {
                rule,
                beta,
                rng,
                reached: (beta >= 1.0).then_some(0),
                last: None,
            },
        }
    }

    /// Whether the rule updates β before step `step`, with the number of samples of q to
    /// draw for it and the stream to draw them from: `Some((B, rng))` when adaptive,
    /// 0 < step < t_max, step a multiple of k and β < 1; else `None` (always for a schedule
    /// β(t)).
    pub fn due(&mut self, step: usize) -> Option<(usize, &mut Stream)> {
        match &mut self.state {
            AnnealState::Adaptive {
                rule, beta, rng, ..
            } if *beta < 1.0
                && step > 0
                && (step as f64) < rule.t_max
                && step.is_multiple_of(rule.every) =>
            {
                Some((rule.samples, rng))
            }
            _ => None,
        }
    }

    /// Advances the rule at step `step` with ℓ_i = ln π at the samples drawn for it
    /// ([`Self::due`]): β ← β + Δβ with Δβ = [`ess_step`]`(ℓ, ρ, 1 − β)`, and β = 1 when
    /// Δβ = 1 − β; with a hold threshold ([`Adaptive::hold`]) β stays where ℓ̄ is still
    /// moving. A schedule β(t) ignores it.
    pub fn update(&mut self, step: usize, ell: &[f64]) {
        if let AnnealState::Adaptive {
            rule,
            beta,
            reached,
            last,
            ..
        } = &mut self.state
        {
            if rule.hold > 0.0 {
                let now = mean_var(ell);
                let moving = match (*last, now) {
                    (Some((m0, v0, n0)), Some((m1, v1, n1))) => {
                        let se = (v0 / n0 + v1 / n1).sqrt();
                        (m1 - m0).abs() > rule.hold * se
                    }
                    _ => false,
                };
                *last = now;
                if moving {
                    return;
                }
            }
            let delta = ess_step(ell, rule.rho, 1.0 - *beta);
            *beta = if delta >= 1.0 - *beta {
                1.0
            } else {
                (*beta + delta).min(1.0)
            };
            if *beta >= 1.0 && reached.is_none() {
                *reached = Some(step);
            }
        }
    }

    /// β at step `step` (after any update due there).
    pub fn beta(&mut self, step: usize) -> f64 {
        match &mut self.state {
            AnnealState::Fixed(s) => s.beta(step as f64),
            AnnealState::Adaptive {
                rule,
                beta,
                reached,
                ..
            } => {
                if (step as f64) >= rule.t_max && *beta < 1.0 {
                    *beta = 1.0;
                    *reached = Some(step);
                }
                *beta
            }
        }
    }

    /// For an adaptive schedule, the first step at which β was 1 (`None` while it is below 1,
    /// and for a schedule β(t)).
    pub fn reached_one(&self) -> Option<usize> {
        match &self.state {
            AnnealState::Adaptive { reached, .. } => *reached,
            AnnealState::Fixed(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_hits_end_points_and_rate() {
        let s = Exponential {
            beta_i: 0.01,
            t0: 1000.0,
        };
        assert_eq!(s.beta(0.0), 0.01);
        assert_eq!(s.beta(1000.0), 1.0);
        assert_eq!(s.beta(5000.0), 1.0);
        assert!((s.beta(999.999_999) - 1.0).abs() < 1e-8);
        assert!((s.beta(500.0) - 0.1).abs() < 1e-14);
        // β(t+1)/β(t) = r
        assert!((s.beta(101.0) / s.beta(100.0) - s.rate()).abs() < 1e-13);
        assert_eq!(
            Exponential {
                beta_i: 0.3,
                t0: 0.0
            }
            .beta(0.0),
            1.0
        );
    }

    #[test]
    fn linear_temperature_hits_end_points_and_is_linear_in_temperature() {
        let s = LinearTemperature {
            beta_i: 0.01,
            t0: 1000.0,
        };
        assert!((s.beta(0.0) - 0.01).abs() < 1e-15);
        assert_eq!(s.beta(1000.0), 1.0);
        assert_eq!(s.beta(5000.0), 1.0);
        // midpoint temperature is the mean of 100 and 1
        assert!((1.0 / s.beta(500.0) - 50.5).abs() < 1e-12);
        assert_eq!(s.end(), 1000.0);
    }

    #[test]
    fn linear_and_points_hit_end_points() {
        let l = Linear {
            beta_i: 0.2,
            t0: 10.0,
        };
        assert_eq!(l.beta(0.0), 0.2);
        assert!((l.beta(5.0) - 0.6).abs() < 1e-15);
        assert_eq!(l.beta(10.0), 1.0);
        let p = Points::new(vec![(0.0, 0.01), (100.0, 0.1), (300.0, 1.0)]);
        assert_eq!(p.beta(0.0), 0.01);
        assert!((p.beta(100.0) - 0.1).abs() < 1e-15);
        assert!((p.beta(50.0) - 0.01f64.sqrt() * 0.1f64.sqrt()).abs() < 1e-15);
        assert_eq!(p.beta(300.0), 1.0);
        assert_eq!(p.beta(1e9), 1.0);
        assert_eq!(Constant { beta: 0.5 }.beta(7.0), 0.5);
    }
}
