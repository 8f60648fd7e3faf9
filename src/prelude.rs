//! The types most programs need, in one import: `use annealvi::prelude::*;`.
//!
//! Configuration ([`Config`], [`SweepConfig`]), schedules, single runs (a configuration
//! compiled once into an [`Experiment`], run by the driver [`Trainer`] into an [`AnyRun`]),
//! observers ([`Observer`], [`Recorder`]) and results, sweeps ([`run_sweep`], [`aggregate`]),
//! the theory's collapse predictors ([`Predictor`], [`FormulaModel`]) and the error type; the
//! `_cancellable` sweep and design functions and [`Trainer::cancel`] stop when a flag is set
//! from another thread. The command-line program and the Python package start their runs
//! with these.

pub use crate::config::Config;
pub use crate::design::{
    Design, Predictor, fastest_exponential, fastest_exponential_cancellable, simulate_cancellable,
};
pub use crate::error::{Error, Result};
pub use crate::metrics::{Outcome, OutcomeKind, wilson_interval};
pub use crate::run::{AnyRun, Experiment, RunError, Trainer};
pub use crate::schedule::{Constant, Exponential, Linear, LinearTemperature, Schedule};
pub use crate::sweep::{
    Cell, CellStats, RunFn, RunLine, RunSpec, Shard, SweepConfig, SweepOptions, SweepReport,
    aggregate, read_runs, run_sweep, run_sweep_cancellable, run_sweep_with,
};
pub use crate::target::{Bimodal, IsotropicMixture, LogDensity};
pub use crate::theory::formula::FormulaModel;
pub use crate::train::{
    FlowRecorder, NoObserver, Observer, Record, RecordStats, Recorder, RunResult, TypedRecorder,
};
