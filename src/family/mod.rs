//! Variational families q_θ.
//!
//! A family exposes its parameters as one flat vector θ split into named groups (so that the
//! optimiser can give each group its own learning rate), its log-density and a sampler.
//! Reparametrised gradients of the objective live in [`crate::objective`].
//!
//! [`StudentConfig`] (the `[student]` section of a configuration, with `[student.realnvp]` as
//! a [`FlowArch`]) validates its fields and builds the initial student:
//! [`StudentConfig::init`] the Gaussian mixture, [`StudentConfig::init_flow`] the flow.

pub mod gmm;
pub mod realnvp;
#[cfg(feature = "gpu")]
pub mod realnvp_gpu;

pub use gmm::GmmStudent;
pub use realnvp::RealNvp;

use crate::check::{self, NumberOr, POSITIVE};
use crate::error::{Error, Result};
use crate::schedule::Schedule;
use rand::Rng;
use realnvp::FlowArch;
use serde::{Deserialize, Serialize};

/// What kind of parameter a slice of θ holds; optimisers scale learning rates per group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GroupKind {
    /// Location parameters (student means).
    Mean,
    /// Log scales (ln σ_k).
    LogScale,
    /// Mixture logits.
    Logit,
    /// Network weights (flows).
    Network,
}

/// A contiguous range of θ with one [`GroupKind`].
#[derive(Clone, Debug, PartialEq)]
pub struct ParamGroup {
    /// The group's kind.
    pub kind: GroupKind,
    /// Its range in θ.
    pub range: std::ops::Range<usize>,
    /// Whether it is trained (frozen groups get zero updates).
    pub trainable: bool,
}

/// A variational density q_θ on R^d.
pub trait VariationalFamily: Send + Sync {
    /// Dimension d of the space.
    fn dim(&self) -> usize;
    /// The flat parameter vector θ.
    fn params(&self) -> &[f64];
    /// Mutable access to θ.
    fn params_mut(&mut self) -> &mut [f64];
    /// How θ splits into groups.
    fn groups(&self) -> Vec<ParamGroup>;
    /// ln q_θ(x).
    fn log_density(&self, x: &[f64]) -> f64;
    /// Draws one sample into `x`.
    fn sample(&self, rng: &mut dyn rand::RngCore, x: &mut [f64]);
}

/// Draws a standard normal vector (rand_distr's ziggurat, one draw of `rng` per number) into
/// `z`. The Monte-Carlo gradient kernel uses the faster vectorised
/// [`crate::normal::NormalGen`] instead.
#[inline]
pub fn fill_standard_normal<R: Rng + ?Sized>(rng: &mut R, z: &mut [f64]) {
    for v in z.iter_mut() {
        *v = rng.sample(rand_distr::StandardNormal);
    }
}

/// Which variational family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FamilyKind {
    /// The Gaussian-mixture student (fields of `[student]`).
    Gmm,
    /// A RealNVP normalizing flow (`[student.realnvp]`).
    Realnvp,
}

/// How SGD of the Gaussian-mixture student is simulated (`student.simulation`; formerly
/// `objective.engine`, still read).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Simulation {
    /// d-dimensional vectors: every sample drawn in R^d (cost ∝ B·d per step).
    #[default]
    Vector,
    /// Exactly in the summary statistics ([`crate::statistics`]): the same law of every
    /// statistic and outcome at a cost per step independent of d (SGD, full or STL
    /// estimator, isotropic targets).
    Statistics,
}

/// Student settings (the `[student]` section of a configuration).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudentConfig {
    /// `gmm` (default) or `realnvp`.
    pub family: FamilyKind,
    /// How SGD of the Gaussian-mixture student is simulated: `vector` (d-dimensional
    /// samples, the default) or `statistics` (exact simulation in the summary statistics).
    pub simulation: Simulation,
    /// RealNVP settings (used when family = "realnvp").
    pub realnvp: FlowArch,
    /// Number of components K ≥ 1.
    pub components: usize,
    /// Initial weights (positive, summing to 1); empty = uniform 1/K.
    pub weights: Vec<f64>,
    /// Whether the weights are trained (through softmax logits).
    pub trainable_weights: bool,
    /// Initial means ~ N(0, s² I_d): s = "unit" (1), "inv_sqrt_d" (1/√d) or a number > 0.
    pub init_mean_scale: NumberOr,
    /// Explicit initial means (overrides the random draw); each padded with zeros to d.
    pub means: Vec<Vec<f64>>,
    /// Initial σ_k: a number > 0, or "schedule" for σ0² = 1/β(0).
    pub sigma0: NumberOr,
}

impl Default for StudentConfig {
    fn default() -> Self {
        Self {
            family: FamilyKind::Gmm,
            simulation: Simulation::Vector,
            realnvp: FlowArch::default(),
            components: 2,
            weights: Vec::new(),
            trainable_weights: false,
            init_mean_scale: NumberOr::Name("unit".into()),
            means: Vec::new(),
            sigma0: NumberOr::Number(1.0),
        }
    }
}

