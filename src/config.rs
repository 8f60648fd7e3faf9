//! Run configuration: TOML files, `--set key=value` overrides, validation, and construction of
//! the target, student, schedule and optimiser.
//!
//! Every field has a default (the paper's setting: d = 512, R = 3, w* = 0.8, w1 = 0.5,
//! η = 0.05), so an empty file is a valid configuration. Unknown keys are errors. Every
//! invalid value gives an [`Error::Config`] naming the field, the value and the valid range.
//! See `configs/example.toml` for every field with comments.

use crate::error::{Error, Result};
use crate::family::realnvp::{Activation, FlowArch, MaskKind, Precision};
use crate::family::{GmmStudent, RealNvp};
use crate::objective::Estimator;
use crate::optim::{Adam, GroupRates, Optimizer, Sgd};
use crate::schedule::{self, Schedule};
use crate::target::IsotropicMixture;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// A complete run configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Base seed of all random streams.
    pub seed: u64,
    /// The target π.
    pub target: TargetConfig,
    /// The Gaussian-mixture student.
    pub student: StudentConfig,
    /// The annealing schedule β(t).
    pub schedule: ScheduleConfig,
    /// The objective and its gradient estimator.
    pub objective: ObjectiveConfig,
    /// The optimiser.
    pub optim: OptimConfig,
    /// What the observer records.
    pub record: RecordConfig,
}

/// Which target density.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetKind {
    /// w* N(μ*, I) + (1 − w*) N(−μ*, I), μ* = R e_1.
    Bimodal,
    /// Σ_j ω_j N(ν_j, v_j I) with explicit means, weights, variances.
    Mixture,
}

/// Direction of μ* for the bimodal target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// μ* = R e_1 (the paper's convention; every student).
    Axis,
    /// μ* = R (1, …, 1)/√d: the modes differ in every coordinate, so that every coupling of a
    /// RealNVP student sees them (flow students only; see docs/flows.md).
    Diagonal,
}

/// Target settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TargetConfig {
    /// `bimodal` or `mixture`.
    pub kind: TargetKind,
    /// Direction of μ* (bimodal): `axis` (e_1) or `diagonal` ((1, …, 1)/√d, flows only).
    pub direction: Direction,
    /// Dimension d ≥ 1.
    pub d: usize,
    /// R = ‖μ*‖ ≥ 0 (bimodal).
    pub r: f64,
    /// Weight w* ∈ (0, 1) of the mode at +μ* (bimodal).
    pub w_star: f64,
    /// Mixture means; each has at most d entries and is padded with zeros to length d.
    pub means: Vec<Vec<f64>>,
    /// Mixture weights (positive, summing to 1); empty = uniform.
    pub weights: Vec<f64>,
    /// Mixture variances (> 0); empty = all 1.
    pub variances: Vec<f64>,
}

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            kind: TargetKind::Bimodal,
            direction: Direction::Axis,
            d: 512,
            r: 3.0,
            w_star: 0.8,
            means: Vec::new(),
            weights: Vec::new(),
            variances: Vec::new(),
        }
    }
}

/// A number, or a named rule (for `init_mean_scale` and `sigma0`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum NumberOr {
    /// An explicit value.
    Number(f64),
    /// A named rule.
    Name(String),
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

/// RealNVP student settings (`[student.realnvp]`); see [`crate::family::realnvp`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RealNvpConfig {
    /// Coupling layers L ∈ [1, 256].
    pub layers: usize,
    /// Linear layers per MLP ∈ [1, 64] (depth − 1 hidden layers).
    pub depth: usize,
    /// Hidden width h ∈ [1, 65536].
    pub width: usize,
    /// `relu` or `tanh`.
    pub activation: Activation,
    /// `halves` or `checkerboard`.
    pub mask: MaskKind,
    /// c in s = c·tanh(·), in (0, 20].
    pub scale_bound: f64,
    /// Base standard deviation σ0: a number > 0, or "schedule" for σ0² = 1/β(0).
    pub sigma0: NumberOr,
    /// Multiplier in [0, 1] on the last layers' initial bound (0: the flow starts at the identity).
    pub last_init: f64,
    /// Precision of the batched passes: `f32` (fast) or `f64`.
    pub precision: Precision,
    /// Samples N ∈ [1, 10⁸] for the final Monte-Carlo outcome (light-mode mass, ESS, KL).
    pub eval_samples: usize,
    /// A mode whose estimated mass is below this (in (0, 0.5]) counts as not covered.
    pub collapse_threshold: f64,
}

