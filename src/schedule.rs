//! Annealing schedules β(t): the inverse temperature of the target π_β ∝ π^β at SGD step t.
//!
//! t counts SGD steps (not gradient-flow time; the map to ODE time is τ = η t, see
//! docs/theory.md). All schedules end at β = 1 for t ≥ t0 unless constant.
//!
//! [`ScheduleConfig`] (the `[schedule]` section of a configuration) validates its fields and
//! builds the schedule with [`ScheduleConfig::init`].

use crate::check::{self, UNIT};
use crate::error::{Error, Result};
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
}

/// Schedule settings (the `[schedule]` section of a configuration).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Which schedule.
    pub kind: ScheduleKind,
    /// β for the constant schedule, in (0, 1].
    pub beta: f64,
    /// Initial β_i ∈ (0, 1] (exponential, linear).
    pub beta_i: f64,
    /// Annealing time t0 ≥ 0 in SGD steps (exponential, linear).
    pub t0: f64,
    /// (step, β) points for `points`: steps ≥ 0 strictly increasing, β ∈ (0, 1].
    pub points: Vec<(f64, f64)>,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self {
            kind: ScheduleKind::Constant,
            beta: 1.0,
            beta_i: 0.05,
            t0: 1000.0,
            points: Vec::new(),
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
        }
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
