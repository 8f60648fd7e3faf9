//! GPU engine for the RealNVP student (cargo feature `gpu`): F independent flows trained at once
//! on one CUDA device, in f32. The model, the loss and the parameter layout are those of
//! [`super::realnvp`] (read its module docs); this module computes the same quantities:
//!
//! L_f(θ_f) = (1/B) Σ_b [ln N(x0_fb; 0, σ0² I) − logdet_fb − β ln π(x_fb)],
//! x0_fb = σ0 ε_fb,  x_fb = f_θf(x0_fb),
//!
//! and ∇_θf L_f with the full or the sticking-the-landing estimator, then Adam on every flow.
//!
//! # Design
//! * **Libraries at run time.** `cudarc` with `dynamic-loading` opens libcuda, libnvrtc and
//!   libcublas with dlopen when [`GpuFlows::new`] runs, so the crate builds without a CUDA
//!   toolkit. A missing library or device is [`GpuError::NoDevice`], never a panic.
//! * **Kernels.** `realnvp_gpu.cu` (plain C, one thread per element or per batch row, no shared
//!   memory, no atomics) is compiled by NVRTC to PTX on the device machine.
//! * **GEMMs.** Every linear layer of every net of every flow is one `cublasSgemmStridedBatched`
//!   call of batch 2F (the s-net and t-net of coupling l, layer j, for all flows). For that the
//!   device stores θ in its own order: for coupling l, for layer j, for net ∈ (s, t), for flow
//!   f: W_lj (n_out × n_in, row-major), then b_lj. Block q = net·F + f lies at a constant stride
//!   size_lj = n_out·n_in + n_out. Host θ (one flat vector per flow, `RealNvp` order) is permuted
//!   on upload and download.
//! * **Row-major batches under column-major cuBLAS.** A row-major B × n matrix is the
//!   column-major n × B matrix with leading dimension n; a row-major W (n_out × n_in) is the
//!   column-major Wᵀ with ld n_in. So, per layer (column-major, ᶜ = as stored):
//!   forward Yᶜ = op_T(Wᶜ)·Xᶜ (m = n_out, n = B, k = n_in); weight gradient
//!   ∂Wᶜ = Xᶜ·op_T(Gᶜ) (m = n_in, n = n_out, k = B); input gradient ∂Xᶜ = Wᶜ·Gᶜ
//!   (m = n_in, n = B, k = n_out). Bias add + activation, bias gradients (column sums) and the
//!   activation derivative are kernels.
//! * **Backends.** The host driver talks to a small [`Backend`] trait (allocate, copy, strided
//!   batched SGEMM, launch a named kernel with an argument list). [`CudaBackend`] is the GPU;
//!   [`EmuBackend`] runs the same calls on the CPU (GEMMs through `matrixmultiply`, each kernel a
//!   line-by-line Rust transcription of the CUDA C), so everything but the CUDA C bodies and the
//!   cudarc calls is tested on machines without a GPU.
//! * **Noise.** [`GpuFlows::set_noise`] uploads ε from the host (tests: the same ε as the CPU
//!   engine); [`GpuFlows::sample_noise`] draws ε on the device from a counter-based hash
//!   (Box–Muller on a 32-bit integer hash of (seed, step, index); fine for training and
//!   benchmarks, not a cryptographic or high-quality stream).
//! * **Not here:** gradient clipping, schedules and outcome statistics (the CPU training loop
//!   has them); sampling/inverse on the device. cuBLAS runs in its default math mode (plain
//!   FP32, no TF32).

use crate::family::realnvp::{Activation, FlowArch, MaskKind};
use crate::objective::Estimator;
use crate::target::{IsotropicMixture, LogDensity};
use std::fmt;

/// The CUDA C source of the kernels (compiled by NVRTC at run time).
pub const KERNEL_SOURCE: &str = include_str!("realnvp_gpu.cu");

/// Threads per block of every launch.
const BLOCK: usize = 256;

/// Most mixture components the target kernel handles (its local array).
pub const MAX_COMPONENTS: usize = 16;

/// A failure of the GPU engine.
#[derive(Debug, Clone, PartialEq)]
pub enum GpuError {
    /// No usable CUDA driver, library or device (the caller may fall back or skip).
    NoDevice(String),
    /// A CUDA, NVRTC or cuBLAS call failed.
    Cuda(String),
    /// The request cannot be served (sizes, arguments).
    Invalid(String),
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::NoDevice(m) => write!(f, "no CUDA device: {m}"),
            GpuError::Cuda(m) => write!(f, "CUDA error: {m}"),
            GpuError::Invalid(m) => write!(f, "GPU engine: {m}"),
        }
    }
}

impl std::error::Error for GpuError {}

impl From<GpuError> for crate::Error {
    fn from(e: GpuError) -> Self {
        crate::Error::Invalid(e.to_string())
    }
}

/// Result of the GPU engine.
pub type GpuResult<T> = std::result::Result<T, GpuError>;

/// A kernel argument (device pointers are byte addresses).
#[derive(Clone, Copy, Debug)]
pub enum Arg {
    /// Device pointer.
    P(u64),
    /// `int`.
    I(i32),
    /// `float`.
    F(f32),
    /// `unsigned int`.
    U(u32),
}

/// The kernels of `realnvp_gpu.cu` (names as in the source).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    SplitFwd,
    BiasAct,
    CoupleFwd,
    TargetGrad,
    RowSum,
    CoupleBwd,
    CoupleInvBwd,
    BiasGrad,
    ActBwd,
    ScatterAdd,
    ScaleCopy,
    Fill,
    Adam,
    NormalNoise,
}

impl Kernel {
    /// Every kernel.
    pub const ALL: [Kernel; 14] = [
        Kernel::SplitFwd,
        Kernel::BiasAct,
        Kernel::CoupleFwd,
        Kernel::TargetGrad,
        Kernel::RowSum,
        Kernel::CoupleBwd,
        Kernel::CoupleInvBwd,
        Kernel::BiasGrad,
        Kernel::ActBwd,
        Kernel::ScatterAdd,
        Kernel::ScaleCopy,
        Kernel::Fill,
        Kernel::Adam,
        Kernel::NormalNoise,
    ];

    /// The kernel's name in the CUDA source.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::SplitFwd => "split_fwd",
            Kernel::BiasAct => "bias_act",
            Kernel::CoupleFwd => "couple_fwd",
            Kernel::TargetGrad => "target_grad",
            Kernel::RowSum => "row_sum",
            Kernel::CoupleBwd => "couple_bwd",
            Kernel::CoupleInvBwd => "couple_inv_bwd",
            Kernel::BiasGrad => "bias_grad",
            Kernel::ActBwd => "act_bwd",
            Kernel::ScatterAdd => "scatter_add",
            Kernel::ScaleCopy => "scale_copy",
            Kernel::Fill => "fill",
            Kernel::Adam => "adam",
            Kernel::NormalNoise => "normal_noise",
        }
    }
}

