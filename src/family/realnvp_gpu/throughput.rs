//! The device throughput benchmark (`annealvi bench flow-gpu`): [`bench_training`].

use super::flows::GpuFlows;
use super::{GpuError, GpuResult};
use crate::family::realnvp::FlowArch;
use crate::objective::Estimator;
use crate::target::IsotropicMixture;

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
    let arch = FlowArch::benchmark(d, width);
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
