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
//!
//! # Files
//! * `device` — the [`Backend`] trait the host driver talks to, kernel names and arguments;
//! * `flows` — [`GpuFlows`]: the device buffers and parameter layout of F flows, upload and
//!   download of parameters and noise (the batch API the sweep uses);
//! * `passes` — the kernel and GEMM sequences of the forward, backward and inverse passes, the
//!   loss, its gradients and Adam;
//! * `cuda` — [`CudaBackend`] (cudarc);
//! * `emu` — [`EmuBackend`], the CPU emulator of the kernels, on bounds-checked buffer handles;
//! * `throughput` — [`bench_training`], the device benchmark.
//!
//! The CUDA C source is `../realnvp_gpu.cu`.

mod cuda;
mod device;
mod emu;
mod flows;
mod passes;
mod throughput;

pub use cuda::{CudaBackend, compile_kernels};
pub use device::{Arg, Backend, GemmCall, Kernel};
pub use emu::EmuBackend;
pub use flows::GpuFlows;
pub use throughput::{GpuBenchResult, bench_training};

use std::fmt;

/// The CUDA C source of the kernels (compiled by NVRTC at run time).
pub const KERNEL_SOURCE: &str = include_str!("../realnvp_gpu.cu");

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
        crate::Error::Gpu {
            source: Box::new(e),
        }
    }
}

/// Result of the GPU engine.
pub type GpuResult<T> = std::result::Result<T, GpuError>;
