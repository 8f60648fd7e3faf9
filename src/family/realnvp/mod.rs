//! RealNVP normalizing flow q_θ = f_θ # N(0, σ0² I_d), trained by reverse KL with a
//! hand-written, batched backward pass over GEMM (the `matrixmultiply` crate).
//!
//! # The model
//! x = f(z) = f_{L−1} ∘ … ∘ f_0(z), z ~ N(0, σ0² I_d). Coupling layer l splits the coordinates
//! by its mask into a conditioning set A_l and a transformed set B_l (|A_l| + |B_l| = d) and maps
//!
//! y_A = x_A,   y_B = x_B ⊙ exp(s_l(x_A)) + t_l(x_A),   s_l = c · tanh(S_l(x_A)),
//!
//! where c = `scale_bound` bounds the per-layer log-scale and S_l, T_l = t_l are MLPs
//! |A_l| → h → … → h → |B_l| with `depth` linear layers (depth − 1 hidden layers of width h,
//! activation after every linear layer but the last). The log-determinant is exact:
//! ln|det ∂y/∂x| = Σ_k s_l,k(x_A), so
//!
//! ln q(x) = ln N(z; 0, σ0² I) − Σ_l Σ_k s_l,k,   z = f^{-1}(x),
//! ln N(z; 0, σ0² I) = −(d/2) ln(2π σ0²) − ‖z‖²/(2σ0²)   (nats; x, z in the target's units).
//!
//! Masks: `halves` — even layers condition on the first ⌊d/2⌋ coordinates and transform the
//! rest, odd layers the reverse; `checkerboard` — even layers condition on the even indices,
//! odd layers on the odd ones.
//!
//! # Reverse KL and its gradients
//! With reparametrised samples x_b = f_θ(z_b), b = 1..B, the loss is the −ELBO against the
//! unnormalised tempered target
//!
//! L(θ) = (1/B) Σ_b [ln q_θ(x_b) − β ln π(x_b)] = (1/B) Σ_b [ln N(z_b) − logdet_b − β ln π(x_b)],
//!
//! so F_β = KL(q‖π_β) = E\[L\] + ln Z_β. The **full** estimator is ∇_θ L exactly (path and score
//! terms, one backward pass). **Sticking the landing** (STL) drops the score term ∂ ln q_θ/∂θ at
//! fixed x: ∇^STL = (1/B) Σ_b (∇_x ln q(x_b) − β ∇ ln π(x_b))ᵀ ∂x_b/∂θ. It needs ∇_x ln q, which
//! is backpropagated through the inverse flow (input gradients only; the inverse pass sees the
//! same MLP activations as the forward pass because x_A passes through each coupling unchanged),
//! then the combined input gradient is backpropagated through the forward pass with the
//! log-determinant term switched off. Both estimators have the same expectation because
//! E_q[∂_θ ln q_θ(x)] = 0.
//!
//! # Parameter layout (θ, flat, f64)
//! For coupling l = 0, …, L−1, for net ∈ (s, t) in that order, for linear layer j = 0, …,
//! depth−1: the weight matrix W (n_out × n_in, **row-major**, i.e. W[o·n_in + i] multiplies
//! input i into output o, as PyTorch's `nn.Linear.weight`), then the bias b (n_out). Layer j
//! computes y = W x + b; n_in = |A_l| for j = 0 else h; n_out = |B_l| for j = depth−1 else h.
//! Batches are row-major B × n matrices, so a layer is Y = X Wᵀ + 1 bᵀ.
//!
//! # Initialisation
//! PyTorch-style: every W and b uniform on ±1/√n_in, except the last layer of each net, whose
//! bound is multiplied by `last_init` (default 0: the flow starts as the identity, q = N(0, σ0² I)).
//!
//! # Precision
//! θ and the optimiser state are f64. The batched forward/backward runs in f32 (fast; the
//! default) or f64 (used by the finite-difference tests); θ is cast at every step.
//!
//! # Files
//! * `arch` — the architecture ([`FlowArch`], masks, activations, precision);
//! * `linalg` — the scalar type of the batched passes and the checked GEMM;
//! * `engine` — the parameter layout, the batched MLP and coupling passes (forward, backward,
//!   inverse) in f32 or f64;
//! * `flow` — the [`RealNvp`] student: initialisation, push-forward, inverse, the
//!   [`VariationalFamily`](super::VariationalFamily) impl;
//! * `loss` — the reverse-KL loss and its gradients (full and STL), [`BatchTarget`];
//! * `stats` — Monte-Carlo evaluation of a flow ([`FlowStats`]).

mod arch;
mod engine;
mod flow;
mod linalg;
mod loss;
mod stats;

pub use arch::{Activation, FlowArch, MaskKind, Precision};
pub use flow::RealNvp;
pub use linalg::Scalar;
#[cfg(feature = "gpu")]
pub(crate) use linalg::gemm_strided;
pub use loss::BatchTarget;
pub use stats::FlowStats;
