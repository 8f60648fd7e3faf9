//! The architecture of a RealNVP flow: [`FlowArch`] with its masks, activations and the
//! precision of the batched passes.

use super::engine::Layout;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

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

/// The architecture of a RealNVP flow.
#[derive(Clone, Debug, PartialEq)]
pub struct FlowArch {
    /// Dimension d ≥ 2.
    pub d: usize,
    /// Number of coupling layers L ≥ 1.
    pub layers: usize,
    /// Linear layers per MLP (≥ 1).
    pub depth: usize,
    /// Hidden width h ≥ 1.
    pub width: usize,
    /// Hidden activation.
    pub activation: Activation,
    /// Mask pattern.
    pub mask: MaskKind,
    /// c in s = c·tanh(S(x_A)) (> 0).
    pub scale_bound: f64,
    /// Base standard deviation σ0 > 0.
    pub sigma0: f64,
    /// Multiplier on the last layers' initial bound (0 = exact identity at start).
    pub last_init: f64,
}

impl FlowArch {
    /// The architecture of the flow benchmarks (`annealvi bench flow` and `bench flow-gpu`): 8
    /// couplings with alternating halves, depth-4 ReLU MLPs of width `width`, s = tanh(·) with
    /// scale bound 1, every layer initialised PyTorch-style (`last_init` = 1), base N(0, I).
    pub fn benchmark(d: usize, width: usize) -> Self {
        FlowArch {
            d,
            layers: 8,
            depth: 4,
            width,
            activation: Activation::Relu,
            mask: MaskKind::Halves,
            scale_bound: 1.0,
            sigma0: 1.0,
            last_init: 1.0,
        }
    }

    /// Checks every field, naming it under `prefix` (e.g. `student.realnvp`).
    pub fn validate(&self, prefix: &str) -> Result<()> {
        let f = |n: &str| format!("{prefix}.{n}");
        if self.d < 2 {
            return Err(Error::config(
                "target.d",
                self.d,
                "an integer ≥ 2 for a RealNVP student",
            ));
        }
        if self.layers == 0 || self.layers > 256 {
            return Err(Error::config(
                &f("layers"),
                self.layers,
                "an integer in [1, 256]",
            ));
        }
        if self.depth == 0 || self.depth > 64 {
            return Err(Error::config(
                &f("depth"),
                self.depth,
                "an integer in [1, 64]",
            ));
        }
        if self.width == 0 || self.width > 1 << 16 {
            return Err(Error::config(
                &f("width"),
                self.width,
                "an integer in [1, 65536]",
            ));
        }
        if !(self.scale_bound.is_finite() && self.scale_bound > 0.0 && self.scale_bound <= 20.0) {
            return Err(Error::config(
                &f("scale_bound"),
                self.scale_bound,
                "a number in (0, 20]",
            ));
        }
        if !(self.sigma0.is_finite() && self.sigma0 > 0.0) {
            return Err(Error::config(
                &f("sigma0"),
                self.sigma0,
                "a number > 0 or \"schedule\"",
            ));
        }
        if !(self.last_init.is_finite() && (0.0..=1.0).contains(&self.last_init)) {
            return Err(Error::config(
                &f("last_init"),
                self.last_init,
                "a number in [0, 1]",
            ));
        }
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
