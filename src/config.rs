//! Run configuration: the aggregate [`Config`] of the sections, TOML files, `--set key=value`
//! overrides, the checks of how the sections combine, and construction of the target, student,
//! schedule and optimiser.
//!
//! Each section lives next to what it configures and validates its own fields: [`TargetConfig`]
//! in [`crate::target`], [`StudentConfig`] in [`crate::family`] (with `[student.realnvp]` as a
//! [`FlowArch`]), [`ScheduleConfig`] in [`crate::schedule`], [`OptimConfig`] in
//! [`crate::optim`]; they are re-exported here. [`ObjectiveConfig`] and [`RecordConfig`] are
//! defined here.
//!
//! Every field has a default (the paper's setting: d = 512, R = 3, w* = 0.8, w1 = 0.5,
//! η = 0.05), so an empty file is a valid configuration. Unknown keys are errors. Every
//! invalid value gives an [`Error::Config`] naming the field, the value and the valid range.
//! See `configs/example.toml` for every field with comments.

use crate::check;
use crate::error::{Error, Result};
use crate::family::realnvp::FlowArch;
use crate::family::{GmmStudent, RealNvp};
use crate::objective::Estimator;
use crate::optim::Optimizer;
use crate::schedule::Schedule;
use crate::target::IsotropicMixture;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub use crate::check::NumberOr;
pub use crate::family::{FamilyKind, Simulation, StudentConfig};
pub use crate::optim::{OptimConfig, OptimKind};
pub use crate::schedule::{ScheduleConfig, ScheduleKind};
pub use crate::target::{Direction, TargetConfig, TargetKind};

/// The `[student.realnvp]` section: the flow architecture with its evaluation settings.
pub type RealNvpConfig = FlowArch;

/// A complete run configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ConfigToml")]
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

/// How the loss is scaled before the optimiser sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossScale {
    /// The raw KL (nats).
    None,
    /// KL / d (nats per dimension).
    PerDim,
}

/// A configuration as written (TOML): [`Config`] with the deprecated keys, which
/// deserialisation moves to their new places (see [`Config`]'s `TryFrom`).
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct ConfigToml {
    seed: u64,
    target: TargetConfig,
    student: StudentConfig,
    schedule: ScheduleConfig,
    objective: ObjectiveConfig,
    optim: OptimConfig,
    record: RecordConfig,
}

impl Default for ConfigToml {
    fn default() -> Self {
        let c = Config::default();
        Self {
            seed: c.seed,
            target: c.target,
            student: c.student,
            schedule: c.schedule,
            objective: c.objective,
            optim: c.optim,
            record: c.record,
        }
    }
}

/// Prints the deprecation note of `objective.engine` on stderr, once per process (the one
/// thing the library prints: a renamed key must not pass unnoticed, whoever loads it).
fn note_deprecated_engine() {
    use std::sync::atomic::{AtomicBool, Ordering};
    static NOTED: AtomicBool = AtomicBool::new(false);
    if !NOTED.swap(true, Ordering::Relaxed) {
        eprintln!(
            "note: `objective.engine` is deprecated; it is now `student.simulation` (same \
             values, \"vector\" or \"statistics\")"
        );
    }
}

impl TryFrom<ConfigToml> for Config {
    type Error = String;
    /// Moves the deprecated `objective.engine` to `student.simulation` (with a note on
    /// stderr); both given and different is an error.
    fn try_from(c: ConfigToml) -> std::result::Result<Self, String> {
        let (mut student, mut objective) = (c.student, c.objective);
        if let Some(old) = objective.engine.take() {
            note_deprecated_engine();
            if student.simulation != old && student.simulation != Simulation::default() {
                return Err(format!(
                    "objective.engine = {old:?} (deprecated) and student.simulation = {:?} \
                     disagree; give student.simulation only",
                    student.simulation
                ));
            }
            student.simulation = old;
        }
        Ok(Config {
            seed: c.seed,
            target: c.target,
            student,
            schedule: c.schedule,
            objective,
            optim: c.optim,
            record: c.record,
        })
    }
}