impl Default for RealNvpConfig {
    fn default() -> Self {
        Self {
            layers: 8,
            depth: 4,
            width: 64,
            activation: Activation::Relu,
            mask: MaskKind::Halves,
            scale_bound: 1.0,
            sigma0: NumberOr::Number(1.0),
            last_init: 0.0,
            precision: Precision::F32,
            eval_samples: 4000,
            collapse_threshold: 0.05,
        }
    }
}

/// Student settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StudentConfig {
    /// `gmm` (default) or `realnvp`.
    pub family: FamilyKind,
    /// RealNVP settings (used when family = "realnvp").
    pub realnvp: RealNvpConfig,
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
            realnvp: RealNvpConfig::default(),
            components: 2,
            weights: Vec::new(),
            trainable_weights: false,
            init_mean_scale: NumberOr::Name("unit".into()),
            means: Vec::new(),
            sigma0: NumberOr::Number(1.0),
        }
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

/// Schedule settings.
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

/// How the loss is scaled before the optimiser sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossScale {
    /// The raw KL (nats).
    None,
    /// KL / d (nats per dimension).
    PerDim,
}

/// How SGD of the Gaussian-mixture student is simulated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Engine {
    /// d-dimensional vectors: every sample drawn in R^d (cost ∝ B·d per step).
    Vector,
    /// Exactly in the summary statistics ([`crate::statistics`]): the same law of every
    /// statistic and outcome at a cost per step independent of d (SGD, full or STL
    /// estimator, isotropic targets).
    Statistics,
}

/// Objective settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectiveConfig {
    /// SGD engine of the Gaussian-mixture student: `vector` (d-dimensional samples, the
    /// default) or `statistics` (exact simulation in the summary statistics).
    pub engine: Engine,
    /// `full`, `stl` (sticking the landing) or `exact`.
    pub estimator: Estimator,
    /// Reparametrised samples per component B ≥ 1 (Monte-Carlo estimators).
    pub samples: usize,
    /// `none` (raw KL) or `per_dim` (KL/d).
    pub loss_scale: LossScale,
}

impl Default for ObjectiveConfig {
    fn default() -> Self {
        Self {
            engine: Engine::Vector,
            estimator: Estimator::Full,
            samples: 32,
            loss_scale: LossScale::None,
        }
    }
}

/// Which optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimKind {
    /// Plain SGD (the paper's).
    Sgd,
    /// Adam.
    Adam,
}

/// Optimiser settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OptimConfig {
    /// `sgd` or `adam`.
    pub kind: OptimKind,
    /// Base learning rate η > 0 (applies to the means).
    pub lr: f64,
    /// c_σ > 0: the log-scales use η c_σ / d.
    pub sigma_lr_factor: f64,
    /// c_w > 0: the logits use η c_w.
    pub logit_lr_factor: f64,
    /// SGD trust region: largest |Δ ln σ| per step (> 0; `inf` disables).
    pub max_log_sigma_step: f64,
    /// Adam β1 ∈ [0, 1).
    pub adam_beta1: f64,
    /// Adam β2 ∈ [0, 1).
    pub adam_beta2: f64,
    /// Adam ε > 0.
    pub adam_eps: f64,
    /// Adam gradient-norm clipping: ‖g‖₂ is scaled down to at most this (> 0; `inf` = off).
    pub max_grad_norm: f64,
    /// Number of SGD steps ≥ 1.
    pub steps: usize,
}

impl Default for OptimConfig {
    fn default() -> Self {
        Self {
            kind: OptimKind::Sgd,
            lr: 0.05,
            sigma_lr_factor: 10.0,
            logit_lr_factor: 1.0,
            max_log_sigma_step: 0.5,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_eps: 1e-8,
            max_grad_norm: f64::INFINITY,
            steps: 3000,
        }
    }
}

