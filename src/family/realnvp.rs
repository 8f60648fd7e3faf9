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
//! so F_β = KL(q‖π_β) = E[L] + ln Z_β. The **full** estimator is ∇_θ L exactly (path and score
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

use super::{GroupKind, ParamGroup, VariationalFamily, fill_standard_normal};
use crate::error::{Error, Result};
use crate::objective::Estimator;
use crate::target::IsotropicMixture;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

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

/// Floating-point scalar of the batched passes (f32 or f64).
pub trait Scalar:
    Copy
    + Default
    + Send
    + Sync
    + Debug
    + PartialOrd
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Conversion from f64 (rounding).
    fn from_f64(v: f64) -> Self;
    /// Conversion to f64 (exact).
    fn to_f64(self) -> f64;
    /// eˣ.
    fn exp(self) -> Self;
    /// tanh x.
    fn tanh(self) -> Self;
    /// max(x, 0) (branch-free).
    fn relu(self) -> Self;
    /// x if h > 0 else 0 (branch-free; the ReLU derivative mask).
    fn mask_positive(self, h: Self) -> Self;
    /// C ← α A B + β C for row/column strides (see `matrixmultiply::sgemm`).
    ///
    /// # Safety
    /// The strided extents must lie inside the buffers.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

macro_rules! impl_scalar {
    ($t:ty, $gemm:path) => {
        impl Scalar for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn relu(self) -> Self {
                self.max(0.0)
            }
            #[inline]
            fn mask_positive(self, h: Self) -> Self {
                if h > 0.0 { self } else { 0.0 }
            }
            unsafe fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                // SAFETY: forwarded; the caller checked the extents
                unsafe { $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
            }
        }
    };
}
impl_scalar!(f32, matrixmultiply::sgemm);
impl_scalar!(f64, matrixmultiply::dgemm);

/// How an operand of [`gemm`] is laid out.
#[derive(Clone, Copy)]
enum Op {
    /// Row-major as stored (rows × cols, row stride = cols).
    N,
    /// The transpose of a row-major matrix stored as cols × rows.
    T,
}