/// One `cublasSgemmStridedBatched` call (column-major; see the module docs):
/// C_q ← op(A_q) op(B_q) for q < batch, X_q = X + q·stride_x (elements), β = 0.
#[derive(Clone, Copy, Debug)]
pub struct GemmCall {
    /// op(A) = Aᵀ.
    pub trans_a: bool,
    /// op(B) = Bᵀ.
    pub trans_b: bool,
    /// Rows of C.
    pub m: usize,
    /// Columns of C.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// A, its leading dimension and batch stride.
    pub a: u64,
    pub lda: usize,
    pub stride_a: usize,
    /// B, its leading dimension and batch stride.
    pub b: u64,
    pub ldb: usize,
    pub stride_b: usize,
    /// C, its leading dimension and batch stride.
    pub c: u64,
    pub ldc: usize,
    pub stride_c: usize,
    /// Batch count.
    pub batch: usize,
}

/// What the host driver needs from a device. Pointers are byte addresses of 4-byte elements
/// (f32 or i32); `alloc` returns zeroed memory that lives as long as the backend.
pub trait Backend {
    /// A description of the device.
    fn name(&self) -> String;
    /// n zeroed 4-byte elements.
    fn alloc(&mut self, n: usize) -> GpuResult<u64>;
    /// Host → device (f32).
    fn upload(&mut self, dst: u64, src: &[f32]) -> GpuResult<()>;
    /// Host → device (i32).
    fn upload_i32(&mut self, dst: u64, src: &[i32]) -> GpuResult<()>;
    /// Device → host (f32; waits for the queued work).
    fn download(&mut self, src: u64, dst: &mut [f32]) -> GpuResult<()>;
    /// Strided batched SGEMM.
    fn gemm(&mut self, g: &GemmCall) -> GpuResult<()>;
    /// Runs `k` on `threads` threads (blocks of [`BLOCK`]) with `args` in source order.
    fn launch(&mut self, k: Kernel, threads: usize, args: &[Arg]) -> GpuResult<()>;
    /// Waits for the queued work.
    fn sync(&mut self) -> GpuResult<()>;
}

/// Offset (elements) `off` past pointer `p`.
fn at(p: u64, off: usize) -> u64 {
    p + 4 * off as u64
}

fn int(v: usize, what: &str) -> GpuResult<i32> {
    i32::try_from(v).map_err(|_| GpuError::Invalid(format!("{what} = {v} exceeds the int range")))
}

/// Shape of linear layer (l, j) (the same for both nets).
#[derive(Clone, Copy, Debug)]
struct LinDims {
    n_in: usize,
    n_out: usize,
    /// n_out·n_in + n_out.
    size: usize,
    /// Device offset of block q = 0 (net s, flow 0).
    dev: usize,
}

/// F RealNVP flows with their Adam state and batch buffers on one device.
pub struct GpuFlows {
    dev: Box<dyn Backend>,
    arch: FlowArch,
    flows: usize,
    batch: usize,
    rows: usize,
    n_params: usize,
    /// Conditioning / transformed index sets per coupling.
    ia: Vec<Vec<usize>>,
    ib: Vec<Vec<usize>>,
    /// Per (l, j), index l·depth + j.
    dims: Vec<LinDims>,
    /// Host offsets of (l, net, j) in one flow's θ, index (l·2 + net)·depth + j.
    host_off: Vec<usize>,
    // device buffers
    theta: u64,
    grad: u64,
    adam_m: u64,
    adam_v: u64,
    ia_p: Vec<u64>,
    ib_p: Vec<u64>,
    xs: Vec<u64>,
    xa: Vec<u64>,
    hid: Vec<u64>,
    st: Vec<u64>,
    es: Vec<u64>,
    out: u64,
    dout: u64,
    dbuf: [u64; 2],
    dxa: u64,
    gx: u64,
    logdet: u64,
    loss_rows: u64,
    loss: u64,
    means: u64,
    cst: u64,
    inv_var: u64,
    n_comp: usize,
    /// Adam step count.
    adam_t: i32,
}

/// Conditioning and transformed index sets of coupling l (as in `RealNvp`).
fn mask_sets(a: &FlowArch, l: usize) -> (Vec<usize>, Vec<usize>) {
    let cond = |i: usize| match a.mask {
        MaskKind::Halves => (i < a.d / 2) == l.is_multiple_of(2),
        MaskKind::Checkerboard => i.is_multiple_of(2) == l.is_multiple_of(2),
    };
    (
        (0..a.d).filter(|&i| cond(i)).collect(),
        (0..a.d).filter(|&i| !cond(i)).collect(),
    )
}

impl GpuFlows {
    /// `flows` flows of architecture `arch` with batch `batch` against `target` on CUDA device 0
    /// (parameters zero until [`Self::set_params`]). [`GpuError::NoDevice`] when the driver, NVRTC,
    /// cuBLAS or a device is missing.
    pub fn new(
        arch: &FlowArch,
        target: &IsotropicMixture,
        flows: usize,
        batch: usize,
    ) -> GpuResult<Self> {
        let dev = CudaBackend::new()?;
        Self::with_backend(Box::new(dev), arch, target, flows, batch)
    }

    /// The same engine on the CPU emulator ([`EmuBackend`]; slow, for tests).
    pub fn emulated(
        arch: &FlowArch,
        target: &IsotropicMixture,
        flows: usize,
        batch: usize,
    ) -> GpuResult<Self> {
        Self::with_backend(Box::new(EmuBackend::default()), arch, target, flows, batch)
    }

