//! What the host driver needs from a device: the [`Backend`] trait (allocate, copy, strided
//! batched SGEMM, launch a named kernel), the kernels of `realnvp_gpu.cu` and their arguments.
//! Device pointers are byte addresses of 4-byte elements.

use super::{GpuError, GpuResult};

/// Threads per block of every launch.
pub(super) const BLOCK: usize = 256;

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
// Each variant is the kernel of the same name in snake case ([`Kernel::name`]), documented there.
#[allow(missing_docs)]
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
    /// Device address of A (its first batch entry).
    pub a: u64,
    /// Leading dimension of A (elements between consecutive columns, column-major).
    pub lda: usize,
    /// Elements between consecutive batch entries of A.
    pub stride_a: usize,
    /// Device address of B (its first batch entry).
    pub b: u64,
    /// Leading dimension of B (elements between consecutive columns, column-major).
    pub ldb: usize,
    /// Elements between consecutive batch entries of B.
    pub stride_b: usize,
    /// Device address of C (its first batch entry).
    pub c: u64,
    /// Leading dimension of C (elements between consecutive columns, column-major).
    pub ldc: usize,
    /// Elements between consecutive batch entries of C.
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
pub(super) fn at(p: u64, off: usize) -> u64 {
    p + 4 * off as u64
}

pub(super) fn int(v: usize, what: &str) -> GpuResult<i32> {
    i32::try_from(v).map_err(|_| GpuError::Invalid(format!("{what} = {v} exceeds the int range")))
}