/// C (m × n, row-major) ← α op(A) op(B) + β C, with op(A) m × k and op(B) k × n; checks the
/// extents (so the call is safe) and forwards to the GEMM kernel.
#[allow(clippy::too_many_arguments)]
fn gemm<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &[T],
    opa: Op,
    b: &[T],
    opb: Op,
    beta: T,
    c: &mut [T],
) {
    if m == 0 || n == 0 {
        return;
    }
    let (rsa, csa) = match opa {
        Op::N => (k, 1),
        Op::T => (1, m),
    };
    let (rsb, csb) = match opb {
        Op::N => (n, 1),
        Op::T => (1, k),
    };
    assert!(k == 0 || (m - 1) * rsa + (k - 1) * csa < a.len());
    assert!(k == 0 || (k - 1) * rsb + (n - 1) * csb < b.len());
    assert!(m * n <= c.len());
    // SAFETY: the asserts above bound every index the kernel touches
    unsafe {
        T::gemm_raw(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// Offsets of one linear layer in θ.
#[derive(Clone, Copy, Debug)]
struct Lin {
    w: usize,
    b: usize,
    n_in: usize,
    n_out: usize,
}

/// Index sets and parameter offsets derived from a [`FlowArch`].
#[derive(Clone, Debug)]
struct Layout {
    /// Linear layers, index (l·2 + net)·depth + j.
    lins: Vec<Lin>,
    /// Conditioning indices A_l.
    ia: Vec<Vec<usize>>,
    /// Transformed indices B_l.
    ib: Vec<Vec<usize>>,
    n_params: usize,
}

impl Layout {
    fn new(a: &FlowArch) -> Self {
        let d = a.d;
        let (mut ia, mut ib) = (Vec::new(), Vec::new());
        for l in 0..a.layers {
            let cond: Vec<bool> = (0..d)
                .map(|i| match a.mask {
                    MaskKind::Halves => (i < d / 2) == (l % 2 == 0),
                    MaskKind::Checkerboard => (i % 2 == 0) == (l % 2 == 0),
                })
                .collect();
            ia.push((0..d).filter(|&i| cond[i]).collect::<Vec<_>>());
            ib.push((0..d).filter(|&i| !cond[i]).collect::<Vec<_>>());
        }
        let mut lins = Vec::new();
        let mut off = 0;
        for l in 0..a.layers {
            for _net in 0..2 {
                for j in 0..a.depth {
                    let n_in = if j == 0 { ia[l].len() } else { a.width };
                    let n_out = if j + 1 == a.depth {
                        ib[l].len()
                    } else {
                        a.width
                    };
                    lins.push(Lin {
                        w: off,
                        b: off + n_in * n_out,
                        n_in,
                        n_out,
                    });
                    off += n_in * n_out + n_out;
                }
            }
        }
        Layout {
            lins,
            ia,
            ib,
            n_params: off,
        }
    }

    fn lin(&self, depth: usize, l: usize, net: usize, j: usize) -> Lin {
        self.lins[(l * 2 + net) * depth + j]
    }
}

/// Buffers of the batched passes in scalar type T (allocated once per batch size).
#[derive(Clone, Debug)]
struct Engine<T: Scalar> {
    batch: usize,
    /// θ cast to T.
    w: Vec<T>,
    /// ∂L/∂θ in T.
    g: Vec<T>,
    /// x_l for l = 0..=L, each B × d.
    xs: Vec<Vec<T>>,
    /// Gathered x_A per layer, B × |A_l|.
    xa: Vec<Vec<T>>,
    /// Hidden activations per (l, net): (depth − 1) blocks of B × h.
    hid: Vec<Vec<T>>,
    /// tanh(S_l(x_A)) per layer, B × |B_l|.
    st: Vec<Vec<T>>,
    /// exp(s_l) per layer, B × |B_l|.
    es: Vec<Vec<T>>,
    /// Scratch: t output, B × max|B|.
    ot: Vec<T>,
    /// Scratch hidden activations of the inverse pass, (depth − 1) · B × h.
    hid_inv: Vec<T>,
    /// Backward scratch, B × max(h, d).
    dp: Vec<T>,
    dh: Vec<T>,
    /// ∂/∂t and ∂/∂S outputs, B × max|B|.
    dt: Vec<T>,
    dos: Vec<T>,
    /// Gradient w.r.t. x_A, B × max|A|.
    ga: Vec<T>,
    /// Gradient w.r.t. x, B × d.
    gx: Vec<T>,
    /// Σ_l Σ_k s_l,k per sample.
    logdet: Vec<f64>,
}

impl<T: Scalar> Engine<T> {
    fn new(a: &FlowArch, lay: &Layout, batch: usize) -> Self {
        let d = a.d;
        let max_b = lay.ib.iter().map(Vec::len).max().unwrap_or(0);
        let max_a = lay.ia.iter().map(Vec::len).max().unwrap_or(0);
        let wide = a.width.max(d);
        let z = |n: usize| vec![T::ZERO; n];
        Engine {
            batch,
            w: z(lay.n_params),
            g: z(lay.n_params),
            xs: (0..=a.layers).map(|_| z(batch * d)).collect(),
            xa: (0..a.layers).map(|l| z(batch * lay.ia[l].len())).collect(),
            hid: (0..2 * a.layers)
                .map(|_| z((a.depth - 1) * batch * a.width))
                .collect(),
            st: (0..a.layers).map(|l| z(batch * lay.ib[l].len())).collect(),
            es: (0..a.layers).map(|l| z(batch * lay.ib[l].len())).collect(),
            ot: z(batch * max_b),
            hid_inv: z((a.depth - 1) * batch * a.width),
            dp: z(batch * wide),
            dh: z(batch * wide),
            dt: z(batch * max_b),
            dos: z(batch * max_b),
            ga: z(batch * max_a),
            gx: z(batch * d),
            logdet: vec![0.0; batch],
        }
    }

    fn load_params(&mut self, theta: &[f64]) {
        for (w, t) in self.w.iter_mut().zip(theta) {
            *w = T::from_f64(*t);
        }
    }

    /// Forward pass from x_0 = xs[0] (filled by the caller), caching everything the backward
    /// passes need; fills `logdet`.
    fn forward(&mut self, a: &FlowArch, lay: &Layout) {
        let (bsz, d) = (self.batch, a.d);
        let c = T::from_f64(a.scale_bound);
        self.logdet.iter_mut().for_each(|v| *v = 0.0);
        for l in 0..a.layers {
            let (ia, ib) = (&lay.ia[l], &lay.ib[l]);
            let (na, nb) = (ia.len(), ib.len());
            let (lo, hi) = self.xs.split_at_mut(l + 1);
            let (x, y) = (&lo[l], &mut hi[0]);
            let xa = &mut self.xa[l];
            for b in 0..bsz {
                for (k, &i) in ia.iter().enumerate() {
                    xa[b * na + k] = x[b * d + i];
                }
            }
            let st = &mut self.st[l];
            net_forward(a, lay, &self.w, l, 0, bsz, xa, &mut self.hid[2 * l], st);
            let ot = &mut self.ot[..bsz * nb];
            net_forward(a, lay, &self.w, l, 1, bsz, xa, &mut self.hid[2 * l + 1], ot);
            let es = &mut self.es[l];
            y.copy_from_slice(x);
            for b in 0..bsz {
                let mut sum = T::ZERO;
                for (k, &i) in ib.iter().enumerate() {
                    let u = st[b * nb + k].tanh();
                    st[b * nb + k] = u;
                    let s = c * u;
                    sum += s;
                    let e = s.exp();
                    es[b * nb + k] = e;
                    y[b * d + i] = x[b * d + i] * e + ot[b * nb + k];
                }
                self.logdet[b] += sum.to_f64();
            }
        }
    }

    /// Backward pass through the cached forward pass. On entry `gx` = ∂L/∂x_L; the parameter
    /// gradient is written into `g` (every entry). `logdet_coef` is ∂L/∂s_l,k from the −logdet term
    /// (−1/B for the full estimator, 0 when L depends on the samples only through x_L).
    fn backward(&mut self, a: &FlowArch, lay: &Layout, logdet_coef: T) {
        let (bsz, d) = (self.batch, a.d);
        let c = T::from_f64(a.scale_bound);
        for l in (0..a.layers).rev() {
            let (ia, ib) = (&lay.ia[l], &lay.ib[l]);
            let (na, nb) = (ia.len(), ib.len());
            let x = &self.xs[l];
            let (st, es) = (&self.st[l], &self.es[l]);
            let g = &mut self.gx;
            let dt = &mut self.dt[..bsz * nb];
            let dos = &mut self.dos[..bsz * nb];
            for b in 0..bsz {
                for (k, &i) in ib.iter().enumerate() {
                    let gb = g[b * d + i];
                    let e = es[b * nb + k];
                    let u = st[b * nb + k];
                    dt[b * nb + k] = gb;
                    let ds = gb * x[b * d + i] * e + logdet_coef;
                    dos[b * nb + k] = ds * c * (T::ONE - u * u);
                    g[b * d + i] = gb * e;
                }
            }
            let want_in = l > 0;
            let ga = &mut self.ga[..bsz * na];
            if want_in {
                for b in 0..bsz {
                    for (k, &i) in ia.iter().enumerate() {
                        ga[b * na + k] = g[b * d + i];
                    }
                }
            }
            for (net, dout) in [(1usize, &*dt), (0, &*dos)] {
                net_backward(
                    a,
                    lay,
                    &self.w,
                    Some(&mut self.g),
                    l,
                    net,
                    bsz,
                    &self.xa[l],
                    &self.hid[2 * l + net],
                    dout,
                    &mut self.dp,
                    &mut self.dh,
                    if want_in { Some(&mut *ga) } else { None },
                );
            }
            if want_in {
                for b in 0..bsz {
                    for (k, &i) in ia.iter().enumerate() {
                        g[b * d + i] = ga[b * na + k];
                    }
                }
            }
        }
    }

    /// ∇_x ln q(x_L) into `gx`, by backpropagating through the inverse flow (input gradients
    /// only) from ∇_z ln N(z; 0, σ0² I) = −z/σ0² (needs a cached forward pass).
    fn grad_x_log_q(&mut self, a: &FlowArch, lay: &Layout) {
        let (bsz, d) = (self.batch, a.d);
        let c = T::from_f64(a.scale_bound);
        let inv_var = T::from_f64(1.0 / (a.sigma0 * a.sigma0));
        for (u, z) in self.gx.iter_mut().zip(&self.xs[0]) {
            *u = -*z * inv_var;
        }
        for l in 0..a.layers {
            let (ia, ib) = (&lay.ia[l], &lay.ib[l]);
            let (na, nb) = (ia.len(), ib.len());
            let x = &self.xs[l];
            let (st, es) = (&self.st[l], &self.es[l]);
            let u = &mut self.gx;
            let dt = &mut self.dt[..bsz * nb];
            let dos = &mut self.dos[..bsz * nb];
            // inverse coupling: x_B = (y_B − t) e^{−s}, ln|det| = −Σ s
            for b in 0..bsz {
                for (k, &i) in ib.iter().enumerate() {
                    let ub = u[b * d + i];
                    let e = es[b * nb + k];
                    let w = st[b * nb + k];
                    let ue = ub / e;
                    dt[b * nb + k] = -ue;
                    let ds = -ub * x[b * d + i] - T::ONE;
                    dos[b * nb + k] = ds * c * (T::ONE - w * w);
                    u[b * d + i] = ue;
                }
            }
            let ga = &mut self.ga[..bsz * na];
            for b in 0..bsz {
                for (k, &i) in ia.iter().enumerate() {
                    ga[b * na + k] = u[b * d + i];
                }
            }
            for (net, dout) in [(1usize, &*dt), (0, &*dos)] {
                net_backward(
                    a,
                    lay,
                    &self.w,
                    None,
                    l,
                    net,
                    bsz,
                    &self.xa[l],
                    &self.hid[2 * l + net],
                    dout,
                    &mut self.dp,
                    &mut self.dh,
                    Some(&mut *ga),
                );
            }
            for b in 0..bsz {
                for (k, &i) in ia.iter().enumerate() {
                    u[b * d + i] = ga[b * na + k];
                }
            }
        }
    }

    /// Inverse pass: z = f^{-1}(x) for x in `gx` (B × d, overwritten by z); returns through
    /// `logdet` Σ s (so ln q(x) = ln N(z) − logdet). Does not touch the forward cache.
    fn inverse(&mut self, a: &FlowArch, lay: &Layout) {
        let (bsz, d) = (self.batch, a.d);
        let c = T::from_f64(a.scale_bound);
        self.logdet.iter_mut().for_each(|v| *v = 0.0);
        for l in (0..a.layers).rev() {
            let (ia, ib) = (&lay.ia[l], &lay.ib[l]);
            let (na, nb) = (ia.len(), ib.len());
            let y = &mut self.gx;
            let xa = &mut self.ga[..bsz * na];
            for b in 0..bsz {
                for (k, &i) in ia.iter().enumerate() {
                    xa[b * na + k] = y[b * d + i];
                }
            }
            let so = &mut self.dos[..bsz * nb];
            net_forward(a, lay, &self.w, l, 0, bsz, xa, &mut self.hid_inv, so);
            let ot = &mut self.ot[..bsz * nb];
            net_forward(a, lay, &self.w, l, 1, bsz, xa, &mut self.hid_inv, ot);
            for b in 0..bsz {
                let mut sum = T::ZERO;
                for (k, &i) in ib.iter().enumerate() {
                    let s = c * so[b * nb + k].tanh();
                    sum += s;
                    y[b * d + i] = (y[b * d + i] - ot[b * nb + k]) * (-s).exp();
                }
                self.logdet[b] += sum.to_f64();
            }
        }
    }
}

/// Forward through one MLP (l, net): out (B × n_out) from input (B × n_in); hidden
/// activations are kept in `hid` ((depth − 1) blocks of B × h).
#[allow(clippy::too_many_arguments)]
fn net_forward<T: Scalar>(
    a: &FlowArch,
    lay: &Layout,
    w: &[T],
    l: usize,
    net: usize,
    bsz: usize,
    input: &[T],
    hid: &mut [T],
    out: &mut [T],
) {
    let bw = bsz * a.width;
    for j in 0..a.depth {
        let lin = lay.lin(a.depth, l, net, j);
        let (left, right) = hid.split_at_mut(j * bw);
        let inp: &[T] = if j == 0 {
            input
        } else {
            &left[(j - 1) * bw..j * bw]
        };
        let o: &mut [T] = if j + 1 == a.depth {
            &mut out[..bsz * lin.n_out]
        } else {
            &mut right[..bw]
        };
        let bias = &w[lin.b..lin.b + lin.n_out];
        for row in o.chunks_exact_mut(lin.n_out) {
            row.copy_from_slice(bias);
        }
        gemm(
            bsz,
            lin.n_in,
            lin.n_out,
            T::ONE,
            &inp[..bsz * lin.n_in],
            Op::N,
            &w[lin.w..lin.b],
            Op::T,
            T::ONE,
            o,
        );
        if j + 1 < a.depth {
            match a.activation {
                Activation::Relu => o.iter_mut().for_each(|v| *v = v.relu()),
                Activation::Tanh => o.iter_mut().for_each(|v| *v = v.tanh()),
            }
        }
    }
}

/// Backward through one MLP given ∂/∂out (B × n_out): accumulates weight and bias gradients
/// into `grad` (if given) and ∂/∂input into `din` (if given, added to its contents).
#[allow(clippy::too_many_arguments)]
fn net_backward<T: Scalar>(
    a: &FlowArch,
    lay: &Layout,
    w: &[T],
    mut grad: Option<&mut [T]>,
    l: usize,
    net: usize,
    bsz: usize,
    input: &[T],
    hid: &[T],
    dout: &[T],
    dp: &mut [T],
    dh: &mut [T],
    din: Option<&mut [T]>,
) {
    let bw = bsz * a.width;
    let (mut cur_buf, mut nxt_buf) = (dp, dh);
    let mut din = din;
    for j in (0..a.depth).rev() {
        let lin = lay.lin(a.depth, l, net, j);
        let cur: &[T] = if j + 1 == a.depth {
            &dout[..bsz * lin.n_out]
        } else {
            &cur_buf[..bsz * lin.n_out]
        };
        let inp: &[T] = if j == 0 {
            &input[..bsz * lin.n_in]
        } else {
            &hid[(j - 1) * bw..j * bw]
        };
        if let Some(g) = grad.as_deref_mut() {
            // ∂W = curᵀ · inp  (n_out × n_in); written, not accumulated: each linear layer
            // appears once in a backward pass
            gemm(
                lin.n_out,
                bsz,
                lin.n_in,
                T::ONE,
                cur,
                Op::T,
                inp,
                Op::N,
                T::ZERO,
                &mut g[lin.w..lin.b],
            );
            let gb = &mut g[lin.b..lin.b + lin.n_out];
            gb.iter_mut().for_each(|v| *v = T::ZERO);
            for row in cur.chunks_exact(lin.n_out) {
                for (s, v) in gb.iter_mut().zip(row) {
                    *s += *v;
                }
            }
        }
        let wm = &w[lin.w..lin.b];
        if j > 0 {
            let nx = &mut nxt_buf[..bw];
            gemm(
                bsz,
                lin.n_out,
                lin.n_in,
                T::ONE,
                cur,
                Op::N,
                wm,
                Op::N,
                T::ZERO,
                nx,
            );
            match a.activation {
                Activation::Relu => {
                    for (v, h) in nx.iter_mut().zip(inp) {
                        *v = v.mask_positive(*h);
                    }
                }
                Activation::Tanh => {
                    for (v, h) in nx.iter_mut().zip(inp) {
                        *v = *v * (T::ONE - *h * *h);
                    }
                }
            }
            std::mem::swap(&mut cur_buf, &mut nxt_buf);
        } else if let Some(di) = din.as_deref_mut() {
            gemm(
                bsz,
                lin.n_out,
                lin.n_in,
                T::ONE,
                cur,
                Op::N,
                wm,
                Op::N,
                T::ONE,
                &mut di[..bsz * lin.n_in],
            );
        }
    }
}

#[derive(Clone, Debug)]
enum AnyEngine {
    F32(Box<Engine<f32>>),
    F64(Box<Engine<f64>>),
}

/// Dispatches `$body` on the engine's scalar type with `$e` bound to the engine.
macro_rules! with_engine {
    ($self:expr, $e:ident => $body:expr) => {
        match &mut $self.engine {
            AnyEngine::F32($e) => $body,
            AnyEngine::F64($e) => $body,
        }
    };
}

/// The RealNVP student (see the module docs).
#[derive(Clone, Debug)]
pub struct RealNvp {
    arch: FlowArch,
    layout: Layout,
    theta: Vec<f64>,
    engine: AnyEngine,
    /// Target-gradient scratch (d) and component-log scratch.
    xrow: Vec<f64>,
    grow: Vec<f64>,
    comp: Vec<f64>,
    /// Batch buffers of a caller's target ([`BatchTarget`]).
    scratch: BatchScratch,
    /// The f32 engine's copy of θ is current (written by [`RealNvp::fused_update`]), so the
    /// next training pass skips the cast. Cleared by `params_mut`.
    w_synced: bool,
    /// The f32 engine holds the gradient of the last deferred pass, not yet copied out.
    grad_pending: bool,
    /// Finiteness of θ found by the last fused update (None: unknown, scan θ).
    finite_cache: Option<bool>,
}

/// A target evaluated by the caller on a whole batch: `target(x, log_prob, grad)` receives the
/// n samples x (n × d, row-major, f64) and fills `log_prob` (n) with ln π(x_b) and `grad`
/// (n × d, row-major) with ∇_x ln π(x_b), for an unnormalised π (nats). Returning `Err` ends
/// the pass that called it, and the error reaches that pass's caller unchanged (e.g. an
/// exception of a Python callable). Used by [`RealNvp::loss_and_grad_batched`] and
/// [`RealNvp::evaluate_batched`] in place of the built-in [`IsotropicMixture`].
pub type BatchTarget<'a, E> =
    dyn FnMut(&[f64], &mut [f64], &mut [f64]) -> std::result::Result<(), E> + 'a;

/// Where a pass takes ln π and ∇ ln π from.
enum TargetSource<'a, 'b, E> {
    /// The built-in mixture, sample by sample.
    Mixture(&'a IsotropicMixture),
    /// A caller's batch evaluation.
    Batch(&'a mut BatchTarget<'b, E>),
}

/// Reusable buffers of a [`BatchTarget`] call: x (n × d), ln π (n), ∇ ln π (n × d).
#[derive(Clone, Debug, Default)]
struct BatchScratch {
    x: Vec<f64>,
    lp: Vec<f64>,
    g: Vec<f64>,
}

impl BatchScratch {
    fn resize(&mut self, n: usize, d: usize) {
        self.x.resize(n * d, 0.0);
        self.lp.resize(n, 0.0);
        self.g.resize(n * d, 0.0);
    }
}

/// ∇ ln π(x) into `grad` and ln π(x) for an isotropic mixture, without allocating.
fn target_grad(t: &IsotropicMixture, x: &[f64], grad: &mut [f64], comp: &mut [f64]) -> f64 {
    let d = x.len() as f64;
    let ln2pi = (2.0 * std::f64::consts::PI).ln();
    let (means, vars, lw) = (t.means(), t.variances(), t.log_weights());
    for j in 0..means.len() {
        let dist2 = x
            .iter()
            .zip(&means[j])
            .map(|(a, b)| (a - b) * (a - b))
            .sum::<f64>();
        comp[j] = lw[j] - 0.5 * d * (ln2pi + vars[j].ln()) - 0.5 * dist2 / vars[j];
    }
    let lse = crate::target::log_sum_exp(&comp[..means.len()]);
    grad.iter_mut().for_each(|g| *g = 0.0);
    for j in 0..means.len() {
        let r = (comp[j] - lse).exp() / vars[j];
        for ((g, m), xi) in grad.iter_mut().zip(&means[j]).zip(x) {
            *g += r * (m - xi);
        }
    }
    lse
}

impl RealNvp {
    /// A flow with PyTorch-style initialisation drawn from `rng` (see the module docs).
    pub fn new<R: Rng + ?Sized>(arch: FlowArch, precision: Precision, rng: &mut R) -> Result<Self> {
        arch.validate("student.realnvp")?;
        let layout = Layout::new(&arch);
        let mut theta = vec![0.0; layout.n_params];
        for (idx, lin) in layout.lins.iter().enumerate() {
            let last = idx % arch.depth == arch.depth - 1;
            let bound = (1.0 / (lin.n_in as f64).sqrt()) * if last { arch.last_init } else { 1.0 };
            for v in &mut theta[lin.w..lin.b + lin.n_out] {
                *v = if bound > 0.0 {
                    rng.gen_range(-bound..bound)
                } else {
                    0.0
                };
            }
        }
        let engine = match precision {
            Precision::F32 => AnyEngine::F32(Box::new(Engine::new(&arch, &layout, 1))),
            Precision::F64 => AnyEngine::F64(Box::new(Engine::new(&arch, &layout, 1))),
        };
        let comps = 16;
        Ok(RealNvp {
            xrow: vec![0.0; arch.d],
            grow: vec![0.0; arch.d],
            comp: vec![0.0; comps],
            scratch: BatchScratch::default(),
            arch,
            layout,
            theta,
            engine,
            w_synced: false,
            grad_pending: false,
            finite_cache: None,
        })
    }

    /// The architecture.
    pub fn arch(&self) -> &FlowArch {
        &self.arch
    }

    /// The precision of the batched passes.
    pub fn precision(&self) -> Precision {
        match self.engine {
            AnyEngine::F32(_) => Precision::F32,
            AnyEngine::F64(_) => Precision::F64,
        }
    }

    /// Whether every parameter is finite.
    pub fn is_finite(&self) -> bool {
        self.finite_cache
            .unwrap_or_else(|| self.theta.iter().all(|v| v.is_finite()))
    }

    /// Offset and shape (n_out, n_in) of linear layer j of net (0 = s, 1 = t) in coupling l:
    /// W at θ[off..off + n_out·n_in] (row-major), then b (n_out).
    pub fn linear_offset(&self, l: usize, net: usize, j: usize) -> (usize, usize, usize) {
        let lin = self.layout.lin(self.arch.depth, l, net, j);
        (lin.w, lin.n_out, lin.n_in)
    }

    fn ensure_batch(&mut self, n: usize) {
        let (arch, lay) = (&self.arch, &self.layout);
        // the parameter copy and a pending gradient survive a change of batch size
        macro_rules! rebatch {
            ($e:expr) => {{
                let (w, g) = (std::mem::take(&mut $e.w), std::mem::take(&mut $e.g));
                **$e = Engine::new(arch, lay, n);
                $e.w = w;
                $e.g = g;
            }};
        }
        match &mut self.engine {
            AnyEngine::F32(e) if e.batch != n => rebatch!(e),
            AnyEngine::F64(e) if e.batch != n => rebatch!(e),
            _ => {}
        }
    }

    fn ln_base(&self, z2: f64) -> f64 {
        let (d, s0) = (self.arch.d as f64, self.arch.sigma0);
        -0.5 * d * (2.0 * std::f64::consts::PI * s0 * s0).ln() - 0.5 * z2 / (s0 * s0)
    }

    /// Pushes standard-normal noise ε (n × d, row-major) through the flow: x = f(σ0 ε) into
    /// `x` (n × d) and ln q(x) into `log_q` (n).
    pub fn push_forward(&mut self, eps: &[f64], x: &mut [f64], log_q: &mut [f64]) {
        let d = self.arch.d;
        let n = eps.len() / d;
        self.ensure_batch(n);
        let s0 = self.arch.sigma0;
        let theta = &self.theta;
        let (arch, lay) = (&self.arch, &self.layout);
        with_engine!(self, e => {
            e.load_params(theta);
            for (v, z) in e.xs[0].iter_mut().zip(eps) {
                *v = Scalar::from_f64(s0 * z);
            }
            e.forward(arch, lay);
            for (o, v) in x.iter_mut().zip(&e.xs[arch.layers]) {
                *o = v.to_f64();
            }
        });
        for b in 0..n {
            let z2: f64 = eps[b * d..(b + 1) * d]
                .iter()
                .map(|v| s0 * s0 * v * v)
                .sum();
            let ld = with_engine!(self, e => e.logdet[b]);
            log_q[b] = self.ln_base(z2) - ld;
        }
    }

    /// The inverse: z = f^{-1}(x) for x (n × d) into `z`, and ln q(x) into `log_q`.
    pub fn inverse(&mut self, x: &[f64], z: &mut [f64], log_q: &mut [f64]) {
        let d = self.arch.d;
        let n = x.len() / d;
        self.ensure_batch(n);
        let theta = &self.theta;
        let (arch, lay) = (&self.arch, &self.layout);
        with_engine!(self, e => {
            e.load_params(theta);
            for (v, xi) in e.gx.iter_mut().zip(x) {
                *v = Scalar::from_f64(*xi);
            }
            e.inverse(arch, lay);
            for (o, v) in z.iter_mut().zip(&e.gx) {
                *o = v.to_f64();
            }
        });
        for b in 0..n {
            let z2: f64 = z[b * d..(b + 1) * d].iter().map(|v| v * v).sum();
            let ld = with_engine!(self, e => e.logdet[b]);
            // ln q(x) = ln N(z) + ln|det ∂z/∂x| = ln N(z) − Σ s
            log_q[b] = self.ln_base(z2) - ld;
        }
    }

    /// The reverse-KL loss L = (1/B) Σ_b [ln q(x_b) − β ln π(x_b)] (nats) on the batch given by
    /// standard-normal noise ε (B × d), and its gradient (full or STL; `Exact` is treated as
    /// full) into `grad` (length = number of parameters).
    pub fn loss_and_grad_from_noise(
        &mut self,
        target: &IsotropicMixture,
        beta: f64,
        estimator: Estimator,
        eps: &[f64],
        grad: &mut [f64],
    ) -> f64 {
        self.loss_and_grad_inner(target, beta, estimator, eps, Some(grad))
    }

    /// The pass behind [`Self::loss_and_grad_from_noise`]; with `grad = None` the gradient
    /// stays in the engine for [`Self::fused_update`].
    fn loss_and_grad_inner(
        &mut self,
        target: &IsotropicMixture,
        beta: f64,
        estimator: Estimator,
        eps: &[f64],
        grad: Option<&mut [f64]>,
    ) -> f64 {
        let source = TargetSource::<std::convert::Infallible>::Mixture(target);
        match self.loss_and_grad_core(source, beta, estimator, eps, grad) {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// The reverse-KL pass against either target source: the built-in mixture is evaluated
    /// sample by sample, a caller's [`BatchTarget`] once on the whole batch (its error ends
    /// the pass before the backward pass).
    fn loss_and_grad_core<E>(
        &mut self,
        mut target: TargetSource<'_, '_, E>,
        beta: f64,
        estimator: Estimator,
        eps: &[f64],
        grad: Option<&mut [f64]>,
    ) -> std::result::Result<f64, E> {
        let d = self.arch.d;
        let synced = std::mem::take(&mut self.w_synced);
        self.grad_pending = grad.is_none();
        let bsz = eps.len() / d;
        self.ensure_batch(bsz);
        if let TargetSource::Mixture(t) = &target
            && self.comp.len() < t.means().len()
        {
            self.comp = vec![0.0; t.means().len()];
        }
        let s0 = self.arch.sigma0;
        let stl = estimator == Estimator::Stl;
        let inv_b = 1.0 / bsz as f64;
        let theta = &self.theta;
        let (arch, lay) = (&self.arch, &self.layout);
        let (xrow, grow, comp) = (&mut self.xrow, &mut self.grow, &mut self.comp);
        let scratch = &mut self.scratch;
        let mut total = 0.0;
        with_engine!(self, e => {
            if !synced {
                e.load_params(theta);
            }
            for (v, z) in e.xs[0].iter_mut().zip(eps) {
                *v = Scalar::from_f64(s0 * z);
            }
            e.forward(arch, lay);
            if stl {
                e.grad_x_log_q(arch, lay);
            }
            let xl = &e.xs[arch.layers];
            if let TargetSource::Batch(f) = &mut target {
                scratch.resize(bsz, d);
                for (o, v) in scratch.x.iter_mut().zip(&xl[..bsz * d]) {
                    *o = v.to_f64();
                }
                f(&scratch.x, &mut scratch.lp, &mut scratch.g)?;
            }
            for b in 0..bsz {
                let (lp, gp): (f64, &[f64]) = match &target {
                    TargetSource::Mixture(t) => {
                        for (o, v) in xrow.iter_mut().zip(&xl[b * d..(b + 1) * d]) {
                            *o = v.to_f64();
                        }
                        (target_grad(t, xrow, grow, comp), &grow[..])
                    }
                    TargetSource::Batch(_) => (scratch.lp[b], &scratch.g[b * d..(b + 1) * d]),
                };
                let z2: f64 = eps[b * d..(b + 1) * d].iter().map(|v| s0 * s0 * v * v).sum();
                let d_f = d as f64;
                let lnp0 = -0.5 * d_f * (2.0 * std::f64::consts::PI * s0 * s0).ln()
                    - 0.5 * z2 / (s0 * s0);
                total += lnp0 - e.logdet[b] - beta * lp;
                let gx = &mut e.gx[b * d..(b + 1) * d];
                for (gv, gp) in gx.iter_mut().zip(gp.iter()) {
                    let base = if stl { gv.to_f64() } else { 0.0 };
                    *gv = Scalar::from_f64((base - beta * gp) * inv_b);
                }
            }
            let coef = if stl { 0.0 } else { -inv_b };
            e.backward(arch, lay, Scalar::from_f64(coef));
            if let Some(grad) = grad {
                for (o, v) in grad.iter_mut().zip(&e.g) {
                    *o = v.to_f64();
                }
            }
        });
        Ok(total * inv_b)
    }

    /// [`Self::loss_and_grad`] against a target evaluated by the caller: the same noise (ε
    /// drawn from `rng` into `eps`, B × d), the same loss and gradient (full or STL; `Exact`
    /// is treated as full) into `grad`, with ln π and ∇ ln π of the whole batch x = f(σ0 ε)
    /// taken from one call of `target` (see [`BatchTarget`]). With a `target` that returns
    /// the built-in mixture's values, the numbers are those of [`Self::loss_and_grad`]. An
    /// error of `target` is returned as is (θ and the optimiser are untouched).
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_grad_batched<R: Rng + ?Sized, E>(
        &mut self,
        target: &mut BatchTarget<'_, E>,
        beta: f64,
        estimator: Estimator,
        batch: usize,
        rng: &mut R,
        eps: &mut Vec<f64>,
        grad: &mut [f64],
    ) -> std::result::Result<f64, E> {
        self.draw_noise(batch, rng, eps);
        self.loss_and_grad_core(
            TargetSource::Batch(target),
            beta,
            estimator,
            eps,
            Some(grad),
        )
    }

    /// Like [`Self::loss_and_grad`] for the training loop: with the f32 engine the gradient
    /// is left in the engine (and `grad` untouched) for [`Self::fused_update`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn loss_and_grad_deferred<R: Rng + ?Sized>(
        &mut self,
        target: &IsotropicMixture,
        beta: f64,
        estimator: Estimator,
        batch: usize,
        rng: &mut R,
        eps: &mut Vec<f64>,
        grad: &mut [f64],
    ) -> f64 {
        self.draw_noise(batch, rng, eps);
        let defer = matches!(self.engine, AnyEngine::F32(_));
        self.loss_and_grad_inner(target, beta, estimator, eps, (!defer).then_some(grad))
    }

    /// The optimiser step on the gradient left in the f32 engine by the last deferred pass
    /// ([`Optimizer::step_mixed`]: θ updated in f64 and rounded into the engine's copy in one
    /// pass, the results of the unfused path bit for bit). `None` when no such gradient is
    /// pending (the caller then uses its f64 gradient); `Some(false)` when the gradient is
    /// not finite (θ untouched).
    pub(crate) fn fused_update(
        &mut self,
        opt: &mut dyn crate::optim::Optimizer,
        groups: &[ParamGroup],
        scale: f64,
    ) -> Option<bool> {
        if !std::mem::take(&mut self.grad_pending) {
            return None;
        }
        let AnyEngine::F32(e) = &mut self.engine else {
            return None;
        };
        if e.g.iter().any(|g| !g.is_finite()) {
            return Some(false);
        }
        let finite = opt.step_mixed(&mut self.theta, &e.g, &mut e.w, groups, scale);
        self.finite_cache = Some(finite);
        self.w_synced = true;
        Some(true)
    }

    /// Draws ε ~ N(0, I) (B × d) from `rng` and calls [`Self::loss_and_grad_from_noise`];
    /// `eps` is a reusable buffer.
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_grad<R: Rng + ?Sized>(
        &mut self,
        target: &IsotropicMixture,
        beta: f64,
        estimator: Estimator,
        batch: usize,
        rng: &mut R,
        eps: &mut Vec<f64>,
        grad: &mut [f64],
    ) -> f64 {
        self.draw_noise(batch, rng, eps);
        self.loss_and_grad_from_noise(target, beta, estimator, eps, grad)
    }

    /// ε ~ N(0, I), B × d, into the reusable buffer `eps` (the training loop's noise).
    fn draw_noise<R: Rng + ?Sized>(&self, batch: usize, rng: &mut R, eps: &mut Vec<f64>) {
        eps.resize(batch * self.arch.d, 0.0);
        fill_standard_normal(rng, eps);
    }
}

impl VariationalFamily for RealNvp {
    fn dim(&self) -> usize {
        self.arch.d
    }
    fn params(&self) -> &[f64] {
        &self.theta
    }
    fn params_mut(&mut self) -> &mut [f64] {
        self.w_synced = false;
        self.finite_cache = None;
        &mut self.theta
    }
    fn groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup {
            kind: GroupKind::Network,
            range: 0..self.theta.len(),
            trainable: true,
        }]
    }
    /// ln q(x) through the inverse (f64 work copy; not for hot loops).
    fn log_density(&self, x: &[f64]) -> f64 {
        let mut c = self.clone();
        let mut z = vec![0.0; x.len()];
        let mut lq = [0.0];
        c.inverse(x, &mut z, &mut lq);
        lq[0]
    }
    fn sample(&self, rng: &mut dyn rand::RngCore, x: &mut [f64]) {
        let mut c = self.clone();
        let mut eps = vec![0.0; self.arch.d];
        fill_standard_normal(rng, &mut eps);
        let mut lq = [0.0];
        c.push_forward(&eps, x, &mut lq);
    }
}

/// Monte-Carlo summary of a flow against the target, from N samples x_i ~ q (nats).
///
/// * mode masses: the fraction of samples in each target mode's basin — for the bimodal
///   target the half-spaces x·μ̂ > 0 (heavy, +μ*) and x·μ̂ < 0 (light); otherwise the nearest
///   target mean (Euclidean);
/// * `light_mode_mass`: the lightest mode's estimated mass (true value 1 − w* for the bimodal
///   target), standard error ≈ √(m(1−m)/N);
/// * `mode_weight_error` = |light_mode_mass − ω_light|;
/// * `ess_fraction` = (Σ w_i)² / (N Σ w_i²) with w_i = π(x_i)/q(x_i) (importance-sampling
///   effective sample size over N, in (0, 1]; 1 when q = π);
/// * `kl` = (1/N) Σ [ln q(x_i) − ln π(x_i)] + ln Z, with the target's known normaliser
///   (ln Z = 0 for the normalised mixture): an unbiased estimate of KL(q‖π);
/// * `neg_elbo` = (1/N) Σ [ln q(x_i) − β ln π(x_i)].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FlowStats {
    /// Estimated mass on the lightest target mode.
    pub light_mode_mass: f64,
    /// |light_mode_mass − true weight of the lightest mode|.
    pub mode_weight_error: f64,
    /// Importance-sampling ESS / N.
    pub ess_fraction: f64,
    /// KL(q‖π) estimate (nats).
    pub kl: f64,
    /// E_q[ln q − β ln π] estimate (nats).
    pub neg_elbo: f64,
    /// Estimated mass of each target mode.
    pub mode_masses: Vec<f64>,
    /// Collapse threshold used by [`FlowStats::outcome`].
    pub collapse_threshold: f64,
    /// N.
    pub samples: usize,
}

impl FlowStats {
    /// All-NaN statistics (diverged runs).
    pub fn nan() -> Self {
        FlowStats {
            light_mode_mass: f64::NAN,
            mode_weight_error: f64::NAN,
            ess_fraction: f64::NAN,
            kl: f64::NAN,
            neg_elbo: f64::NAN,
            mode_masses: Vec::new(),
            collapse_threshold: f64::NAN,
            samples: 0,
        }
    }

    /// The outcome: a mode counts as covered when its estimated mass is at least the collapse
    /// threshold; all covered → covered, exactly one → collapsed onto it, else partial.
    pub fn outcome(&self, target: &IsotropicMixture) -> crate::metrics::Outcome {
        let bimodal = target.as_bimodal().is_some();
        self.outcome_named(|mode| {
            if bimodal {
                if target.weights()[mode] >= 0.5 {
                    "heavy"
                } else {
                    "light"
                }
                .to_string()
            } else {
                format!("mode {mode}")
            }
        })
    }

    /// [`Self::outcome`] with the modes named by `name(index)` (for targets other than the
    /// built-in mixtures).
    pub fn outcome_named(&self, name: impl Fn(usize) -> String) -> crate::metrics::Outcome {
        use crate::metrics::Outcome;
        if !self.kl.is_finite() && self.samples == 0 {
            return Outcome::Diverged { step: 0 };
        }
        let covered: Vec<usize> = (0..self.mode_masses.len())
            .filter(|&j| self.mode_masses[j] >= self.collapse_threshold)
            .collect();
        if covered.len() == self.mode_masses.len() {
            Outcome::Covered
        } else if covered.len() == 1 {
            let mode = covered[0];
            Outcome::Collapsed {
                mode,
                mode_name: name(mode),
            }
        } else {
            Outcome::Partial {
                modes_covered: covered.len(),
            }
        }
    }
}

impl RealNvp {
    /// Monte-Carlo statistics from `n` samples drawn with `rng` (see [`FlowStats`]); samples
    /// are pushed through in chunks of the current batch size (no reallocation during training).
    pub fn evaluate<R: Rng + ?Sized>(
        &mut self,
        target: &IsotropicMixture,
        beta: f64,
        n: usize,
        collapse_threshold: f64,
        rng: &mut R,
    ) -> FlowStats {
        let d = self.arch.d;
        let n = n.max(1);
        let cur = with_engine!(self, e => e.batch);
        let chunk = if cur > 1 { cur } else { n.min(256) };
        let jm = target.means().len();
        if self.comp.len() < jm {
            self.comp = vec![0.0; jm];
        }
        let mut counts = vec![0usize; jm];
        let (mut eps, mut x, mut lq) =
            (vec![0.0; chunk * d], vec![0.0; chunk * d], vec![0.0; chunk]);
        let mut log_w = Vec::with_capacity(n);
        let (mut kl, mut ne) = (0.0, 0.0);
        let bimodal = target.as_bimodal().is_some();
        let mut done = 0;
        while done < n {
            fill_standard_normal(rng, &mut eps);
            self.push_forward(&eps, &mut x, &mut lq);
            let take = chunk.min(n - done);
            for b in 0..take {
                let xb = &x[b * d..(b + 1) * d];
                let lp = target_grad(target, xb, &mut self.grow, &mut self.comp);
                kl += lq[b] - lp;
                ne += lq[b] - beta * lp;
                log_w.push(lp - lq[b]);
                let mode = if bimodal {
                    let s = super::gmm::dot(xb, target.axis());
                    if s >= 0.0 { 0 } else { 1 }
                } else {
                    (0..jm)
                        .min_by(|&a, &c| {
                            let da: f64 = xb
                                .iter()
                                .zip(&target.means()[a])
                                .map(|(u, v)| (u - v) * (u - v))
                                .sum();
                            let dc: f64 = xb
                                .iter()
                                .zip(&target.means()[c])
                                .map(|(u, v)| (u - v) * (u - v))
                                .sum();
                            da.total_cmp(&dc)
                        })
                        .unwrap_or(0)
                };
                counts[mode] += 1;
            }
            done += take;
        }
        let nf = n as f64;
        let mode_masses: Vec<f64> = counts.iter().map(|&c| c as f64 / nf).collect();
        let light = target.lightest_mode();
        let mx = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let (mut s1, mut s2) = (0.0, 0.0);
        for lw in &log_w {
            let w = (lw - mx).exp();
            s1 += w;
            s2 += w * w;
        }
        let ln_z = 0.0; // the mixture is normalised
        FlowStats {
            light_mode_mass: mode_masses[light],
            mode_weight_error: (mode_masses[light] - target.weights()[light]).abs(),
            ess_fraction: if s2 > 0.0 {
                s1 * s1 / (s2 * nf)
            } else {
                f64::NAN
            },
            kl: kl / nf + ln_z,
            neg_elbo: ne / nf,
            mode_masses,
            collapse_threshold,
            samples: n,
        }
    }
    /// [`Self::evaluate`] against a target evaluated by the caller (see [`BatchTarget`]),
    /// whose modes are given by their centres `modes` (possibly none): the same draws from
    /// `rng` in the same chunks, each chunk's samples evaluated by one call of `target`. A
    /// sample belongs to the mode of the nearest centre (Euclidean); `light_mode_mass` is the
    /// smallest mode mass (NaN without modes). The target's normaliser and mode weights are
    /// unknown, so `kl` and `mode_weight_error` are NaN; `neg_elbo` = (1/N) Σ [ln q − β ln π]
    /// against the unnormalised π, and the ESS fraction does not depend on the normaliser.
    #[allow(clippy::too_many_arguments)]
    pub fn evaluate_batched<R: Rng + ?Sized, E>(
        &mut self,
        target: &mut BatchTarget<'_, E>,
        modes: &[Vec<f64>],
        beta: f64,
        n: usize,
        collapse_threshold: f64,
        rng: &mut R,
    ) -> std::result::Result<FlowStats, E> {
        let d = self.arch.d;
        let n = n.max(1);
        let cur = with_engine!(self, e => e.batch);
        let chunk = if cur > 1 { cur } else { n.min(256) };
        let mut counts = vec![0usize; modes.len()];
        let (mut eps, mut x, mut lq) =
            (vec![0.0; chunk * d], vec![0.0; chunk * d], vec![0.0; chunk]);
        let (mut lp, mut gp) = (vec![0.0; chunk], vec![0.0; chunk * d]);
        let mut log_w = Vec::with_capacity(n);
        let mut ne = 0.0;
        let mut done = 0;
        while done < n {
            fill_standard_normal(rng, &mut eps);
            self.push_forward(&eps, &mut x, &mut lq);
            let take = chunk.min(n - done);
            target(&x[..take * d], &mut lp[..take], &mut gp[..take * d])?;
            for b in 0..take {
                let xb = &x[b * d..(b + 1) * d];
                ne += lq[b] - beta * lp[b];
                log_w.push(lp[b] - lq[b]);
                let nearest = (0..modes.len()).min_by(|&a, &c| {
                    let da: f64 = xb
                        .iter()
                        .zip(&modes[a])
                        .map(|(u, v)| (u - v) * (u - v))
                        .sum();
                    let dc: f64 = xb
                        .iter()
                        .zip(&modes[c])
                        .map(|(u, v)| (u - v) * (u - v))
                        .sum();
                    da.total_cmp(&dc)
                });
                if let Some(m) = nearest {
                    counts[m] += 1;
                }
            }
            done += take;
        }
        let nf = n as f64;
        let mode_masses: Vec<f64> = counts.iter().map(|&c| c as f64 / nf).collect();
        let light = mode_masses
            .iter()
            .cloned()
            .reduce(f64::min)
            .unwrap_or(f64::NAN);
        let mx = log_w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let (mut s1, mut s2) = (0.0, 0.0);
        for lw in &log_w {
            let w = (lw - mx).exp();
            s1 += w;
            s2 += w * w;
        }
        Ok(FlowStats {
            light_mode_mass: light,
            mode_weight_error: f64::NAN,
            ess_fraction: if s2 > 0.0 {
                s1 * s1 / (s2 * nf)
            } else {
                f64::NAN
            },
            kl: f64::NAN,
            neg_elbo: ne / nf,
            mode_masses,
            collapse_threshold,
            samples: n,
        })
    }
}