/// Observer settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordConfig {
    /// Record the statistics every this many steps, and at the last step (0 = no records, only
    /// the outcome).
    pub every: usize,
    /// Steps (≤ optim.steps) at which to snapshot the marginals along μ̂.
    pub marginal_steps: Vec<usize>,
    /// The marginal grid spans s ∈ [−range, range] (> 0).
    pub marginal_range: f64,
    /// Number of grid points (≥ 2).
    pub marginal_points: usize,
    /// Samples per component for Monte-Carlo KL estimates when no exact value exists (≥ 1).
    pub kl_samples: usize,
}

impl Default for RecordConfig {
    fn default() -> Self {
        Self {
            every: 10,
            marginal_steps: Vec::new(),
            marginal_range: 8.0,
            marginal_points: 321,
            kl_samples: 500,
        }
    }
}

impl Config {
    /// Reads a TOML file, applies `--set` overrides, deserialises and validates.
    pub fn load(path: Option<&Path>, sets: &[String]) -> Result<Config> {
        let cfg: Config = load_toml(path, sets, "configuration")?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses TOML text (no overrides) and validates.
    pub fn from_toml_str(text: &str) -> Result<Config> {
        let cfg: Config = toml::from_str(text).map_err(|e| Error::Parse {
            source_name: "configuration".into(),
            message: e.to_string(),
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// The resolved configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot serialise: {e}\n"))
    }

    /// Checks every field; the first violation is returned.
    pub fn validate(&self) -> Result<()> {
        let t = &self.target;
        if t.d == 0 {
            return Err(Error::config("target.d", t.d, "an integer ≥ 1"));
        }
        if t.d > 1 << 24 {
            return Err(Error::config("target.d", t.d, "an integer ≤ 16777216"));
        }
        match t.kind {
            TargetKind::Bimodal => {
                finite_in(
                    "target.r",
                    t.r,
                    0.0,
                    f64::INFINITY,
                    true,
                    false,
                    "a number ≥ 0",
                )?;
                finite_in(
                    "target.w_star",
                    t.w_star,
                    0.0,
                    1.0,
                    false,
                    false,
                    "a number in (0, 1)",
                )?;
                if t.direction == Direction::Diagonal && self.student.family != FamilyKind::Realnvp
                {
                    return Err(Error::config(
                        "target.direction",
                        "diagonal",
                        "\"axis\" for the Gaussian-mixture student (its kernels and theory take \
                         mu* = R e1; the law is rotation invariant, so nothing is lost); \
                         \"diagonal\" needs student.family = \"realnvp\"",
                    ));
                }
            }
            TargetKind::Mixture => {
                if t.direction != Direction::Axis {
                    return Err(Error::config(
                        "target.direction",
                        "diagonal",
                        "\"axis\" for kind = \"mixture\" (the means give the directions)",
                    ));
                }
                if t.means.is_empty() {
                    return Err(Error::config(
                        "target.means",
                        "[]",
                        "at least one mean when target.kind = \"mixture\"",
                    ));
                }
                check_means("target.means", &t.means, t.d)?;
                check_weights("target.weights", &t.weights, t.means.len())?;
                if !t.variances.is_empty() {
                    if t.variances.len() != t.means.len() {
                        return Err(Error::config(
                            "target.variances",
                            format!("{} entries", t.variances.len()),
                            &format!("{} entries (one per mean) or none", t.means.len()),
                        ));
                    }
                    for (j, v) in t.variances.iter().enumerate() {
                        finite_in(
                            &format!("target.variances[{j}]"),
                            *v,
                            0.0,
                            f64::INFINITY,
                            false,
                            false,
                            "a number > 0",
                        )?;
                    }
                }
            }
        }
        let s = &self.student;
        if s.components == 0 || s.components > 64 {
            return Err(Error::config(
                "student.components",
                s.components,
                "an integer in [1, 64]",
            ));
        }
        check_weights("student.weights", &s.weights, s.components)?;
        match &s.init_mean_scale {
            NumberOr::Number(v) => {
                finite_in(
                    "student.init_mean_scale",
                    *v,
                    0.0,
                    f64::INFINITY,
                    true,
                    false,
                    "\"unit\", \"inv_sqrt_d\" or a number ≥ 0",
                )?;
            }
            NumberOr::Name(n) if n == "unit" || n == "inv_sqrt_d" => {}
            NumberOr::Name(n) => {
                return Err(Error::config(
                    "student.init_mean_scale",
                    format!("\"{n}\""),
                    "\"unit\", \"inv_sqrt_d\" or a number ≥ 0",
                ));
            }
        }
        if !s.means.is_empty() {
            if s.means.len() != s.components {
                return Err(Error::config(
                    "student.means",
                    format!("{} means", s.means.len()),
                    &format!("student.components = {} means, or none", s.components),
                ));
            }
            check_means("student.means", &s.means, t.d)?;
        }
        match &s.sigma0 {
            NumberOr::Number(v) => {
                finite_in(
                    "student.sigma0",
                    *v,
                    0.0,
                    f64::INFINITY,
                    false,
                    false,
                    "a number > 0 or \"schedule\"",
                )?;
            }
            NumberOr::Name(n) if n == "schedule" => {}
            NumberOr::Name(n) => {
                return Err(Error::config(
                    "student.sigma0",
                    format!("\"{n}\""),
                    "a number > 0 or \"schedule\"",
                ));
            }
        }
        self.validate_realnvp()?;
        let sc = &self.schedule;
        match sc.kind {
            ScheduleKind::Constant => {
                finite_in(
                    "schedule.beta",
                    sc.beta,
                    0.0,
                    1.0,
                    false,
                    true,
                    "a number in (0, 1]",
                )?;
            }
            ScheduleKind::Exponential | ScheduleKind::Linear | ScheduleKind::LinearTemperature => {
                finite_in(
                    "schedule.beta_i",
                    sc.beta_i,
                    0.0,
                    1.0,
                    false,
                    true,
                    "a number in (0, 1]",
                )?;
                finite_in(
                    "schedule.t0",
                    sc.t0,
                    0.0,
                    f64::INFINITY,
                    true,
                    false,
                    "a number of steps ≥ 0",
                )?;
            }
            ScheduleKind::Points => {
                if sc.points.is_empty() {
                    return Err(Error::config(
                        "schedule.points",
                        "[]",
                        "at least one [step, beta] pair",
                    ));
                }
                let mut last = -1.0;
                for (j, (t, b)) in sc.points.iter().enumerate() {
                    let f = format!("schedule.points[{j}]");
                    if !t.is_finite() || *t < 0.0 || *t <= last {
                        return Err(Error::config(
                            &f,
                            format!("[{t}, {b}]"),
                            "a step ≥ 0, strictly larger than the previous point's",
                        ));
                    }
                    finite_in(&f, *b, 0.0, 1.0, false, true, "β in (0, 1]")?;
                    last = *t;
                }
            }
        }
        let o = &self.objective;
        if o.samples == 0 || o.samples > 1 << 20 {
            return Err(Error::config(
                "objective.samples",
                o.samples,
                "an integer in [1, 1048576]",
            ));
        }
        if o.estimator == Estimator::Exact {
            if t.kind != TargetKind::Bimodal {
                return Err(Error::config(
                    "objective.estimator",
                    "\"exact\"",
                    "\"full\" or \"stl\" (the exact objective needs target.kind = \"bimodal\")",
                ));
            }
            if s.components > 2 {
                return Err(Error::config(
                    "objective.estimator",
                    "\"exact\"",
                    "\"full\" or \"stl\" (the exact objective supports at most 2 components)",
                ));
            }
        }
        if o.engine == Engine::Statistics {
            let why = if s.family != FamilyKind::Gmm {
                Some("student.family = \"gmm\"")
            } else if o.estimator == Estimator::Exact {
                Some("objective.estimator = \"full\" or \"stl\" (exact gradients need no engine)")
            } else if self.optim.kind != OptimKind::Sgd {
                Some(
                    "optim.kind = \"sgd\" (Adam's per-coordinate steps are not rotation invariant)",
                )
            } else {
                None
            };
            if let Some(why) = why {
                return Err(Error::config(
                    "objective.engine",
                    "\"statistics\"",
                    &format!("\"vector\", or \"statistics\" with {why}"),
                ));
            }
        }
        let op = &self.optim;
        finite_in(
            "optim.lr",
            op.lr,
            0.0,
            f64::INFINITY,
            false,
            false,
            "a number > 0",
        )?;
        finite_in(
            "optim.sigma_lr_factor",
            op.sigma_lr_factor,
            0.0,
            f64::INFINITY,
            false,
            false,
            "a number > 0",
        )?;
        finite_in(
            "optim.logit_lr_factor",
            op.logit_lr_factor,
            0.0,
            f64::INFINITY,
            false,
            false,
            "a number > 0",
        )?;
        // NaN or ≤ 0 would make the SGD clamp panic; +∞ is allowed (no clipping)
        if op.max_log_sigma_step.is_nan() || op.max_log_sigma_step <= 0.0 {
            return Err(Error::config(
                "optim.max_log_sigma_step",
                op.max_log_sigma_step,
                "a number > 0, or inf to disable clipping",
            ));
        }
        finite_in(
            "optim.adam_beta1",
            op.adam_beta1,
            0.0,
            1.0,
            true,
            false,
            "a number in [0, 1)",
        )?;
        finite_in(
            "optim.adam_beta2",
            op.adam_beta2,
            0.0,
            1.0,
            true,
            false,
            "a number in [0, 1)",
        )?;
        finite_in(
            "optim.adam_eps",
            op.adam_eps,
            0.0,
            f64::INFINITY,
            false,
            false,
            "a number > 0",
        )?;
        if op.max_grad_norm.is_nan() || op.max_grad_norm <= 0.0 {
            return Err(Error::config(
                "optim.max_grad_norm",
                op.max_grad_norm,
                "a number > 0, or inf to disable clipping",
            ));
        }
        if op.steps == 0 || op.steps > 100_000_000 {
            return Err(Error::config(
                "optim.steps",
                op.steps,
                "an integer in [1, 100000000]",
            ));
        }
        let r = &self.record;
        for (j, &st) in r.marginal_steps.iter().enumerate() {
            if st > op.steps {
                return Err(Error::config(
                    &format!("record.marginal_steps[{j}]"),
                    st,
                    &format!("a step in [0, optim.steps = {}]", op.steps),
                ));
            }
        }
        finite_in(
            "record.marginal_range",
            r.marginal_range,
            0.0,
            f64::INFINITY,
            false,
            false,
            "a number > 0",
        )?;
        if r.marginal_points < 2 || r.marginal_points > 100_000 {
            return Err(Error::config(
                "record.marginal_points",
                r.marginal_points,
                "an integer in [2, 100000]",
            ));
        }
        if r.kl_samples == 0 {
            return Err(Error::config(
                "record.kl_samples",
                r.kl_samples,
                "an integer ≥ 1",
            ));
        }
        Ok(())
    }

    fn validate_realnvp(&self) -> Result<()> {
        let f = &self.student.realnvp;
        let flow = self.student.family == FamilyKind::Realnvp;
        match &f.sigma0 {
            NumberOr::Number(v) => finite_in(
                "student.realnvp.sigma0",
                *v,
                0.0,
                f64::INFINITY,
                false,
                false,
                "a number > 0 or \"schedule\"",
            )?,
            NumberOr::Name(n) if n == "schedule" => {}
            NumberOr::Name(n) => {
                return Err(Error::config(
                    "student.realnvp.sigma0",
                    format!("\"{n}\""),
                    "a number > 0 or \"schedule\"",
                ));
            }
        }
        if f.eval_samples == 0 || f.eval_samples > 100_000_000 {
            return Err(Error::config(
                "student.realnvp.eval_samples",
                f.eval_samples,
                "an integer in [1, 100000000]",
            ));
        }
        finite_in(
            "student.realnvp.collapse_threshold",
            f.collapse_threshold,
            0.0,
            0.5,
            false,
            true,
            "a number in (0, 0.5]",
        )?;
        let mut arch = self.flow_arch_with_sigma0(1.0);
        if !flow {
            // unused section: check its own fields, not their combination with target.d
            arch.d = 2;
        }
        arch.validate("student.realnvp")?;
        if flow && self.objective.estimator == Estimator::Exact {
            return Err(Error::config(
                "objective.estimator",
                "\"exact\"",
                "\"full\" or \"stl\" (no exact objective for student.family = \"realnvp\")",
            ));
        }
        Ok(())
    }

    fn flow_arch_with_sigma0(&self, sigma0: f64) -> FlowArch {
        let f = &self.student.realnvp;
        FlowArch {
            d: self.target.d,
            layers: f.layers,
            depth: f.depth,
            width: f.width,
            activation: f.activation,
            mask: f.mask,
            scale_bound: f.scale_bound,
            sigma0,
            last_init: f.last_init,
        }
    }

    /// The flow architecture, with σ0 resolved ("schedule": σ0 = 1/√β(0)).
    pub fn flow_arch(&self) -> FlowArch {
        let sigma0 = match &self.student.realnvp.sigma0 {
            NumberOr::Number(v) => *v,
            NumberOr::Name(_) => 1.0 / self.build_schedule().beta(0.0).sqrt(),
        };
        self.flow_arch_with_sigma0(sigma0)
    }

    /// The initial RealNVP student (weights drawn from `rng`).
    pub fn init_flow<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<RealNvp> {
        RealNvp::new(self.flow_arch(), self.student.realnvp.precision, rng)
    }

    /// The target π.
    pub fn build_target(&self) -> IsotropicMixture {
        let t = &self.target;
        match t.kind {
            TargetKind::Bimodal => match t.direction {
                Direction::Axis => IsotropicMixture::bimodal(t.d, t.r, t.w_star),
                Direction::Diagonal => {
                    let u = vec![1.0 / (t.d as f64).sqrt(); t.d];
                    IsotropicMixture::bimodal_along(&u, t.r, t.w_star)
                }
            },
            TargetKind::Mixture => {
                let n = t.means.len();
                let means = t.means.iter().map(|m| pad(m, t.d)).collect();
                let weights = if t.weights.is_empty() {
                    vec![1.0 / n as f64; n]
                } else {
                    t.weights.clone()
                };
                let variances = if t.variances.is_empty() {
                    vec![1.0; n]
                } else {
                    t.variances.clone()
                };
                IsotropicMixture::new(means, weights, variances)
            }
        }
    }

    /// The schedule β(t).
    pub fn build_schedule(&self) -> Box<dyn Schedule> {
        let s = &self.schedule;
        match s.kind {
            ScheduleKind::Constant => Box::new(schedule::Constant { beta: s.beta }),
            ScheduleKind::Exponential => Box::new(schedule::Exponential {
                beta_i: s.beta_i,
                t0: s.t0,
            }),
            ScheduleKind::Linear => Box::new(schedule::Linear {
                beta_i: s.beta_i,
                t0: s.t0,
            }),
            ScheduleKind::LinearTemperature => Box::new(schedule::LinearTemperature {
                beta_i: s.beta_i,
                t0: s.t0,
            }),
            ScheduleKind::Points => Box::new(schedule::Points::new(s.points.clone())),
        }
    }

    /// The standard deviation s of each coordinate of the random initial means
    /// (μ_k ~ N(0, s² I_d)); `None` when explicit means are given.
    pub fn init_scale(&self) -> Option<f64> {
        if !self.student.means.is_empty() {
            return None;
        }
        Some(match &self.student.init_mean_scale {
            NumberOr::Number(v) => *v,
            NumberOr::Name(n) if n == "inv_sqrt_d" => 1.0 / (self.target.d as f64).sqrt(),
            NumberOr::Name(_) => 1.0,
        })
    }

    /// The first component's weight w_1 when the weights are fixed, else `None`.
    pub fn fixed_w1(&self) -> Option<f64> {
        let s = &self.student;
        if s.trainable_weights {
            None
        } else if s.weights.is_empty() {
            Some(1.0 / s.components as f64)
        } else {
            s.weights.first().copied()
        }
    }

    /// The initial student, drawing random means from `rng` unless explicit means are given.
    pub fn init_student<R: Rng + ?Sized>(&self, rng: &mut R) -> GmmStudent {
        let s = &self.student;
        let d = self.target.d;
        let k = s.components;
        let scale = self.init_scale().unwrap_or(1.0);
        let means: Vec<Vec<f64>> = if s.means.is_empty() {
            (0..k)
                .map(|_| {
                    let mut m = vec![0.0; d];
                    crate::family::fill_standard_normal(rng, &mut m);
                    m.iter_mut().for_each(|v| *v *= scale);
                    m
                })
                .collect()
        } else {
            s.means.iter().map(|m| pad(m, d)).collect()
        };
        self.student_with_means(&means)
    }

    /// The initial student's shape (σ_k, weights, trainability) with zero means of length 1:
    /// what the statistics engine needs besides the means it draws itself.
    pub fn init_student_shape(&self) -> GmmStudent {
        self.student_with_means(&vec![vec![0.0]; self.student.components])
    }

    fn student_with_means(&self, means: &[Vec<f64>]) -> GmmStudent {
        let s = &self.student;
        let k = s.components;
        let sigma0 = match &s.sigma0 {
            NumberOr::Number(v) => *v,
            NumberOr::Name(_) => 1.0 / self.build_schedule().beta(0.0).sqrt(),
        };
        let weights = if s.weights.is_empty() {
            vec![1.0 / k as f64; k]
        } else {
            s.weights.clone()
        };
        GmmStudent::new(means, &vec![sigma0; k], &weights, s.trainable_weights)
    }

    /// The optimiser, with group rates κ_mean = 1, κ_σ = c_σ/d, κ_logit = c_w.
    pub fn build_optimizer(&self) -> Box<dyn Optimizer> {
        let o = &self.optim;
        let rates = GroupRates {
            mean: 1.0,
            log_scale: o.sigma_lr_factor / self.target.d as f64,
            logit: o.logit_lr_factor,
            network: 1.0,
        };
        match o.kind {
            OptimKind::Sgd => Box::new(Sgd {
                lr: o.lr,
                rates,
                max_log_scale_step: o.max_log_sigma_step,
            }),
            OptimKind::Adam => Box::new(
                Adam::new(o.lr, rates, o.adam_beta1, o.adam_beta2, o.adam_eps)
                    .with_max_grad_norm(o.max_grad_norm),
            ),
        }
    }
}

fn pad(m: &[f64], d: usize) -> Vec<f64> {
    let mut v = vec![0.0; d];
    v[..m.len()].copy_from_slice(m);
    v
}

fn finite_in(
    field: &str,
    v: f64,
    lo: f64,
    hi: f64,
    lo_closed: bool,
    hi_closed: bool,
    expected: &str,
) -> Result<()> {
    let ok = v.is_finite()
        && (if lo_closed { v >= lo } else { v > lo })
        && (if hi_closed { v <= hi } else { v < hi });
    if ok {
        Ok(())
    } else {
        Err(Error::config(field, v, expected))
    }
}

/// Each mean has at most d finite entries (it is padded with zeros to length d).
fn check_means(field: &str, means: &[Vec<f64>], d: usize) -> Result<()> {
    for (j, m) in means.iter().enumerate() {
        if m.len() > d {
            return Err(Error::config(
                &format!("{field}[{j}]"),
                format!("a vector of length {}", m.len()),
                &format!("at most target.d = {d} entries"),
            ));
        }
        check_all_finite(&format!("{field}[{j}]"), m)?;
    }
    Ok(())
}

fn check_all_finite(field: &str, v: &[f64]) -> Result<()> {
    match v.iter().position(|x| !x.is_finite()) {
        Some(i) => Err(Error::config(
            &format!("{field}[{i}]"),
            v[i],
            "a finite number",
        )),
        None => Ok(()),
    }
}

fn check_weights(field: &str, w: &[f64], n: usize) -> Result<()> {
    if w.is_empty() {
        return Ok(());
    }
    if w.len() != n {
        return Err(Error::config(
            field,
            format!("{} entries", w.len()),
            &format!("{n} entries (one per component) or none"),
        ));
    }
    for (j, v) in w.iter().enumerate() {
        finite_in(
            &format!("{field}[{j}]"),
            *v,
            0.0,
            1.0,
            false,
            true,
            "a number in (0, 1]",
        )?;
    }
    let s: f64 = w.iter().sum();
    if (s - 1.0).abs() > 1e-9 {
        return Err(Error::config(
            field,
            format!("{w:?} (sum {s})"),
            "weights summing to 1",
        ));
    }
    Ok(())
}

/// Reads the TOML file at `path` (an empty table without one), applies the `--set`
/// overrides and deserialises into `T`; errors name the file (or `what`).
pub fn load_toml<T: serde::de::DeserializeOwned>(
    path: Option<&Path>,
    sets: &[String],
    what: &str,
) -> Result<T> {
    let mut table = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| Error::io(p, "read", e))?;
            text.parse::<toml::Table>().map_err(|e| Error::Parse {
                source_name: p.display().to_string(),
                message: e.to_string(),
            })?
        }
        None => toml::Table::new(),
    };
    for s in sets {
        apply_set(&mut table, s)?;
    }
    let name = path.map_or_else(|| what.to_string(), |p| p.display().to_string());
    table.try_into().map_err(|e: toml::de::Error| Error::Parse {
        source_name: name,
        message: e.to_string(),
    })
}

