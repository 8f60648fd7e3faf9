//! # annealvi
//!
//! Annealed variational inference and the study of mode collapse, after Fogliani, Loureiro &
//! Gabrié (2026), "Annealing in variational inference mitigates mode collapse: a theoretical
//! study on Gaussian mixtures".
//!
//! The pieces, one module per concept:
//! - [`target`]: log-densities π (isotropic Gaussian mixtures, the paper's bimodal target) and
//!   tempering π_β ∝ π^β;
//! - [`family`]: variational families q_θ (the Gaussian-mixture student, the RealNVP flow);
//! - [`objective`]: F_β = KL(q_θ ‖ π_β), its Monte-Carlo and exact gradients;
//! - [`schedule`]: annealing schedules β(t);
//! - [`optim`]: SGD and Adam with per-group learning rates;
//! - [`train`]: the loop and its observer;
//! - [`statistics`]: the same SGD simulated exactly in the summary statistics (cost
//!   independent of d);
//! - [`metrics`]: outcomes (covered / collapsed / diverged) and the light-mode mass;
//! - [`config`]: validated TOML configuration (each section defined next to what it
//!   configures; [`check`] holds the range checks they share);
//! - [`figure`], [`plot`]: the paper's figures;
//! - [`bench`](mod@bench): throughput measurement;
//! - [`prelude`]: the common types in one import;
//! - [`quadrature`], [`gauss1d`], [`seed`], [`normal`]: numerical support (the last one is the
//!   vectorised normal generator of the Monte-Carlo kernel).

// Numerical kernels index several arrays with one loop variable; iterator chains would obscure
// the equations they implement.
#![allow(clippy::needless_range_loop)]
// Every public item is documented; CI denies the warning (clippy -D warnings) and rustdoc's.
#![warn(missing_docs)]

pub mod bench;
pub mod check;
pub mod config;
pub mod design;
pub mod error;
pub mod family;
#[cfg(feature = "plot")]
pub mod figure;
pub mod gauss1d;
pub mod metrics;
pub mod normal;
pub mod objective;
pub mod optim;
pub mod output;
#[cfg(feature = "plot")]
pub mod plot;
pub mod prelude;
pub mod progress;
pub mod quadrature;
pub mod run;
pub mod schedule;
pub mod seed;
pub mod statistics;
pub mod sweep;
pub mod target;
pub mod theory;
pub mod train;

pub use error::{Error, Result};
