//! The architecture of a RealNVP flow: [`FlowArch`] with its masks, activations and the
//! precision of the batched passes; the same type is the `[student.realnvp]` section of a
//! configuration (with the evaluation settings of a flow run), validated here.

use super::RealNvp;
use super::engine::Layout;
use crate::check::{self, NumberOr};
use crate::error::{Error, Result};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::ops::Bound;

/// MLP activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// max(0, u).
    Relu,
    /// tanh(u).
    Tanh,
}

/// Coupling masks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskKind {
    /// Alternating halves (first ⌊d/2⌋ / the rest).
    Halves,
    /// Alternating even / odd indices.
    Checkerboard,
}

/// Arithmetic precision of the batched passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    /// 32-bit floats (fast).
    F32,
    /// 64-bit floats.
    F64,
}

/// The architecture of a RealNVP flow, which is also the `[student.realnvp]` section of a
/// configuration: every field but `d` and `sigma0` is a key of the section. The section
/// gives σ0 as a rule (`sigma0_rule`, key `sigma0`); [`Self::resolved`] sets d = `target.d`
/// and the σ0 the rule gives, and [`Self::init`] builds the flow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlowArch {
    /// Dimension d ≥ 2 (not a key of the section: `target.d`).
    #[serde(skip)]
    pub d: usize,
    /// Number of coupling layers L ∈ [1, 256].
    pub layers: usize,
    /// Linear layers per MLP ∈ [1, 64] (depth − 1 hidden layers).
    pub depth: usize,
    /// Hidden width h ∈ [1, 65536].
    pub width: usize,
    /// Hidden activation: `relu` or `tanh`.
    pub activation: Activation,
    /// Mask pattern: `halves` or `checkerboard`.
    pub mask: MaskKind,
    /// c in s = c·tanh(S(x_A)), in (0, 20].
    pub scale_bound: f64,
    /// Base standard deviation σ0 > 0 of the flow (not a key of the section: the value of
    /// `sigma0_rule`).
    #[serde(skip)]
    pub sigma0: f64,
    /// The key `sigma0`: a number > 0, or "schedule" for σ0² = 1/β(0).
    #[serde(rename = "sigma0")]
    pub sigma0_rule: NumberOr,
    /// Multiplier in [0, 1] on the last layers' initial bound (0: the flow starts at the
    /// identity).
    pub last_init: f64,
    /// Precision of the batched passes: `f32` (fast) or `f64`.
    pub precision: Precision,
    /// Samples N ∈ [1, 10⁸] for the final Monte-Carlo outcome (light-mode mass, ESS, KL).
    pub eval_samples: usize,
    /// A mode whose estimated mass is below this (in (0, 0.5]) counts as not covered.
    pub collapse_threshold: f64,
}

impl Default for FlowArch {
    /// The section's defaults, in the smallest dimension d = 2.
    fn default() -> Self {
        Self {
            d: 2,
            layers: 8,
            depth: 4,
            width: 64,
            activation: Activation::Relu,
            mask: MaskKind::Halves,
            scale_bound: 1.0,
            sigma0: 1.0,
            sigma0_rule: NumberOr::Number(1.0),
            last_init: 0.0,
            precision: Precision::F32,
            eval_samples: 4000,
            collapse_threshold: 0.05,
        }
    }
}

impl FlowArch {
    /// The architecture of the flow benchmarks (`annealvi bench flow` and `bench flow-gpu`): 8
    /// couplings with alternating halves, depth-4 ReLU MLPs of width `width`, s = tanh(·) with
    /// scale bound 1, every layer initialised PyTorch-style (`last_init` = 1), base N(0, I).
    pub fn benchmark(d: usize, width: usize) -> Self {
        FlowArch {
            d,
            width,
            last_init: 1.0,
            ..FlowArch::default()
        }
    }

    /// The same section in dimension d with base standard deviation σ0 (the value of the
    /// σ0 rule).
    pub fn resolved(&self, d: usize, sigma0: f64) -> Self {
        FlowArch {
            d,
            sigma0,
            ..self.clone()
        }
    }

    /// The initial flow (weights drawn from `rng`), in the section's precision; fails when
    /// [`Self::validate`] does.
    ///
    /// ```
    /// use annealvi::family::realnvp::{FlowArch, Precision};
    /// use annealvi::seed::{Purpose, stream};
    ///
    /// let arch = FlowArch { d: 4, layers: 4, width: 16, depth: 2, precision: Precision::F64,
    ///                       last_init: 1.0, ..FlowArch::default() };
    /// let mut flow = arch.init(&mut stream(0, 0, Purpose::Init))?;
    /// // x = f(σ0 ε) and back: the inverse recovers ε and the same ln q(x)
    /// let eps = [0.3, -1.2, 0.7, 2.0];
    /// let (mut x, mut z, mut lq, mut lq_back) = ([0.0; 4], [0.0; 4], [0.0], [0.0]);
    /// flow.push_forward(&eps, &mut x, &mut lq);
    /// flow.inverse(&x, &mut z, &mut lq_back);
    /// assert!(eps.iter().zip(&z).all(|(a, b)| (a - b).abs() < 1e-10));
    /// assert!((lq[0] - lq_back[0]).abs() < 1e-10);
    /// # Ok::<(), annealvi::Error>(())
    /// ```
    pub fn init<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<RealNvp> {
        RealNvp::new(self.clone(), self.precision, rng)
    }

    /// Checks the section's own fields, naming them under `prefix` (e.g. `student.realnvp`),
    /// in dimension d (`target.d`, or 2 to check an unused section on its own): the σ0 rule,
    /// the evaluation settings, then the architecture ([`Self::validate`]).
    pub fn validate_section(&self, prefix: &str, d: usize) -> Result<()> {
        let f = |n: &str| format!("{prefix}.{n}");
        let sigma0 = "a number > 0 or \"schedule\"";
        self.sigma0_rule
            .check(&f("sigma0"), check::POSITIVE, &["schedule"], sigma0)?;
        check::count_in(&f("eval_samples"), self.eval_samples, 1, 100_000_000)?;
        check::number_in(
            &f("collapse_threshold"),
            self.collapse_threshold,
            (Bound::Excluded(0.0), Bound::Included(0.5)),
            "a number in (0, 0.5]",
        )?;
        self.resolved(d, 1.0).validate(prefix)
    }

    /// Checks the architecture (d, the network, σ0, the initial bound and the parameter
    /// count), naming the fields under `prefix` (e.g. `student.realnvp`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let f = |n: &str| format!("{prefix}.{n}");
        if self.d < 2 {
            return Err(Error::config(
                "target.d",
                self.d,
                "an integer ≥ 2 for a RealNVP student",
            ));
        }
        check::count_in(&f("layers"), self.layers, 1, 256)?;
        check::count_in(&f("depth"), self.depth, 1, 64)?;
        check::count_in(&f("width"), self.width, 1, 1 << 16)?;
        check::number_in(
            &f("scale_bound"),
            self.scale_bound,
            (Bound::Excluded(0.0), Bound::Included(20.0)),
            "a number in (0, 20]",
        )?;
        check::number_in(
            &f("sigma0"),
            self.sigma0,
            check::POSITIVE,
            "a number > 0 or \"schedule\"",
        )?;
        check::number_in(
            &f("last_init"),
            self.last_init,
            0.0..=1.0,
            "a number in [0, 1]",
        )?;
        let n = Layout::new(self).n_params;
        if n > 1 << 28 {
            return Err(Error::config(
                &f("width"),
                self.width,
                "a width giving at most 2^28 parameters",
            ));
        }
        Ok(())
    }
}
