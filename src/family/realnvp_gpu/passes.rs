//! The kernel and GEMM sequences of [`GpuFlows`]: the MLPs of every coupling for all flows
//! (batched GEMMs of 2F), the forward pass with the target's log-density and gradient, the
//! backward pass (full or STL, with the inverse pass for ∇ₓ ln q), and Adam.

use super::GpuResult;
use super::device::{Arg, GemmCall, Kernel, at};
use super::flows::GpuFlows;
use crate::family::realnvp::Activation;
use crate::objective::Estimator;

impl GpuFlows {
    pub(super) fn act_code(&self) -> i32 {
        match self.arch.activation {
            Activation::Relu => 1,
            Activation::Tanh => 2,
        }
    }

    /// Forward through the s- and t-nets of coupling l for all flows (batched GEMMs of 2F):
    /// xa[l] → out (S blocks, then T blocks).
    pub(super) fn mlp_forward(&mut self, l: usize) -> GpuResult<()> {
        let (bsz, depth, h) = (self.batch, self.arch.depth, self.arch.width);
        let q = 2 * self.flows;
        let act = self.act_code();
        for j in 0..depth {
            let dm = self.dims[l * depth + j];
            let inp = if j == 0 {
                self.xa[l]
            } else {
                at(self.hid[l], (j - 1) * q * bsz * h)
            };
            let out = if j + 1 == depth {
                self.out
            } else {
                at(self.hid[l], j * q * bsz * h)
            };
            self.dev.gemm(&GemmCall {
                trans_a: true,
                trans_b: false,
                m: dm.n_out,
                n: bsz,
                k: dm.n_in,
                a: at(self.theta, dm.dev),
                lda: dm.n_in,
                stride_a: dm.size,
                b: inp,
                ldb: dm.n_in,
                stride_b: bsz * dm.n_in,
                c: out,
                ldc: dm.n_out,
                stride_c: bsz * dm.n_out,
                batch: q,
            })?;
            let total = q * bsz * dm.n_out;
            let args = [
                Arg::P(out),
                Arg::P(at(self.theta, dm.dev + dm.n_out * dm.n_in)),
                Arg::I(dm.n_out as i32),
                Arg::I(bsz as i32),
                Arg::I(dm.size as i32),
                Arg::I(total as i32),
                Arg::I(if j + 1 == depth { 0 } else { act }),
            ];
            self.dev.launch(Kernel::BiasAct, total, &args)?;
        }
        Ok(())
    }

    /// Backward through the nets of coupling l from ∂/∂out in `dout` (S blocks, then T blocks):
    /// parameter gradients into `grad` if `param_grads`, ∂/∂xa (both nets) into `dxa` if
    /// `want_in`.
    pub(super) fn mlp_backward(
        &mut self,
        l: usize,
        param_grads: bool,
        want_in: bool,
    ) -> GpuResult<()> {
        let (bsz, depth, h) = (self.batch, self.arch.depth, self.arch.width);
        let q = 2 * self.flows;
        let act = self.act_code();
        let mut cur = self.dout;
        let mut which = 0;
        for j in (0..depth).rev() {
            let dm = self.dims[l * depth + j];
            let inp = if j == 0 {
                self.xa[l]
            } else {
                at(self.hid[l], (j - 1) * q * bsz * h)
            };
            if param_grads {
                // ∂Wᶜ (n_in × n_out) = Xᶜ (n_in × B) · (Gᶜ)ᵀ (B × n_out)
                self.dev.gemm(&GemmCall {
                    trans_a: false,
                    trans_b: true,
                    m: dm.n_in,
                    n: dm.n_out,
                    k: bsz,
                    a: inp,
                    lda: dm.n_in,
                    stride_a: bsz * dm.n_in,
                    b: cur,
                    ldb: dm.n_out,
                    stride_b: bsz * dm.n_out,
                    c: at(self.grad, dm.dev),
                    ldc: dm.n_in,
                    stride_c: dm.size,
                    batch: q,
                })?;
                let args = [
                    Arg::P(cur),
                    Arg::P(at(self.grad, dm.dev + dm.n_out * dm.n_in)),
                    Arg::I(dm.n_out as i32),
                    Arg::I(bsz as i32),
                    Arg::I(dm.size as i32),
                    Arg::I(q as i32),
                ];
                self.dev.launch(Kernel::BiasGrad, q * dm.n_out, &args)?;
            }
            let dst = if j > 0 {
                self.dbuf[which]
            } else if want_in {
                self.dxa
            } else {
                break;
            };
            // ∂Xᶜ (n_in × B) = Wᶜ (n_in × n_out) · Gᶜ (n_out × B)
            self.dev.gemm(&GemmCall {
                trans_a: false,
                trans_b: false,
                m: dm.n_in,
                n: bsz,
                k: dm.n_out,
                a: at(self.theta, dm.dev),
                lda: dm.n_in,
                stride_a: dm.size,
                b: cur,
                ldb: dm.n_out,
                stride_b: bsz * dm.n_out,
                c: dst,
                ldc: dm.n_in,
                stride_c: bsz * dm.n_in,
                batch: q,
            })?;
            if j > 0 {
                let total = q * bsz * dm.n_in;
                let args = [Arg::P(dst), Arg::P(inp), Arg::I(total as i32), Arg::I(act)];
                self.dev.launch(Kernel::ActBwd, total, &args)?;
                cur = dst;
                which = 1 - which;
            }
        }
        Ok(())
    }