    /// The engine on a given backend.
    pub fn with_backend(
        mut dev: Box<dyn Backend>,
        arch: &FlowArch,
        target: &IsotropicMixture,
        flows: usize,
        batch: usize,
    ) -> GpuResult<Self> {
        arch.validate("student.realnvp")
            .map_err(|e| GpuError::Invalid(e.to_string()))?;
        if flows == 0 || batch == 0 {
            return Err(GpuError::Invalid("flows and batch must be ≥ 1".into()));
        }
        if target.dim() != arch.d {
            return Err(GpuError::Invalid(format!(
                "target dimension {} ≠ flow dimension {}",
                target.dim(),
                arch.d
            )));
        }
        let n_comp = target.means().len();
        if n_comp == 0 || n_comp > MAX_COMPONENTS {
            return Err(GpuError::Invalid(format!(
                "the target has {n_comp} components; the GPU engine takes 1 to {MAX_COMPONENTS}"
            )));
        }
        let (d, h, depth, nl) = (arch.d, arch.width, arch.depth, arch.layers);
        let rows = flows * batch;
        let q = 2 * flows;
        let (mut ia, mut ib) = (Vec::new(), Vec::new());
        for l in 0..nl {
            let (a, b) = mask_sets(arch, l);
            ia.push(a);
            ib.push(b);
        }
        // host layout (RealNvp): l, net, j; device layout: l, j, net, flow
        let mut host_off = Vec::new();
        let mut off = 0;
        for l in 0..nl {
            for _net in 0..2 {
                for j in 0..depth {
                    host_off.push(off);
                    let n_in = if j == 0 { ia[l].len() } else { h };
                    let n_out = if j + 1 == depth { ib[l].len() } else { h };
                    off += n_out * n_in + n_out;
                }
            }
        }
        let n_params = off;
        let mut dims = Vec::new();
        let mut dev_off = 0;
        for l in 0..nl {
            for j in 0..depth {
                let n_in = if j == 0 { ia[l].len() } else { h };
                let n_out = if j + 1 == depth { ib[l].len() } else { h };
                let size = n_out * n_in + n_out;
                dims.push(LinDims {
                    n_in,
                    n_out,
                    size,
                    dev: dev_off,
                });
                dev_off += q * size;
            }
        }
        debug_assert_eq!(dev_off, flows * n_params);
        let max_a = ia.iter().map(Vec::len).max().unwrap_or(0);
        let max_b = ib.iter().map(Vec::len).max().unwrap_or(0);
        // every kernel index must fit an int
        int(flows * n_params, "flows × parameters")?;
        int(2 * rows * h.max(d), "2 × flows × batch × width")?;
        let fp = flows * n_params;
        let theta = dev.alloc(fp)?;
        let grad = dev.alloc(fp)?;
        let adam_m = dev.alloc(fp)?;
        let adam_v = dev.alloc(fp)?;
        let (mut ia_p, mut ib_p) = (Vec::new(), Vec::new());
        for l in 0..nl {
            let pa = dev.alloc(ia[l].len().max(1))?;
            let ai: Vec<i32> = ia[l].iter().map(|&i| i as i32).collect();
            dev.upload_i32(pa, &ai)?;
            ia_p.push(pa);
            let pb = dev.alloc(ib[l].len().max(1))?;
            let bi: Vec<i32> = ib[l].iter().map(|&i| i as i32).collect();
            dev.upload_i32(pb, &bi)?;
            ib_p.push(pb);
        }
        let mut xs = Vec::new();
        for _ in 0..=nl {
            xs.push(dev.alloc(rows * d)?);
        }
        let (mut xa, mut hid, mut st, mut es) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for l in 0..nl {
            xa.push(dev.alloc(2 * rows * ia[l].len().max(1))?);
            hid.push(dev.alloc(((depth - 1) * 2 * rows * h).max(1))?);
            st.push(dev.alloc(rows * ib[l].len().max(1))?);
            es.push(dev.alloc(rows * ib[l].len().max(1))?);
        }
        let out = dev.alloc(2 * rows * max_b.max(1))?;
        let dout = dev.alloc(2 * rows * max_b.max(1))?;
        let dbuf = [dev.alloc(2 * rows * h)?, dev.alloc(2 * rows * h)?];
        let dxa = dev.alloc(2 * rows * max_a.max(1))?;
        let gx = dev.alloc(rows * d)?;
        let logdet = dev.alloc(rows)?;
        let loss_rows = dev.alloc(rows)?;
        let loss = dev.alloc(flows)?;
        // target constants: cst_j = ln w_j − (d/2)(ln 2π + ln v_j), 1/v_j, means (J × d)
        let ln2pi = (2.0 * std::f64::consts::PI).ln();
        let (tm, tv, tlw) = (target.means(), target.variances(), target.log_weights());
        let cst_h: Vec<f32> = (0..n_comp)
            .map(|j| (tlw[j] - 0.5 * d as f64 * (ln2pi + tv[j].ln())) as f32)
            .collect();
        let iv_h: Vec<f32> = tv.iter().map(|v| (1.0 / v) as f32).collect();
        let m_h: Vec<f32> = tm.iter().flatten().map(|&v| v as f32).collect();
        let means = dev.alloc(n_comp * d)?;
        dev.upload(means, &m_h)?;
        let cst = dev.alloc(n_comp)?;
        dev.upload(cst, &cst_h)?;
        let inv_var = dev.alloc(n_comp)?;
        dev.upload(inv_var, &iv_h)?;
        Ok(GpuFlows {
            dev,
            arch: arch.clone(),
            flows,
            batch,
            rows,
            n_params,
            ia,
            ib,
            dims,
            host_off,
            theta,
            grad,
            adam_m,
            adam_v,
            ia_p,
            ib_p,
            xs,
            xa,
            hid,
            st,
            es,
            out,
            dout,
            dbuf,
            dxa,
            gx,
            logdet,
            loss_rows,
            loss,
            means,
            cst,
            inv_var,
            n_comp,
            adam_t: 0,
        })
    }

    /// The device's description.
    pub fn device_name(&self) -> String {
        self.dev.name()
    }

    /// Parameters per flow (the `RealNvp` count).
    pub fn n_params(&self) -> usize {
        self.n_params
    }

    /// Number of flows F.
    pub fn flows(&self) -> usize {
        self.flows
    }

    /// Batch B.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Device position of host index `i` of flow `f` (see the module docs).
    fn dev_index(&self, f: usize, i: usize) -> usize {
        // the (l, net, j) block holding i: host offsets increase with the block index
        let blk = self.host_off.partition_point(|&o| o <= i) - 1;
        let depth = self.arch.depth;
        let (l, net, j) = (blk / (2 * depth), (blk / depth) % 2, blk % depth);
        let dm = self.dims[l * depth + j];
        dm.dev + (net * self.flows + f) * dm.size + (i - self.host_off[blk])
    }

    /// Host-order → device-order map for one flow's θ (index: host position).
    fn dev_map(&self, f: usize) -> Vec<usize> {
        (0..self.n_params).map(|i| self.dev_index(f, i)).collect()
    }

    fn download_all(&mut self, p: u64) -> GpuResult<Vec<f32>> {
        let mut all = vec![0.0f32; self.flows * self.n_params];
        self.dev.download(p, &mut all)?;
        Ok(all)
    }