/// Applies one `key=value` override to a TOML table. The value is parsed as TOML (numbers,
/// booleans, arrays, quoted strings); anything that does not parse is taken as a bare string.
pub fn apply_set(table: &mut toml::Table, set: &str) -> Result<()> {
    let (key, value) = set.split_once('=').ok_or_else(|| Error::Parse {
        source_name: format!("--set {set}"),
        message: "expected key=value, e.g. --set target.d=64".into(),
    })?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|p| p.trim().is_empty()) {
        return Err(Error::Parse {
            source_name: format!("--set {set}"),
            message: "the key must be a dotted path such as target.d".into(),
        });
    }
    if value.contains(['\n', '\r']) {
        return Err(Error::Parse {
            source_name: format!("--set {}", key.trim()),
            message: "the value contains a line break; give one key=value per --set".into(),
        });
    }
    let v = value.trim();
    let digits = v.strip_prefix('+').unwrap_or(v);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && v.parse::<i64>().is_err()
    {
        return Err(Error::config(
            key.trim(),
            v,
            "an integer in [0, 9223372036854775807] (TOML integers are signed 64-bit)",
        ));
    }
    let parsed: toml::Value = match format!("v = {}", value.trim()).parse::<toml::Table>() {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or(toml::Value::String(value.to_string())),
        Err(_) => toml::Value::String(value.trim().to_string()),
    };
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    let mut cur = table;
    for p in &parts[..parts.len() - 1] {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(Error::Parse {
                    source_name: format!("--set {set}"),
                    message: format!("`{p}` is not a table"),
                });
            }
        };
    }
    cur.insert(parts[parts.len() - 1].to_string(), parsed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let c = Config::default();
        c.validate().unwrap();
        let back = Config::from_toml_str(&c.to_toml()).unwrap();
        assert_eq!(c, back);
        assert_eq!(Config::from_toml_str("").unwrap(), c);
    }

    #[test]
    fn the_documented_example_is_the_default() {
        let c = Config::from_toml_str(include_str!("../configs/example.toml")).unwrap();
        assert_eq!(c, Config::default());
    }

    #[test]
    fn set_overrides_nested_values() {
        let mut t = toml::Table::new();
        apply_set(&mut t, "target.d=64").unwrap();
        apply_set(&mut t, "schedule.kind=exponential").unwrap();
        apply_set(&mut t, "student.sigma0=\"schedule\"").unwrap();
        let c: Config = t.try_into().unwrap();
        assert_eq!(c.target.d, 64);
        assert_eq!(c.schedule.kind, ScheduleKind::Exponential);
        assert_eq!(c.student.sigma0, NumberOr::Name("schedule".into()));
    }

    #[test]
    fn errors_name_the_field() {
        let e = Config::from_toml_str("[target]\nw_star = 1.5")
            .unwrap_err()
            .to_string();
        assert!(e.contains("target.w_star") && e.contains("(0, 1)"), "{e}");
        let e = Config::from_toml_str("[target]\nfoo = 1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("foo"), "{e}");
    }

    #[test]
    fn max_log_sigma_step_must_be_positive_or_inf() {
        Config::from_toml_str("[optim]\nmax_log_sigma_step = inf").unwrap();
        for bad in ["0.0", "-1.0", "nan", "-inf"] {
            let e = Config::from_toml_str(&format!("[optim]\nmax_log_sigma_step = {bad}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("optim.max_log_sigma_step"), "{e}");
        }
    }
}
