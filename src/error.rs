//! The toolkit's error type.
//!
//! Every failure a user can cause (bad configuration, unwritable output, malformed file) becomes
//! an [`Error`] whose message names what was wrong and what would have been valid. The CLI prints
//! it and exits with status 2; nothing in the library panics on user input.
//!
//! Callers tell failures apart by variant (a cancelled search is [`Error::Interrupted`], an ODE
//! out of its step budget [`IntegrateError::StepBudget`] inside [`Error::Integrate`]), never by
//! message; [`Error::Invalid`] is kept for free-form explanations.

use std::fmt;
use std::path::{Path, PathBuf};

/// A failure with a message meant for the person running the toolkit.
#[derive(Debug)]
pub enum Error {
    /// A configuration field holds an invalid value.
    Config {
        /// Dotted path of the field, e.g. `target.w_star`.
        field: String,
        /// The offending value, as written.
        value: String,
        /// What would be valid, e.g. `a number in (0, 1)`.
        expected: String,
    },
    /// A file could not be parsed (TOML syntax, unknown keys, wrong types, ...).
    Parse {
        /// What was being parsed (a path or `--set`).
        source_name: String,
        /// The parser's message.
        message: String,
    },
    /// Reading or writing a path failed.
    Io {
        /// The path involved.
        path: PathBuf,
        /// The operation, e.g. `create directory`.
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The summary-statistics ODE does not describe the configured model (it needs the bimodal
    /// target and a 2-component Gaussian-mixture student).
    OdeModel {
        /// What the ODE needs, e.g. `a 2-component student`.
        needs: &'static str,
    },
    /// An ODE integration failed (non-finite state, step underflow, or its step budget
    /// [`crate::theory::MAX_STEPS`] spent: [`IntegrateError::StepBudget`]).
    Integrate(IntegrateError),
    /// The ODE of one cell of a theory grid cannot be integrated to the end of its run within
    /// the step budget (so neither can the other cells': the grid is refused early).
    CellOde {
        /// The cell's initial inverse temperature β_i.
        beta_i: f64,
        /// The cell's annealing time t0.
        t0: f64,
        /// Why the integration failed.
        source: IntegrateError,
    },
    /// A cancellable computation stopped because its cancel flag was set.
    Interrupted,
    /// The GPU engine failed (no device, a CUDA call, or a request it cannot serve).
    Gpu {
        /// The engine's error: a `family::realnvp_gpu::GpuError` (cargo feature `gpu`; reach its
        /// variants with `downcast_ref`).
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A figure could not be drawn or written (cargo feature `plot`).
    Plot {
        /// The chart library's error: a `plot::PlotError` (reach it with `downcast_ref`).
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// Anything else the user asked for that cannot be done, with an explanation.
    Invalid(String),
}

impl Error {
    /// A configuration error for `field` holding `value`, which should be `expected`.
    pub fn config(field: &str, value: impl fmt::Display, expected: &str) -> Self {
        Error::Config {
            field: field.to_string(),
            value: value.to_string(),
            expected: expected.to_string(),
        }
    }

    /// An I/O error on `path` while doing `action`.
    pub fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config {
                field,
                value,
                expected,
            } => write!(
                f,
                "invalid value for `{field}`: {value} (expected {expected})"
            ),
            Error::Parse {
                source_name,
                message,
            } => write!(f, "cannot parse {source_name}: {}", message.trim_end()),
            Error::Io {
                path,
                action,
                source,
            } => write!(f, "cannot {action} `{}`: {source}", path.display()),
            Error::OdeModel { needs } => write!(f, "the summary-statistics ODE needs {needs}"),
            Error::Integrate(e) => write!(f, "{e}"),
            Error::CellOde { beta_i, t0, source } => write!(
                f,
                "theory: the ODE of cell (beta_i = {beta_i}, t0 = {t0}) cannot be integrated: \
                 {source}"
            ),
            Error::Interrupted => write!(f, "interrupted"),
            Error::Gpu { source } | Error::Plot { source } => write!(f, "{source}"),
            Error::Invalid(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            Error::Integrate(source) | Error::CellOde { source, .. } => Some(source),
            Error::Gpu { source } | Error::Plot { source } => Some(source.as_ref()),
            _ => None,
        }
    }
}

impl From<IntegrateError> for Error {
    fn from(e: IntegrateError) -> Self {
        Error::Integrate(e)
    }
}

/// Why an ODE integration failed (the integrator is [`crate::theory::integrate`]).
#[derive(Clone, Debug, PartialEq)]
pub enum IntegrateError {
    /// The state became non-finite at time τ and no smaller step helped.
    NonFinite {
        /// Time reached.
        tau: f64,
    },
    /// The state left the bounds of the divergence rule at time τ: a statistic's magnitude
    /// above [`crate::theory::STATE_BOUND`] (a mean's norm above 10⁶, as in training).
    Diverged {
        /// Time reached.
        tau: f64,
    },
    /// The step size fell below 1e-12 at time τ.
    StepUnderflow {
        /// Time reached.
        tau: f64,
    },
    /// The step budget ([`crate::theory::MAX_STEPS`]) was spent before reaching `target`.
    StepBudget {
        /// Time reached.
        tau: f64,
        /// Time asked for.
        target: f64,
        /// The budget spent (steps, accepted or rejected).
        steps: usize,
    },
}

impl fmt::Display for IntegrateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntegrateError::NonFinite { tau } => write!(f, "non-finite state at τ = {tau}"),
            IntegrateError::Diverged { tau } => write!(
                f,
                "the statistics diverged at τ = {tau:.4e} (a magnitude above 1e12, i.e. a \
                 mean's norm above 1e6)"
            ),
            IntegrateError::StepUnderflow { tau } => write!(f, "step size underflow at τ = {tau}"),
            IntegrateError::StepBudget { tau, target, steps } => write!(
                f,
                "the ODE integrator took its budget of {steps} steps and reached only \
                 τ = {tau:.4e} of τ = {target:.4e} (τ = learning rate × steps; check \
                 run.optim.lr, run.target.r and the schedule lengths)"
            ),
        }
    }
}

impl std::error::Error for IntegrateError {}

/// The toolkit's result type.
pub type Result<T> = std::result::Result<T, Error>;