    /// Sets flow f's θ (`RealNvp` layout, f64 cast to f32) and resets its Adam moments (the Adam
    /// step count is shared by all flows and reset too).
    pub fn set_params(&mut self, f: usize, theta: &[f64]) -> GpuResult<()> {
        self.check_flow(f)?;
        if theta.len() != self.n_params {
            return Err(GpuError::Invalid(format!(
                "θ has {} entries, the flow {}",
                theta.len(),
                self.n_params
            )));
        }
        let map = self.dev_map(f);
        let mut all = self.download_all(self.theta)?;
        for (i, &v) in theta.iter().enumerate() {
            all[map[i]] = v as f32;
        }
        self.dev.upload(self.theta, &all)?;
        let mut m = self.download_all(self.adam_m)?;
        let mut v = self.download_all(self.adam_v)?;
        for &k in &map {
            m[k] = 0.0;
            v[k] = 0.0;
        }
        self.dev.upload(self.adam_m, &m)?;
        self.dev.upload(self.adam_v, &v)?;
        self.adam_t = 0;
        Ok(())
    }

    /// Sets every flow's θ at once (`thetas[f]` in `RealNvp` layout; one upload) and resets
    /// the Adam state.
    pub fn set_all_params(&mut self, thetas: &[Vec<f64>]) -> GpuResult<()> {
        if thetas.len() != self.flows || thetas.iter().any(|t| t.len() != self.n_params) {
            return Err(GpuError::Invalid(format!(
                "expected {} parameter vectors of length {}",
                self.flows, self.n_params
            )));
        }
        let mut all = vec![0.0f32; self.flows * self.n_params];
        for (f, th) in thetas.iter().enumerate() {
            for (i, k) in self.dev_map(f).into_iter().enumerate() {
                all[k] = th[i] as f32;
            }
        }
        self.dev.upload(self.theta, &all)?;
        all.iter_mut().for_each(|v| *v = 0.0);
        self.dev.upload(self.adam_m, &all)?;
        self.dev.upload(self.adam_v, &all)?;
        self.adam_t = 0;
        Ok(())
    }

    fn check_flow(&self, f: usize) -> GpuResult<()> {
        if f >= self.flows {
            return Err(GpuError::Invalid(format!(
                "flow {f} out of range (F = {})",
                self.flows
            )));
        }
        Ok(())
    }

    fn gather(&mut self, p: u64, f: usize) -> GpuResult<Vec<f64>> {
        self.check_flow(f)?;
        let all = self.download_all(p)?;
        Ok(self.dev_map(f).iter().map(|&k| all[k] as f64).collect())
    }

    /// Flow f's θ (`RealNvp` layout).
    pub fn params(&mut self, f: usize) -> GpuResult<Vec<f64>> {
        self.gather(self.theta, f)
    }

    /// Every flow's θ (`RealNvp` layout), from one download.
    pub fn all_params(&mut self) -> GpuResult<Vec<Vec<f64>>> {
        let all = self.download_all(self.theta)?;
        Ok((0..self.flows)
            .map(|f| self.dev_map(f).iter().map(|&k| all[k] as f64).collect())
            .collect())
    }

    /// Flow f's last gradient ∇_θ L_f (`RealNvp` layout).
    pub fn grad(&mut self, f: usize) -> GpuResult<Vec<f64>> {
        self.gather(self.grad, f)
    }

    /// Sets the base noise from standard-normal ε (F × B × d, flow-major): x0 = σ0 ε.
    pub fn set_noise(&mut self, eps: &[f64]) -> GpuResult<()> {
        let n = self.rows * self.arch.d;
        if eps.len() != n {
            return Err(GpuError::Invalid(format!(
                "noise has {} entries, expected F·B·d = {n}",
                eps.len()
            )));
        }
        let s0 = self.arch.sigma0;
        let h: Vec<f32> = eps.iter().map(|&e| (s0 * e) as f32).collect();
        self.dev.upload(self.xs[0], &h)
    }

    /// Draws the base noise on the device: x0 = σ0 ε with ε from the hash generator keyed by
    /// (seed, step).
    pub fn sample_noise(&mut self, seed: u32, step: u32) -> GpuResult<()> {
        let n = self.rows * self.arch.d;
        let args = [
            Arg::P(self.xs[0]),
            Arg::I(int(n, "F·B·d")?),
            Arg::U(seed),
            Arg::U(step),
            Arg::F(self.arch.sigma0 as f32),
        ];
        self.dev.launch(Kernel::NormalNoise, n, &args)
    }

    fn act_code(&self) -> i32 {
        match self.arch.activation {
            Activation::Relu => 1,
            Activation::Tanh => 2,
        }
    }