/// Objective settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ObjectiveConfig {
    // deprecated `objective.engine`: read as `student.simulation` (a note is printed), never
    // written (see `Config`'s `TryFrom<ConfigToml>`)
    #[serde(skip_serializing)]
    engine: Option<Simulation>,
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
            engine: None,
            estimator: Estimator::Full,
            samples: 32,
            loss_scale: LossScale::None,
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
    /// The marginal grid spans s ∈ [−range, range] (in (0, 1e6]).
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

impl ObjectiveConfig {
    /// Checks the section's own fields (named `objective.…`); how they combine with the
    /// target, student and optimiser is checked by [`Config::validate`].
    pub fn validate(&self) -> Result<()> {
        check::count_in("objective.samples", self.samples, 1, 1 << 20)
    }
}

impl RecordConfig {
    /// Checks every field (named `record.…`) for a run of `steps` SGD steps.
    pub fn validate(&self, steps: usize) -> Result<()> {
        for (j, &st) in self.marginal_steps.iter().enumerate() {
            if st > steps {
                return Err(Error::config(
                    &format!("record.marginal_steps[{j}]"),
                    st,
                    &format!("a step in [0, optim.steps = {steps}]"),
                ));
            }
        }
        // beyond 1e6 the squared distances in the densities overflow to NaN/inf
        check::number_in(
            "record.marginal_range",
            self.marginal_range,
            (
                std::ops::Bound::Excluded(0.0),
                std::ops::Bound::Included(1e6),
            ),
            "a number in (0, 1e6] (half-width of the grid along μ̂, in target units)",
        )?;
        check::count_in("record.marginal_points", self.marginal_points, 2, 100_000)?;
        if self.kl_samples == 0 {
            return Err(Error::config(
                "record.kl_samples",
                self.kl_samples,
                "an integer ≥ 1",
            ));
        }
        Ok(())
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
    ///
    /// ```
    /// use annealvi::config::Config;
    ///
    /// // every field has the paper's default; a file sets what differs
    /// let cfg = Config::from_toml_str("[target]\nd = 64")?;
    /// assert_eq!((cfg.target.d, cfg.target.r, cfg.optim.lr), (64, 3.0, 0.05));
    /// // an invalid value names the field and the valid range
    /// let err = Config::from_toml_str("[target]\nw_star = 1.5").unwrap_err();
    /// assert!(err.to_string().contains("target.w_star"));
    /// # Ok::<(), annealvi::Error>(())
    /// ```
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

    /// Checks every field, section by section, and how the sections combine; the first
    /// violation is returned.
    pub fn validate(&self) -> Result<()> {
        let (t, s, o) = (&self.target, &self.student, &self.objective);
        let flow = s.family == FamilyKind::Realnvp;
        t.validate()?;
        if t.kind == TargetKind::Bimodal && t.direction == Direction::Diagonal && !flow {
            return Err(Error::config(
                "target.direction",
                "diagonal",
                "\"axis\" for the Gaussian-mixture student (its kernels and theory take \
                 mu* = R e1; the law is rotation invariant, so nothing is lost); \
                 \"diagonal\" needs student.family = \"realnvp\"",
            ));
        }
        if t.kind == TargetKind::ManyWell && !flow {
            return Err(Error::config(
                "student.family",
                "\"gmm\"",
                "\"realnvp\" for target.kind = \"many_well\" (not a mixture: the \
                 Gaussian-mixture student's kernels need a mixture target)",
            ));
        }
        s.validate(t.d)?;
        let not_exact = |why: &str| {
            Err(Error::config(
                "objective.estimator",
                "\"exact\"",
                &format!("\"full\" or \"stl\" ({why})"),
            ))
        };
        if flow && o.estimator == Estimator::Exact {
            return not_exact("no exact objective for student.family = \"realnvp\"");
        }
        self.schedule.validate()?;
        o.validate()?;
        if o.estimator == Estimator::Exact {
            if t.kind != TargetKind::Bimodal {
                return not_exact("the exact objective needs target.kind = \"bimodal\"");
            }
            if s.components > 2 {
                return not_exact("the exact objective supports at most 2 components");
            }
        }
        if s.simulation == Simulation::Statistics {
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
                    "student.simulation",
                    "\"statistics\"",
                    &format!("\"vector\", or \"statistics\" with {why}"),
                ));
            }
        }
        self.optim.validate()?;
        if !flow {
            // the divergence rule must not end runs that are merely far from the origin
            let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
            let scale = match t.kind {
                TargetKind::Bimodal => t.r,
                TargetKind::Mixture => t.means.iter().map(|m| norm(m)).fold(0.0, f64::max),
                TargetKind::Gmm40 => crate::target::benchmark::GMM40_MEANS
                    .iter()
                    .map(|m| norm(m))
                    .fold(0.0, f64::max),
                TargetKind::ManyWell => 0.0,
            }
            .max(s.means.iter().map(|m| norm(m)).fold(0.0, f64::max))
            .max(self.init_scale().map_or(0.0, |sc| sc * (t.d as f64).sqrt()))
            .max(1.0);
            if self.optim.divergence_bound < 100.0 * scale {
                return Err(Error::config(
                    "optim.divergence_bound",
                    self.optim.divergence_bound,
                    &format!(
                        "at least 100 times the scale of the problem (the largest norm of a \
                         target mean or an initial mean, here {scale:.4}): ≥ {:.4e}, or inf",
                        100.0 * scale
                    ),
                ));
            }
        }
        self.record.validate(self.optim.steps)
    }

    /// The flow architecture, with σ0 resolved ("schedule": σ0 = 1/√β(0)).
    pub fn flow_arch(&self) -> FlowArch {
        self.student
            .flow_arch(self.target.d, &*self.build_schedule())
    }

    /// The initial RealNVP student (weights drawn from `rng`).
    pub fn init_flow<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<RealNvp> {
        self.flow_arch().init(rng)
    }

    /// The target π.
    pub fn build_target(&self) -> IsotropicMixture {
        self.target.build()
    }

    /// The schedule β(t).
    pub fn build_schedule(&self) -> Box<dyn Schedule> {
        self.schedule.build()
    }

    /// The standard deviation s of each coordinate of the random initial means
    /// (μ_k ~ N(0, s² I_d)); `None` when explicit means are given.
    pub fn init_scale(&self) -> Option<f64> {
        self.student.init_scale(self.target.d)
    }

    /// The first component's weight w_1 when the weights are fixed, else `None`.
    pub fn fixed_w1(&self) -> Option<f64> {
        self.student.fixed_w1()
    }

    /// The initial student, drawing random means from `rng` unless explicit means are given.
    pub fn init_student<R: Rng + ?Sized>(&self, rng: &mut R) -> GmmStudent {
        self.student
            .build(self.target.d, &*self.build_schedule(), rng)
    }

    /// The initial student's shape (σ_k, weights, trainability) with zero means of length 1:
    /// what the statistics engine needs besides the means it draws itself.
    pub fn init_student_shape(&self) -> GmmStudent {
        self.student.init_shape(&*self.build_schedule())
    }

    /// The optimiser, with group rates κ_mean = 1, κ_σ = c_σ/d, κ_logit = c_w.
    pub fn build_optimizer(&self) -> Box<dyn Optimizer> {
        self.optim.build(self.target.d)
    }
}

