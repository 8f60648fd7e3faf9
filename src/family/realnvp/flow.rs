//! The RealNVP student: its state, initialisation, push-forward of noise and inverse, and the
//! [`VariationalFamily`] impl.

use super::arch::{FlowArch, Precision};
use super::engine::{AnyEngine, Engine, Layout, with_engine};
use super::linalg::Scalar;
use super::loss::BatchScratch;
use crate::error::Result;
use crate::family::{GroupKind, ParamGroup, VariationalFamily, fill_standard_normal};
use rand::Rng;

/// The RealNVP student (see the module docs).
#[derive(Clone, Debug)]
pub struct RealNvp {
    pub(super) arch: FlowArch,
    pub(super) layout: Layout,
    pub(super) theta: Vec<f64>,
    pub(super) engine: AnyEngine,
    /// Target-gradient scratch (d) and component-log scratch.
    pub(super) xrow: Vec<f64>,
    pub(super) grow: Vec<f64>,
    pub(super) comp: Vec<f64>,
    /// Batch buffers of a caller's target ([`BatchTarget`](super::BatchTarget)).
    pub(super) scratch: BatchScratch,
    /// The f32 engine's copy of θ is current (written by [`RealNvp::fused_update`]), so the
    /// next training pass skips the cast. Cleared by `params_mut`.
    pub(super) w_synced: bool,
    /// The f32 engine holds the gradient of the last deferred pass, not yet copied out.
    pub(super) grad_pending: bool,
    /// Finiteness of θ found by the last fused update (None: unknown, scan θ).
    pub(super) finite_cache: Option<bool>,
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

    /// Whether every parameter is finite with |θ_i| ≤ `bound` (the training loop's divergence
    /// rule; `bound = inf` checks finiteness only).
    pub fn within(&self, bound: f64) -> bool {
        if bound == f64::INFINITY {
            return self.is_finite();
        }
        self.theta.iter().all(|v| v.abs() <= bound)
    }

    /// Offset and shape (n_out, n_in) of linear layer j of net (0 = s, 1 = t) in coupling l:
    /// W at θ[off..off + n_out·n_in] (row-major), then b (n_out).
    pub fn linear_offset(&self, l: usize, net: usize, j: usize) -> (usize, usize, usize) {
        let lin = self.layout.lin(self.arch.depth, l, net, j);
        (lin.w, lin.n_out, lin.n_in)
    }

    pub(super) fn ensure_batch(&mut self, n: usize) {
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

    pub(super) fn ln_base(&self, z2: f64) -> f64 {
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