    /// Forward through the s- and t-nets of coupling l for all flows (batched GEMMs of 2F):
    /// xa[l] → out (S blocks, then T blocks).
    fn mlp_forward(&mut self, l: usize) -> GpuResult<()> {
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
    fn mlp_backward(&mut self, l: usize, param_grads: bool, want_in: bool) -> GpuResult<()> {
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
    fn forward(&mut self) -> GpuResult<()> {
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
    fn grad_x_log_q(&mut self) -> GpuResult<()> {
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

    fn scatter_add(&mut self, l: usize, na: usize) -> GpuResult<()> {
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

// ---------------------------------------------------------------------------------------------
// CUDA backend (cudarc: driver, NVRTC and cuBLAS loaded at run time)

/// The CUDA device 0 through cudarc (see the module docs).
pub struct CudaBackend {
    stream: std::sync::Arc<cudarc::driver::CudaStream>,
    blas: cudarc::cublas::CudaBlas,
    funcs: Vec<cudarc::driver::CudaFunction>,
    bufs: Vec<cudarc::driver::CudaSlice<f32>>,
    name: String,
}

fn cuda_err(what: &str, e: impl fmt::Debug) -> GpuError {
    GpuError::Cuda(format!("{what}: {e:?}"))
}

/// Runs `f`, turning a panic inside cudarc (e.g. a symbol missing from an old driver) into a
/// [`GpuError::NoDevice`].
fn guarded<T>(what: &str, f: impl FnOnce() -> GpuResult<T>) -> GpuResult<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Err(GpuError::NoDevice(format!("{what}: {msg}")))
        }
    }
}

fn compile_ptx() -> GpuResult<cudarc::nvrtc::Ptx> {
    cudarc::nvrtc::compile_ptx(KERNEL_SOURCE).map_err(|e| match e {
        cudarc::nvrtc::CompileError::CompileError { log, .. } => GpuError::Cuda(format!(
            "NVRTC could not compile the kernels:\n{}",
            log.to_string_lossy()
        )),
        other => cuda_err("NVRTC", other),
    })
}

/// Compiles [`KERNEL_SOURCE`] with NVRTC (no device needed, only libnvrtc) and returns the PTX;
/// [`GpuError::NoDevice`] when libnvrtc cannot be loaded.
pub fn compile_kernels() -> GpuResult<String> {
    // SAFETY: only tries to dlopen the library
    if !unsafe { cudarc::nvrtc::sys::is_culib_present() } {
        return Err(GpuError::NoDevice("cannot load libnvrtc".into()));
    }
    guarded("NVRTC", || Ok(compile_ptx()?.to_src()))
}

/// Loads PTX into `ctx`. When the driver rejects it (typically an NVRTC newer than the driver
/// writes a `.version` the driver's JIT does not know), retries with older PTX ISA versions:
/// the kernels use only long-standing instructions.
fn load_ptx(
    ctx: &std::sync::Arc<cudarc::driver::CudaContext>,
    src: String,
) -> GpuResult<std::sync::Arc<cudarc::driver::CudaModule>> {
    use cudarc::nvrtc::Ptx;
    let first = match ctx.load_module(Ptx::from_src(src.clone())) {
        Ok(m) => return Ok(m),
        Err(e) => e,
    };
    for v in ["9.0", "8.8", "8.7", "8.5", "8.0", "7.8"] {
        let patched: String = src
            .lines()
            .map(|l| {
                if l.starts_with(".version ") {
                    format!(".version {v}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        if let Ok(m) = ctx.load_module(Ptx::from_src(patched)) {
            eprintln!(
                "note: the driver rejected NVRTC's PTX ({first:?}); loaded it as PTX ISA {v}"
            );
            return Ok(m);
        }
    }
    Err(cuda_err("load PTX", first))
}

impl CudaBackend {
    /// Loads the libraries, opens device 0, compiles the kernels and creates a cuBLAS handle.
    pub fn new() -> GpuResult<Self> {
        use cudarc::driver::CudaContext;
        // SAFETY: these only try to dlopen the libraries
        let (has_cuda, has_nvrtc, has_blas) = unsafe {
            (
                cudarc::driver::sys::is_culib_present(),
                cudarc::nvrtc::sys::is_culib_present(),
                cudarc::cublas::sys::is_culib_present(),
            )
        };
        let missing: Vec<&str> = [
            (has_cuda, "libcuda (the driver)"),
            (has_nvrtc, "libnvrtc"),
            (has_blas, "libcublas"),
        ]
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, n)| *n)
        .collect();
        if !missing.is_empty() {
            return Err(GpuError::NoDevice(format!(
                "cannot load {} (set LD_LIBRARY_PATH to the CUDA 13 libraries)",
                missing.join(", ")
            )));
        }
        let ctx = guarded("driver", || {
            let n = CudaContext::device_count()
                .map_err(|e| GpuError::NoDevice(format!("cuInit/device count: {e:?}")))?;
            if n < 1 {
                return Err(GpuError::NoDevice("the driver reports 0 devices".into()));
            }
            CudaContext::new(0).map_err(|e| GpuError::NoDevice(format!("device 0: {e:?}")))
        })?;
        guarded("setup", || {
            let name = ctx.name().unwrap_or_else(|_| "CUDA device 0".into());
            let cc = ctx
                .compute_capability()
                .map(|(a, b)| format!(" (sm_{a}{b})"))
                .unwrap_or_default();
            let ptx = compile_ptx()?;
            let module = load_ptx(&ctx, ptx.to_src())?;
            let funcs = Kernel::ALL
                .iter()
                .map(|k| {
                    module
                        .load_function(k.name())
                        .map_err(|e| cuda_err(k.name(), e))
                })
                .collect::<GpuResult<Vec<_>>>()?;
            let stream = ctx.default_stream();
            let blas = cudarc::cublas::CudaBlas::new(stream.clone())
                .map_err(|e| cuda_err("cuBLAS handle", e))?;
            Ok(CudaBackend {
                stream,
                blas,
                funcs,
                bufs: Vec::new(),
                name: format!("{name}{cc}"),
            })
        })
    }
}

impl CudaBackend {
    /// Makes the context current on this thread (raw driver and cuBLAS calls need it).
    fn bind(&self) -> GpuResult<()> {
        self.stream
            .context()
            .bind_to_thread()
            .map_err(|e| cuda_err("bind context", e))
    }
}

impl Backend for CudaBackend {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn alloc(&mut self, n: usize) -> GpuResult<u64> {
        use cudarc::driver::DevicePtr;
        let s = self
            .stream
            .alloc_zeros::<f32>(n.max(1))
            .map_err(|e| cuda_err("alloc", e))?;
        let p = {
            let (p, _sync) = s.device_ptr(&self.stream);
            p
        };
        self.bufs.push(s);
        Ok(p)
    }

    fn upload(&mut self, dst: u64, src: &[f32]) -> GpuResult<()> {
        self.bind()?;
        // SAFETY: dst points into a live allocation of at least src.len() elements (the caller's
        // sizes); synchronous copy, so src outlives it
        unsafe {
            self.stream.synchronize().map_err(|e| cuda_err("sync", e))?;
            cudarc::driver::result::memcpy_htod_sync(dst, src).map_err(|e| cuda_err("upload", e))
        }
    }

    fn upload_i32(&mut self, dst: u64, src: &[i32]) -> GpuResult<()> {
        self.bind()?;
        // SAFETY: as in `upload`
        unsafe {
            self.stream.synchronize().map_err(|e| cuda_err("sync", e))?;
            cudarc::driver::result::memcpy_htod_sync(dst, src).map_err(|e| cuda_err("upload", e))
        }
    }

    fn download(&mut self, src: u64, dst: &mut [f32]) -> GpuResult<()> {
        self.bind()?;
        // SAFETY: src points into a live allocation of at least dst.len() elements
        unsafe {
            self.stream.synchronize().map_err(|e| cuda_err("sync", e))?;
            cudarc::driver::result::memcpy_dtoh_sync(dst, src).map_err(|e| cuda_err("download", e))
        }
    }

    fn gemm(&mut self, g: &GemmCall) -> GpuResult<()> {
        use cudarc::cublas::sys::cublasOperation_t::{CUBLAS_OP_N, CUBLAS_OP_T};
        let op = |t: bool| if t { CUBLAS_OP_T } else { CUBLAS_OP_N };
        let (alpha, beta) = (1.0f32, 0.0f32);
        let i = |v: usize| v as std::ffi::c_int;
        let l = |v: usize| v as std::ffi::c_longlong;
        self.bind()?;
        // SAFETY: the host driver sizes every buffer for the extents it asks for
        unsafe {
            cudarc::cublas::result::sgemm_strided_batched(
                *self.blas.handle(),
                op(g.trans_a),
                op(g.trans_b),
                i(g.m),
                i(g.n),
                i(g.k),
                &alpha,
                g.a as *const f32,
                i(g.lda),
                l(g.stride_a),
                g.b as *const f32,
                i(g.ldb),
                l(g.stride_b),
                &beta,
                g.c as *mut f32,
                i(g.ldc),
                l(g.stride_c),
                i(g.batch),
            )
        }
        .map_err(|e| cuda_err("cublasSgemmStridedBatched", e))
    }

    fn launch(&mut self, k: Kernel, threads: usize, args: &[Arg]) -> GpuResult<()> {
        use cudarc::driver::{LaunchConfig, PushKernelArg};
        if threads == 0 {
            return Ok(());
        }
        let idx = Kernel::ALL.iter().position(|&x| x == k).unwrap_or(0);
        let f = &self.funcs[idx];
        let mut b = self.stream.launch_builder(f);
        for a in args {
            match a {
                Arg::P(p) => b.arg(p),
                Arg::I(v) => b.arg(v),
                Arg::F(v) => b.arg(v),
                Arg::U(v) => b.arg(v),
            };
        }
        let cfg = LaunchConfig {
            grid_dim: (threads.div_ceil(BLOCK) as u32, 1, 1),
            block_dim: (BLOCK as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the argument lists match the kernels' signatures in realnvp_gpu.cu (checked
        // against the emulator's transcription by the tests) and the buffers are sized for them
        unsafe { b.launch(cfg) }
            .map(|_| ())
            .map_err(|e| cuda_err(k.name(), e))
    }

    fn sync(&mut self) -> GpuResult<()> {
        self.stream
            .synchronize()
            .map_err(|e| cuda_err("synchronize", e))
    }
}

// ---------------------------------------------------------------------------------------------
// CPU emulator

/// The [`Backend`] on the CPU: host buffers whose addresses serve as device pointers, GEMMs by
/// `matrixmultiply`, kernels transcribed from `realnvp_gpu.cu` (one loop over the threads).
#[derive(Default)]
pub struct EmuBackend {
    bufs: Vec<Vec<f32>>,
}

impl EmuBackend {
    /// The buffer holding [p, p + 4n) (panics on a pointer outside every buffer: a driver bug).
    fn check(&self, p: u64, n: usize) {
        let ok = self.bufs.iter().any(|b| {
            let lo = b.as_ptr() as u64;
            p >= lo && p + 4 * n as u64 <= lo + 4 * b.len() as u64
        });
        assert!(ok, "emulator: access [{p:#x}, +{n}) outside every buffer");
    }
}

/// Reads kernel arguments in order.
struct Args<'a>(&'a [Arg], usize);
impl Args<'_> {
    fn next(&mut self) -> Arg {
        self.1 += 1;
        self.0[self.1 - 1]
    }
    fn p(&mut self) -> *mut f32 {
        match self.next() {
            Arg::P(p) => p as *mut f32,
            a => panic!("emulator: expected a pointer, got {a:?}"),
        }
    }
    fn pi(&mut self) -> *const i32 {
        self.p() as *const i32
    }
    fn i(&mut self) -> i32 {
        match self.next() {
            Arg::I(v) => v,
            a => panic!("emulator: expected an int, got {a:?}"),
        }
    }
    fn f(&mut self) -> f32 {
        match self.next() {
            Arg::F(v) => v,
            a => panic!("emulator: expected a float, got {a:?}"),
        }
    }
    fn u(&mut self) -> u32 {
        match self.next() {
            Arg::U(v) => v,
            a => panic!("emulator: expected an unsigned, got {a:?}"),
        }
    }
}

fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846ca68b);
    x ^= x >> 16;
    x
}

impl Backend for EmuBackend {
    fn name(&self) -> String {
        "CPU emulator".into()
    }

    fn alloc(&mut self, n: usize) -> GpuResult<u64> {
        let b = vec![0.0f32; n.max(1)];
        let p = b.as_ptr() as u64;
        self.bufs.push(b);
        Ok(p)
    }

    fn upload(&mut self, dst: u64, src: &[f32]) -> GpuResult<()> {
        self.check(dst, src.len());
        // SAFETY: checked to lie inside a live buffer
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut f32, src.len()) };
        Ok(())
    }

