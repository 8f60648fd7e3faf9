//! The types most programs need, in one import: `use annealvi::prelude::*;`.
//!
//! Configuration ([`Config`], [`SweepConfig`]), schedules, single runs ([`run_config`],
//! [`run_flow_with_streams`]) and their results, sweeps ([`run_sweep`], [`aggregate`]), the
//! theory's collapse predictors ([`Predictor`], [`FormulaModel`]) and the error type; the
//! `_cancellable` variants stop when a flag is set from another thread. The Python package
//! (`python/`) is built on exactly these.

pub use crate::config::Config;
pub use crate::design::{
    Design, Predictor, fastest_exponential, fastest_exponential_cancellable, simulate_cancellable,
};
pub use crate::error::{Error, Result};
pub use crate::metrics::{Outcome, OutcomeKind, wilson_interval};
pub use crate::run::{
    run_config, run_flow_with_streams, run_flow_with_streams_cancellable, run_with_streams,
    run_with_streams_cancellable,
};
pub use crate::schedule::{Constant, Exponential, Linear, LinearTemperature, Schedule};
pub use crate::sweep::{
    Cell, CellStats, RunFn, RunLine, RunSpec, Shard, SweepConfig, SweepOptions, SweepReport,
    aggregate, read_runs, run_sweep, run_sweep_cancellable, run_sweep_with,
};
pub use crate::target::{Bimodal, IsotropicMixture, LogDensity};
pub use crate::theory::formula::FormulaModel;
pub use crate::train::{Observer, Recorder, RunResult};
