//! Variational families q_θ.
//!
//! A family exposes its parameters as one flat vector θ split into named groups (so that the
//! optimiser can give each group its own learning rate), its log-density and a sampler.
//! Reparametrised gradients of the objective live in [`crate::objective`].

pub mod gmm;
pub mod realnvp;
#[cfg(feature = "gpu")]
pub mod realnvp_gpu;

pub use gmm::GmmStudent;
pub use realnvp::RealNvp;

use rand::Rng;

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
