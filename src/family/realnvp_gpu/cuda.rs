//! The CUDA backend: device 0 through cudarc, with the driver, NVRTC and cuBLAS loaded at run
//! time (no CUDA toolkit needed to build).

use super::device::{Arg, BLOCK, Backend, GemmCall, Kernel};
use super::{GpuError, GpuResult, KERNEL_SOURCE};
use std::fmt;

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
            crate::progress::note(&format!(
                "note: the driver rejected NVRTC's PTX ({first:?}); loaded it as PTX ISA {v}"
            ));
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