    fn upload_i32(&mut self, dst: u64, src: &[i32]) -> GpuResult<()> {
        self.check(dst, src.len());
        // SAFETY: as above (i32 and f32 have the same size and alignment)
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut i32, src.len()) };
        Ok(())
    }

    fn download(&mut self, src: u64, dst: &mut [f32]) -> GpuResult<()> {
        self.check(src, dst.len());
        // SAFETY: as above
        unsafe { std::ptr::copy_nonoverlapping(src as *const f32, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn gemm(&mut self, g: &GemmCall) -> GpuResult<()> {
        // column-major: element (r, c) of a stored matrix at r + c·ld
        let (rsa, csa) = if g.trans_a { (g.lda, 1) } else { (1, g.lda) };
        let (rsb, csb) = if g.trans_b { (g.ldb, 1) } else { (1, g.ldb) };
        for q in 0..g.batch {
            let (a, b, c) = (
                at(g.a, q * g.stride_a),
                at(g.b, q * g.stride_b),
                at(g.c, q * g.stride_c),
            );
            // extents: the last element each operand touches
            let ext = |rs: usize, cs: usize, r: usize, cc: usize| (r - 1) * rs + (cc - 1) * cs + 1;
            self.check(a, ext(rsa, csa, g.m, g.k));
            self.check(b, ext(rsb, csb, g.k, g.n));
            self.check(c, ext(1, g.ldc, g.m, g.n));
            // SAFETY: extents checked above
            unsafe {
                matrixmultiply::sgemm(
                    g.m,
                    g.k,
                    g.n,
                    1.0,
                    a as *const f32,
                    rsa as isize,
                    csa as isize,
                    b as *const f32,
                    rsb as isize,
                    csb as isize,
                    0.0,
                    c as *mut f32,
                    1,
                    g.ldc as isize,
                )
            };
        }
        Ok(())
    }

    #[allow(clippy::too_many_lines)]
    fn launch(&mut self, k: Kernel, threads: usize, args: &[Arg]) -> GpuResult<()> {
        let mut a = Args(args, 0);
        // SAFETY (whole body): raw accesses at the indices the CUDA kernels use; the host driver
        // sizes the buffers, and an out-of-range access here is a driver bug the tests catch
        // through wrong numbers (the CUDA kernels would fault or corrupt memory the same way)
        unsafe {
            match k {
                Kernel::SplitFwd => {
                    let (x, y, xa, ia) = (a.p(), a.p(), a.p(), a.pi());
                    let (rows, d, na) = (a.i() as usize, a.i() as usize, a.i() as usize);
                    for t in 0..threads.min(rows * d) {
                        let (r, i) = (t / d, t % d);
                        *y.add(t) = *x.add(t);
                        if i < na {
                            let v = *x.add(r * d + *ia.add(i) as usize);
                            *xa.add(r * na + i) = v;
                            *xa.add((rows + r) * na + i) = v;
                        }
                    }
                }
                Kernel::BiasAct => {
                    let (y, bias) = (a.p(), a.p());
                    let (n, rpq, qs, total, act) = (
                        a.i() as usize,
                        a.i() as usize,
                        a.i() as usize,
                        a.i() as usize,
                        a.i(),
                    );
                    for i in 0..threads.min(total) {
                        let o = i % n;
                        let q = i / (n * rpq);
                        let mut v = *y.add(i) + *bias.add(q * qs + o);
                        if act == 1 {
                            v = if v > 0.0 { v } else { 0.0 };
                        } else if act == 2 {
                            v = v.tanh();
                        }
                        *y.add(i) = v;
                    }
                }
                Kernel::CoupleFwd => {
                    let (x, y, st, es, so, to) = (a.p(), a.p(), a.p(), a.p(), a.p(), a.p());
                    let (ib, logdet) = (a.pi(), a.p());
                    let (rows, d, nb, c) = (a.i() as usize, a.i() as usize, a.i() as usize, a.f());
                    for r in 0..threads.min(rows) {
                        let mut sum = 0.0f32;
                        for kk in 0..nb {
                            let j = r * nb + kk;
                            let xi = r * d + *ib.add(kk) as usize;
                            let u = (*so.add(j)).tanh();
                            let s = c * u;
                            let e = s.exp();
                            *st.add(j) = u;
                            *es.add(j) = e;
                            *y.add(xi) = *x.add(xi) * e + *to.add(j);
                            sum += s;
                        }
                        *logdet.add(r) += sum;
                    }
                }
                Kernel::TargetGrad => {
                    let (x, x0, logdet, means, cst, inv_var, gx, loss) =
                        (a.p(), a.p(), a.p(), a.p(), a.p(), a.p(), a.p(), a.p());
                    let (rows, d, nj) = (a.i() as usize, a.i() as usize, a.i() as usize);
                    let (beta, scale, inv_var0, base, stl) = (a.f(), a.f(), a.f(), a.f(), a.i());
                    for r in 0..threads.min(rows) {
                        let mut comp = [0.0f32; MAX_COMPONENTS];
                        let mut mx = -3.0e38f32;
                        for j in 0..nj {
                            let mut s = 0.0f32;
                            for i in 0..d {
                                let t = *x.add(r * d + i) - *means.add(j * d + i);
                                s += t * t;
                            }
                            comp[j] = *cst.add(j) - 0.5 * s * *inv_var.add(j);
                            mx = if comp[j] > mx { comp[j] } else { mx };
                        }
                        let mut tot = 0.0f32;
                        for j in 0..nj {
                            comp[j] = (comp[j] - mx).exp();
                            tot += comp[j];
                        }
                        let lse = mx + tot.ln();
                        for j in 0..nj {
                            comp[j] = comp[j] / tot * *inv_var.add(j);
                        }
                        let mut z2 = 0.0f32;
                        for i in 0..d {
                            let xi = *x.add(r * d + i);
                            let mut g = 0.0f32;
                            for j in 0..nj {
                                g += comp[j] * (*means.add(j * d + i) - xi);
                            }
                            let prev = if stl != 0 { *gx.add(r * d + i) } else { 0.0 };
                            *gx.add(r * d + i) = (prev - beta * g) * scale;
                            let z = *x0.add(r * d + i);
                            z2 += z * z;
                        }
                        *loss.add(r) = base - 0.5 * z2 * inv_var0 - *logdet.add(r) - beta * lse;
                    }
                }
                Kernel::RowSum => {
                    let (v, out) = (a.p(), a.p());
                    let (groups, n, scale) = (a.i() as usize, a.i() as usize, a.f());
                    for g in 0..threads.min(groups) {
                        let mut s = 0.0f64;
                        for b in 0..n {
                            s += *v.add(g * n + b) as f64;
                        }
                        *out.add(g) = (s * scale as f64) as f32;
                    }
                }
                Kernel::CoupleBwd => {
                    let (g, x, st, es, ib, ds_out, dt_out) =
                        (a.p(), a.p(), a.p(), a.p(), a.pi(), a.p(), a.p());
                    let (rows, d, nb) = (a.i() as usize, a.i() as usize, a.i() as usize);
                    let (c, ld_coef) = (a.f(), a.f());
                    for j in 0..threads.min(rows * nb) {
                        let (r, kk) = (j / nb, j % nb);
                        let xi = r * d + *ib.add(kk) as usize;
                        let gb = *g.add(xi);
                        let e = *es.add(j);
                        let u = *st.add(j);
                        *dt_out.add(j) = gb;
                        let ds = gb * *x.add(xi) * e + ld_coef;
                        *ds_out.add(j) = ds * c * (1.0 - u * u);
                        *g.add(xi) = gb * e;
                    }
                }
                Kernel::CoupleInvBwd => {
                    let (u, x, st, es, ib, ds_out, dt_out) =
                        (a.p(), a.p(), a.p(), a.p(), a.pi(), a.p(), a.p());
                    let (rows, d, nb, c) = (a.i() as usize, a.i() as usize, a.i() as usize, a.f());
                    for j in 0..threads.min(rows * nb) {
                        let (r, kk) = (j / nb, j % nb);
                        let xi = r * d + *ib.add(kk) as usize;
                        let ub = *u.add(xi);
                        let e = *es.add(j);
                        let w = *st.add(j);
                        let ue = ub / e;
                        *dt_out.add(j) = -ue;
                        let ds = -ub * *x.add(xi) - 1.0;
                        *ds_out.add(j) = ds * c * (1.0 - w * w);
                        *u.add(xi) = ue;
                    }
                }
                Kernel::BiasGrad => {
                    let (cur, grad) = (a.p(), a.p());
                    let (n, rpq, qs, nq) = (
                        a.i() as usize,
                        a.i() as usize,
                        a.i() as usize,
                        a.i() as usize,
                    );
                    for t in 0..threads.min(nq * n) {
                        let (q, o) = (t / n, t % n);
                        let mut s = 0.0f32;
                        for b in 0..rpq {
                            s += *cur.add((q * rpq + b) * n + o);
                        }
                        *grad.add(q * qs + o) = s;
                    }
                }
                Kernel::ActBwd => {
                    let (dx, h) = (a.p(), a.p());
                    let (total, act) = (a.i() as usize, a.i());
                    for i in 0..threads.min(total) {
                        if act == 1 {
                            if *h.add(i) <= 0.0 {
                                *dx.add(i) = 0.0;
                            }
                        } else if act == 2 {
                            *dx.add(i) *= 1.0 - *h.add(i) * *h.add(i);
                        }
                    }
                }
                Kernel::ScatterAdd => {
                    let (g, dxa, ia) = (a.p(), a.p(), a.pi());
                    let (rows, d, na) = (a.i() as usize, a.i() as usize, a.i() as usize);
                    for j in 0..threads.min(rows * na) {
                        let (r, kk) = (j / na, j % na);
                        *g.add(r * d + *ia.add(kk) as usize) +=
                            *dxa.add(j) + *dxa.add(rows * na + j);
                    }
                }
                Kernel::ScaleCopy => {
                    let (y, x) = (a.p(), a.p());
                    let (n, s) = (a.i() as usize, a.f());
                    for i in 0..threads.min(n) {
                        *y.add(i) = s * *x.add(i);
                    }
                }
                Kernel::Fill => {
                    let y = a.p();
                    let (n, v) = (a.i() as usize, a.f());
                    for i in 0..threads.min(n) {
                        *y.add(i) = v;
                    }
                }
                Kernel::Adam => {
                    let (th, g, m, v) = (a.p(), a.p(), a.p(), a.p());
                    let n = a.i() as usize;
                    let (lr, b1, b2, eps, bc1, bc2) = (a.f(), a.f(), a.f(), a.f(), a.f(), a.f());
                    for i in 0..threads.min(n) {
                        let gi = *g.add(i);
                        let mi = b1 * *m.add(i) + (1.0 - b1) * gi;
                        let vi = b2 * *v.add(i) + (1.0 - b2) * gi * gi;
                        *m.add(i) = mi;
                        *v.add(i) = vi;
                        *th.add(i) -= lr * (mi / bc1) / ((vi / bc2).sqrt() + eps);
                    }
                }
                Kernel::NormalNoise => {
                    let z = a.p();
                    let n = a.i() as usize;
                    let (seed, step, sigma) = (a.u(), a.u(), a.f());
                    for i in 0..threads.min(n) {
                        let key = mix32(seed ^ mix32(step.wrapping_add(0x9e3779b9)));
                        let ha = mix32(key ^ mix32(2u32.wrapping_mul(i as u32)));
                        let hb = mix32(key ^ mix32(2u32.wrapping_mul(i as u32).wrapping_add(1)));
                        let u1 = ((ha >> 8) as f32 + 1.0) * (1.0 / 16777216.0);
                        let u2 = (hb >> 8) as f32 * (1.0 / 16777216.0);
                        *z.add(i) =
                            sigma * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
                    }
                }
            }
        }
        assert_eq!(
            a.1,
            args.len(),
            "emulator: {} got extra arguments",
            k.name()
        );
        Ok(())
    }

    fn sync(&mut self) -> GpuResult<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Throughput benchmark

/// What [`bench_training`] measured.
#[derive(Clone, Debug)]
pub struct GpuBenchResult {
    /// The device.
    pub device: String,
    /// Wall time of the timed steps (seconds, device synchronised at both ends).
    pub seconds: f64,
    /// Training steps per second (one step advances every flow).
    pub steps_per_sec: f64,
    /// steps_per_sec × flows.
    pub run_steps_per_sec: f64,
    /// Loss of flow 0 after the warm-up and after the last step.
    pub loss: (f64, f64),
}

/// Trains `flows` flows of the `annealvi bench flow` model (8 couplings, halves, depth-4 ReLU
/// MLPs of width `width`, s = tanh, PyTorch-style initialisation, base N(0, I); bimodal target
/// R = 3, w* = 0.8, β = 1; full estimator; Adam lr 1e-3; batch `batch`; noise drawn on the
/// device) for `warmup` untimed and `steps` timed steps on CUDA device 0 (or on the CPU
/// emulator if `emulate`, for tests).
pub fn bench_training(
    d: usize,
    width: usize,
    batch: usize,
    steps: usize,
    flows: usize,
    warmup: usize,
    emulate: bool,
) -> GpuResult<GpuBenchResult> {
    use crate::family::VariationalFamily;
    use crate::family::realnvp::{Precision, RealNvp};
    use crate::seed::{Purpose, stream};
    let arch = crate::bench::FlowBench {
        d,
        width,
        batch,
        steps,
        threads: 1,
        precision: Precision::F32,
    }
    .arch();
    let target = IsotropicMixture::bimodal(d, 3.0, 0.8);
    let mut eng = if emulate {
        GpuFlows::emulated(&arch, &target, flows, batch)?
    } else {
        GpuFlows::new(&arch, &target, flows, batch)?
    };
    let thetas = (0..flows)
        .map(|f| {
            let mut init = stream(0, f as u64, Purpose::Init);
            RealNvp::new(arch.clone(), Precision::F64, &mut init)
                .map(|q| q.params().to_vec())
                .map_err(|e| GpuError::Invalid(e.to_string()))
        })
        .collect::<GpuResult<Vec<_>>>()?;
    eng.set_all_params(&thetas)?;
    let est = Estimator::Full;
    let mut t = 0u32;
    for _ in 0..warmup.max(1) {
        eng.train_step(1.0, est, 1e-3, 0, t)?;
        t += 1;
    }
    let first = eng.losses()?[0];
    eng.synchronize()?;
    let start = std::time::Instant::now();
    for _ in 0..steps {
        eng.train_step(1.0, est, 1e-3, 0, t)?;
        t = t.wrapping_add(1);
    }
    eng.synchronize()?;
    let seconds = start.elapsed().as_secs_f64();
    let last = eng.losses()?[0];
    let sps = steps as f64 / seconds;
    Ok(GpuBenchResult {
        device: eng.device_name(),
        seconds,
        steps_per_sec: sps,
        run_steps_per_sec: sps * flows as f64,
        loss: (first, last),
    })
}