    /// Forward pass of all flows from x0 = xs[0]: xs[1..=L], the caches and logdet.
    pub(super) fn forward(&mut self) -> GpuResult<()> {
        let (rows, d) = (self.rows, self.arch.d);
        let c = self.arch.scale_bound as f32;
        let args = [Arg::P(self.logdet), Arg::I(rows as i32), Arg::F(0.0)];
        self.dev.launch(Kernel::Fill, rows, &args)?;
        for l in 0..self.arch.layers {
            let (na, nb) = (self.ia[l].len(), self.ib[l].len());
            let args = [
                Arg::P(self.xs[l]),
                Arg::P(self.xs[l + 1]),
                Arg::P(self.xa[l]),
                Arg::P(self.ia_p[l]),
                Arg::I(rows as i32),
                Arg::I(d as i32),
                Arg::I(na as i32),
            ];
            self.dev.launch(Kernel::SplitFwd, rows * d, &args)?;
            self.mlp_forward(l)?;
            let args = [
                Arg::P(self.xs[l]),
                Arg::P(self.xs[l + 1]),
                Arg::P(self.st[l]),
                Arg::P(self.es[l]),
                Arg::P(self.out),
                Arg::P(at(self.out, rows * nb)),
                Arg::P(self.ib_p[l]),
                Arg::P(self.logdet),
                Arg::I(rows as i32),
                Arg::I(d as i32),
                Arg::I(nb as i32),
                Arg::F(c),
            ];
            self.dev.launch(Kernel::CoupleFwd, rows, &args)?;
        }
        Ok(())
    }

    /// gx ← ∇_x ln q(x_L) through the inverse flow (input gradients only).
    pub(super) fn grad_x_log_q(&mut self) -> GpuResult<()> {
        let (rows, d) = (self.rows, self.arch.d);
        let c = self.arch.scale_bound as f32;
        let s0 = self.arch.sigma0;
        let n = rows * d;
        let args = [
            Arg::P(self.gx),
            Arg::P(self.xs[0]),
            Arg::I(n as i32),
            Arg::F((-1.0 / (s0 * s0)) as f32),
        ];
        self.dev.launch(Kernel::ScaleCopy, n, &args)?;
        for l in 0..self.arch.layers {
            let (na, nb) = (self.ia[l].len(), self.ib[l].len());
            let args = [
                Arg::P(self.gx),
                Arg::P(self.xs[l]),
                Arg::P(self.st[l]),
                Arg::P(self.es[l]),
                Arg::P(self.ib_p[l]),
                Arg::P(self.dout),
                Arg::P(at(self.dout, rows * nb)),
                Arg::I(rows as i32),
                Arg::I(d as i32),
                Arg::I(nb as i32),
                Arg::F(c),
            ];
            self.dev.launch(Kernel::CoupleInvBwd, rows * nb, &args)?;
            self.mlp_backward(l, false, true)?;
            self.scatter_add(l, na)?;
        }
        Ok(())
    }

    pub(super) fn scatter_add(&mut self, l: usize, na: usize) -> GpuResult<()> {
        let args = [
            Arg::P(self.gx),
            Arg::P(self.dxa),
            Arg::P(self.ia_p[l]),
            Arg::I(self.rows as i32),
            Arg::I(self.arch.d as i32),
            Arg::I(na as i32),
        ];
        self.dev.launch(Kernel::ScatterAdd, self.rows * na, &args)
    }