/// The value of a σ0 rule: the number, or for "schedule" σ0 = 1/√β(0), so that the initial
/// student covers the tempered target π_β(0) (variance 1/β(0) per coordinate).
fn base_sigma(rule: &NumberOr, schedule: &dyn Schedule) -> f64 {
    rule.value_or_else(|_| 1.0 / schedule.beta(0.0).sqrt())
}

impl StudentConfig {
    /// Checks every field (named `student.…`) for a target in dimension d; the
    /// `[student.realnvp]` section is checked against d only when the family is a flow. The
    /// first violation is returned.
    pub fn validate(&self, d: usize) -> Result<()> {
        check::count_in("student.components", self.components, 1, 64)?;
        check::weights("student.weights", &self.weights, self.components)?;
        self.init_mean_scale.check(
            "student.init_mean_scale",
            0.0..,
            &["unit", "inv_sqrt_d"],
            "\"unit\", \"inv_sqrt_d\" or a number ≥ 0",
        )?;
        if !self.means.is_empty() {
            if self.means.len() != self.components {
                return Err(Error::config(
                    "student.means",
                    format!("{} means", self.means.len()),
                    &format!("student.components = {} means, or none", self.components),
                ));
            }
            check::means("student.means", &self.means, d)?;
        }
        let sigma0 = "a number > 0 or \"schedule\"";
        self.sigma0
            .check("student.sigma0", POSITIVE, &["schedule"], sigma0)?;
        // an unused section: its own fields, not their combination with target.d
        let flow_d = if self.family == FamilyKind::Realnvp {
            d
        } else {
            2
        };
        self.realnvp.validate_section("student.realnvp", flow_d)
    }

    /// The standard deviation s of each coordinate of the random initial means
    /// (μ_k ~ N(0, s² I_d)); `None` when explicit means are given.
    pub fn init_scale(&self, d: usize) -> Option<f64> {
        if !self.means.is_empty() {
            return None;
        }
        Some(self.init_mean_scale.value_or_else(|n| {
            if n == "inv_sqrt_d" {
                1.0 / (d as f64).sqrt()
            } else {
                1.0
            }
        }))
    }

    /// The first component's weight w_1 when the weights are fixed, else `None`.
    pub fn fixed_w1(&self) -> Option<f64> {
        if self.trainable_weights {
            None
        } else if self.weights.is_empty() {
            Some(1.0 / self.components as f64)
        } else {
            self.weights.first().copied()
        }
    }

    /// The initial Gaussian-mixture student in dimension d, after [`Self::validate`]: random
    /// means drawn from `rng` unless explicit means are given, σ_k from the σ0 rule (β(0) of
    /// `schedule`).
    pub fn init<R: Rng + ?Sized>(
        &self,
        d: usize,
        schedule: &dyn Schedule,
        rng: &mut R,
    ) -> Result<GmmStudent> {
        self.validate(d)?;
        Ok(self.build(d, schedule, rng))
    }

    /// [`Self::init`] without validation (for a section already validated).
    pub(crate) fn build<R: Rng + ?Sized>(
        &self,
        d: usize,
        schedule: &dyn Schedule,
        rng: &mut R,
    ) -> GmmStudent {
        let scale = self.init_scale(d).unwrap_or(1.0);
        let means: Vec<Vec<f64>> = if self.means.is_empty() {
            (0..self.components)
                .map(|_| {
                    let mut m = vec![0.0; d];
                    fill_standard_normal(rng, &mut m);
                    m.iter_mut().for_each(|v| *v *= scale);
                    m
                })
                .collect()
        } else {
            self.means.iter().map(|m| check::pad(m, d)).collect()
        };
        self.with_means(&means, schedule)
    }

    /// The initial student's shape (σ_k, weights, trainability) with zero means of length 1:
    /// what the statistics engine needs besides the means it draws itself.
    pub fn init_shape(&self, schedule: &dyn Schedule) -> GmmStudent {
        self.with_means(&vec![vec![0.0]; self.components], schedule)
    }

    fn with_means(&self, means: &[Vec<f64>], schedule: &dyn Schedule) -> GmmStudent {
        let k = self.components;
        let sigma0 = base_sigma(&self.sigma0, schedule);
        let weights = if self.weights.is_empty() {
            vec![1.0 / k as f64; k]
        } else {
            self.weights.clone()
        };
        GmmStudent::new(means, &vec![sigma0; k], &weights, self.trainable_weights)
    }

    /// The flow architecture in dimension d, with σ0 resolved (β(0) of `schedule`).
    pub fn flow_arch(&self, d: usize, schedule: &dyn Schedule) -> FlowArch {
        let sigma0 = base_sigma(&self.realnvp.sigma0_rule, schedule);
        self.realnvp.resolved(d, sigma0)
    }

    /// The initial RealNVP student in dimension d (weights drawn from `rng`), after
    /// [`Self::validate`].
    pub fn init_flow<R: Rng + ?Sized>(
        &self,
        d: usize,
        schedule: &dyn Schedule,
        rng: &mut R,
    ) -> Result<RealNvp> {
        self.validate(d)?;
        self.flow_arch(d, schedule).init(rng)
    }
}