/// Reads the TOML file at `path` (an empty table without one), applies the `--set`
/// overrides and deserialises into `T`; errors name the file (or `what`).
pub fn load_toml<T: serde::de::DeserializeOwned>(
    path: Option<&Path>,
    sets: &[String],
    what: &str,
) -> Result<T> {
    let mut table = match path {
        Some(p) => read_toml(p)?,
        None => toml::Table::new(),
    };
    for s in sets {
        apply_set(&mut table, s)?;
    }
    let name = path.map_or_else(|| what.to_string(), |p| p.display().to_string());
    table
        .try_into()
        .map_err(|e: toml::de::Error| parse_error(&e.to_string(), sets, name))
}

/// The TOML table of the file at `path` (errors name the file).
pub fn read_toml(path: &Path) -> Result<toml::Table> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, "read", e))?;
    text.parse::<toml::Table>().map_err(|e| Error::Parse {
        source_name: path.display().to_string(),
        message: e.to_string(),
    })
}

/// Sets the dotted `key` (e.g. `target.d`) of `table` to `value`, creating the tables on the
/// way; an error when a part of the path is not a table or is empty.
pub fn set_key(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    let source_name = || format!("key `{key}`");
    if key.is_empty() || key.split('.').any(|p| p.trim().is_empty()) {
        return Err(Error::Parse {
            source_name: source_name(),
            message: "the key must be a dotted path such as target.d".into(),
        });
    }
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
                    source_name: source_name(),
                    message: format!("`{p}` is not a table"),
                });
            }
        };
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// A deserialisation error, blamed on the `--set` that gave the field when one did (the
/// message of the toml crate ends with "in `the.field`"), with its value and the valid range
/// in words; else on the file.
fn parse_error(message: &str, sets: &[String], source_name: String) -> Error {
    let field = message
        .rfind("in `")
        .and_then(|i| message[i + 4..].split_once('`'))
        .map(|(f, _)| f.to_string());
    let set = field.as_ref().and_then(|f| {
        sets.iter()
            .rev()
            .filter_map(|s| s.split_once('='))
            .find(|(k, _)| k.trim() == f)
    });
    if let (Some(field), Some((_, value))) = (field.as_ref(), set) {
        let first = message.lines().next().unwrap_or(message);
        let expected = match first.rsplit_once("expected ") {
            Some((_, "usize" | "u64" | "u32")) => "an integer ≥ 0".to_string(),
            Some((_, "f64")) => "a number".to_string(),
            Some((_, e)) => e.to_string(),
            None => first.to_string(),
        };
        return Error::config(field, value.trim(), &expected);
    }
    Error::Parse {
        source_name,
        message: message.to_string(),
    }
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
    set_key(table, key, parsed).map_err(|e| match e {
        Error::Parse { message, .. } => Error::Parse {
            source_name: format!("--set {set}"),
            message,
        },
        e => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

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
    #[test]
    fn the_realnvp_section_has_no_d_and_round_trips_its_sigma0_rule() {
        for key in ["d = 4", "sigma0_rule = 1.0", "foo = 1"] {
            let e = Config::from_toml_str(&format!("[student.realnvp]\n{key}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("unknown field"), "{key}: {e}");
        }
        let c = Config::from_toml_str(
            "[target]\nd = 6\n[student]\nfamily = \"realnvp\"\n[student.realnvp]\n\
             sigma0 = \"schedule\"\n[objective]\nestimator = \"stl\"\n\
             [schedule]\nkind = \"constant\"\nbeta = 0.25",
        )
        .unwrap();
        assert_eq!(Config::from_toml_str(&c.to_toml()).unwrap(), c);
        let arch = c.flow_arch();
        assert_eq!((arch.d, arch.sigma0), (6, 2.0));
    }

    #[test]
    fn section_inits_build_what_the_configuration_builds() {
        use crate::target::LogDensity;
        let c = Config::from_toml_str(
            "[target]\nd = 8\n[student]\nsigma0 = \"schedule\"\n\
             [schedule]\nkind = \"exponential\"",
        )
        .unwrap();
        let x = [0.3, -1.0, 0.5, 0.0, 2.0, 0.1, -0.2, 0.7];
        let t = c.target.init().unwrap();
        assert_eq!(t.log_density(&x), c.build_target().log_density(&x));
        let s = c.schedule.init().unwrap();
        assert_eq!(s.beta(17.0), c.build_schedule().beta(17.0));
        let mut r1 = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let mut r2 = rand_xoshiro::Xoshiro256PlusPlus::seed_from_u64(3);
        let q = c.student.init(8, &*s, &mut r1).unwrap();
        assert_eq!(q, c.init_student(&mut r2));
        c.optim.init(8).unwrap();
        let mut bad = c.target.clone();
        bad.w_star = 1.5;
        assert!(
            bad.init()
                .unwrap_err()
                .to_string()
                .contains("target.w_star")
        );
        let mut bad = c.optim.clone();
        bad.steps = 0;
        let e = bad.init(8).err().unwrap().to_string();
        assert!(e.contains("optim.steps"), "{e}");
    }
}