    /// Loss and gradient of every flow on the current noise (queued on the device; read them
    /// with [`Self::losses`] and [`Self::grad`]). `Exact` is treated as full.
    pub fn loss_and_grad(&mut self, beta: f64, estimator: Estimator) -> GpuResult<()> {
        let (rows, d) = (self.rows, self.arch.d);
        let c = self.arch.scale_bound as f32;
        let stl = estimator == Estimator::Stl;
        let inv_b = 1.0 / self.batch as f64;
        self.forward()?;
        if stl {
            self.grad_x_log_q()?;
        }
        let s0 = self.arch.sigma0;
        let base = -0.5 * d as f64 * (2.0 * std::f64::consts::PI * s0 * s0).ln();
        let nl = self.arch.layers;
        let args = [
            Arg::P(self.xs[nl]),
            Arg::P(self.xs[0]),
            Arg::P(self.logdet),
            Arg::P(self.means),
            Arg::P(self.cst),
            Arg::P(self.inv_var),
            Arg::P(self.gx),
            Arg::P(self.loss_rows),
            Arg::I(rows as i32),
            Arg::I(d as i32),
            Arg::I(self.n_comp as i32),
            Arg::F(beta as f32),
            Arg::F(inv_b as f32),
            Arg::F((1.0 / (s0 * s0)) as f32),
            Arg::F(base as f32),
            Arg::I(stl as i32),
        ];
        self.dev.launch(Kernel::TargetGrad, rows, &args)?;
        let args = [
            Arg::P(self.loss_rows),
            Arg::P(self.loss),
            Arg::I(self.flows as i32),
            Arg::I(self.batch as i32),
            Arg::F(inv_b as f32),
        ];
        self.dev.launch(Kernel::RowSum, self.flows, &args)?;
        let ld_coef = if stl { 0.0 } else { -inv_b as f32 };
        for l in (0..nl).rev() {
            let (na, nb) = (self.ia[l].len(), self.ib[l].len());
            let args = [
                Arg::P(self.gx),
                Arg::P(self.xs[l]),
                Arg::P(self.st[l]),
                Arg::P(self.es[l]),
                Arg::P(self.ib_p[l]),
                Arg::P(self.dout),
                Arg::P(at(self.dout, rows * nb)),
                Arg::I(rows as i32),
                Arg::I(d as i32),
                Arg::I(nb as i32),
                Arg::F(c),
                Arg::F(ld_coef),
            ];
            self.dev.launch(Kernel::CoupleBwd, rows * nb, &args)?;
            self.mlp_backward(l, true, l > 0)?;
            if l > 0 {
                self.scatter_add(l, na)?;
            }
        }
        Ok(())
    }

    /// The loss of every flow at the last [`Self::loss_and_grad`] (waits for the device).
    pub fn losses(&mut self) -> GpuResult<Vec<f64>> {
        let mut v = vec![0.0f32; self.flows];
        self.dev.download(self.loss, &mut v)?;
        Ok(v.iter().map(|&x| x as f64).collect())
    }

    /// One Adam step on every flow with the last gradients (bias-corrected, no clipping).
    pub fn adam_step(&mut self, lr: f64, beta1: f64, beta2: f64, eps: f64) -> GpuResult<()> {
        self.adam_t = self.adam_t.saturating_add(1);
        let bc1 = 1.0 - beta1.powi(self.adam_t);
        let bc2 = 1.0 - beta2.powi(self.adam_t);
        let n = self.flows * self.n_params;
        let args = [
            Arg::P(self.theta),
            Arg::P(self.grad),
            Arg::P(self.adam_m),
            Arg::P(self.adam_v),
            Arg::I(n as i32),
            Arg::F(lr as f32),
            Arg::F(beta1 as f32),
            Arg::F(beta2 as f32),
            Arg::F(eps as f32),
            Arg::F(bc1 as f32),
            Arg::F(bc2 as f32),
        ];
        self.dev.launch(Kernel::Adam, n, &args)
    }

    /// One training step of every flow: device noise (seed, step), loss and gradient, Adam
    /// (β1 = 0.9, β2 = 0.999, ε = 1e-8). Queued; nothing is read back.
    pub fn train_step(
        &mut self,
        beta: f64,
        estimator: Estimator,
        lr: f64,
        seed: u32,
        step: u32,
    ) -> GpuResult<()> {
        self.sample_noise(seed, step)?;
        self.loss_and_grad(beta, estimator)?;
        self.adam_step(lr, 0.9, 0.999, 1e-8)
    }

    /// Waits for the queued work.
    pub fn synchronize(&mut self) -> GpuResult<()> {
        self.dev.sync()
    }
}
