//! The GPU engine (`family::realnvp_gpu`, feature `gpu`) against the CPU `RealNvp` in f64: loss
//! and gradient (full and STL) on a fixed batch and fixed random θ, for two flows at once.
//!
//! * `emulator_*`: the engine's host driver on the CPU emulator backend (runs everywhere).
//! * `cuda_*`: on CUDA device 0. Without a usable driver/device they print
//!   "skipped: no CUDA device (...)" and pass, unless `ANNEALVI_REQUIRE_GPU=1`, in which case
//!   they fail (scripts/gpu-check.sh sets it).

#![cfg(feature = "gpu")]

use annealvi::family::realnvp::{Activation, FlowArch, MaskKind, Precision, RealNvp};
use annealvi::family::realnvp_gpu::{GpuError, GpuFlows};
use annealvi::family::{VariationalFamily, fill_standard_normal};
use annealvi::objective::Estimator;
use annealvi::target::IsotropicMixture;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// f32 tolerance: ‖g_gpu − g_cpu‖₂ ≤ TOL·‖g_cpu‖₂ and |L_gpu − L_cpu| ≤ TOL·max(1, |L_cpu|).
const TOL: f64 = 1e-3;

fn arch(d: usize, width: usize, layers: usize, depth: usize, mask: MaskKind) -> FlowArch {
    FlowArch {
        d,
        layers,
        depth,
        width,
        activation: if mask == MaskKind::Halves {
            Activation::Relu
        } else {
            Activation::Tanh
        },
        mask,
        scale_bound: 1.0,
        sigma0: 1.2,
        // every layer random (PyTorch-style bounds), so no coupling is the identity
        last_init: 1.0,
        ..FlowArch::default()
    }
}

/// Two CPU reference flows (f64) with different random θ.
fn cpu_flows(a: &FlowArch) -> Vec<RealNvp> {
    (0..2)
        .map(|s| {
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(100 + s);
            RealNvp::new(a.clone(), Precision::F64, &mut rng).unwrap()
        })
        .collect()
}

fn norm(v: &[f64]) -> f64 {
    v.iter().map(|x| x * x).sum::<f64>().sqrt()
}

/// Compares `eng` (already holding the flows' θ) with the CPU on one batch; returns the worst
/// relative gradient error.
fn compare(
    eng: &mut GpuFlows,
    cpu: &mut [RealNvp],
    target: &IsotropicMixture,
    est: Estimator,
    label: &str,
) -> f64 {
    let (b, d) = (eng.batch(), cpu[0].dim());
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let mut eps = vec![0.0; cpu.len() * b * d];
    fill_standard_normal(&mut rng, &mut eps);
    let beta = 0.8;
    eng.set_noise(&eps).unwrap();
    eng.loss_and_grad(beta, est).unwrap();
    let losses = eng.losses().unwrap();
    let mut worst: f64 = 0.0;
    for (f, q) in cpu.iter_mut().enumerate() {
        let mut g_cpu = vec![0.0; q.params().len()];
        let l_cpu = q.loss_and_grad_from_noise(
            target,
            beta,
            est,
            &eps[f * b * d..(f + 1) * b * d],
            &mut g_cpu,
        );
        let g = eng.grad(f).unwrap();
        let diff: Vec<f64> = g.iter().zip(&g_cpu).map(|(a, c)| a - c).collect();
        let rel = norm(&diff) / norm(&g_cpu);
        let max_abs = diff.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let gmax = g_cpu.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let l_err = (losses[f] - l_cpu).abs() / l_cpu.abs().max(1.0);
        println!(
            "{label} {est:?} flow {f}: loss {:.6} vs cpu {l_cpu:.6} (rel {l_err:.2e}); ‖g‖ = {:.4e}, \
             ‖Δg‖/‖g‖ = {rel:.2e}, max|Δg|/max|g| = {:.2e}",
            losses[f],
            norm(&g_cpu),
            max_abs / gmax
        );
        assert!(l_err <= TOL, "{label}: loss error {l_err:.2e} > {TOL:e}");
        assert!(rel <= TOL, "{label}: gradient error {rel:.2e} > {TOL:e}");
        worst = worst.max(rel);
    }
    worst
}

fn load(eng: &mut GpuFlows, cpu: &[RealNvp]) {
    let all: Vec<Vec<f64>> = cpu.iter().map(|q| q.params().to_vec()).collect();
    eng.set_all_params(&all).unwrap();
    let check = |eng: &mut GpuFlows| {
        for (f, q) in cpu.iter().enumerate() {
            let back = eng.params(f).unwrap();
            let err = back
                .iter()
                .zip(q.params())
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            assert!(err < 1e-6, "θ round trip: {err}");
        }
    };
    check(eng);
    // set_params must agree with set_all_params
    for (f, q) in cpu.iter().enumerate() {
        eng.set_params(f, q.params()).unwrap();
    }
    check(eng);
}

/// The benchmark's code path on the emulator runs with finite losses; the device noise has
/// the right scale: with θ = 0 the flow is the identity and at β = 0 the loss is
/// (1/B) Σ ln N(x0_b) with expectation −(d/2) ln(2πσ0²) − d/2 (8 batches averaged).
#[test]
fn emulator_bench_and_noise() {
    use annealvi::family::realnvp_gpu::bench_training;
    let r = bench_training(16, 16, 64, 3, 2, 2, true).unwrap();
    println!("{r:?}");
    assert!(r.loss.0.is_finite() && r.loss.1.is_finite() && r.steps_per_sec > 0.0);
    let a = arch(8, 4, 1, 1, MaskKind::Halves);
    let target = IsotropicMixture::bimodal(8, 2.0, 0.7);
    let mut eng = GpuFlows::emulated(&a, &target, 1, 4096).unwrap();
    let mut l = 0.0;
    for step in 0..8 {
        eng.sample_noise(5, step).unwrap();
        eng.loss_and_grad(0.0, Estimator::Full).unwrap();
        l += eng.losses().unwrap()[0] / 8.0;
    }
    let s0 = a.sigma0;
    let expect = -4.0 * (2.0 * std::f64::consts::PI * s0 * s0).ln() - 4.0;
    // Var(‖ε‖²/2) = d/2 = 4 per sample; 8 × 4096 samples
    let se = 2.0 / (8.0f64 * 4096.0).sqrt();
    println!("β = 0 loss {l:.4}, expected {expect:.4} ± {se:.4}");
    assert!(
        (l - expect).abs() < 5.0 * se,
        "device noise scale off: {l} vs {expect}"
    );
}

#[test]
fn emulator_matches_cpu_small() {
    for mask in [MaskKind::Halves, MaskKind::Checkerboard] {
        for (layers, depth) in [(3, 3), (2, 1)] {
            let a = arch(7, 9, layers, depth, mask);
            let target = IsotropicMixture::bimodal(7, 2.0, 0.7);
            let mut cpu = cpu_flows(&a);
            let mut eng = GpuFlows::emulated(&a, &target, 2, 16).unwrap();
            load(&mut eng, &cpu);
            for est in [Estimator::Full, Estimator::Stl] {
                let label = format!("emulator {mask:?} L={layers} depth={depth}");
                compare(&mut eng, &mut cpu, &target, est, &label);
            }
        }
    }
}

#[test]
fn emulator_matches_cpu_paper_size() {
    let a = arch(16, 64, 8, 4, MaskKind::Halves);
    let target = IsotropicMixture::bimodal(16, 3.0, 0.8);
    let mut cpu = cpu_flows(&a);
    let mut eng = GpuFlows::emulated(&a, &target, 2, 256).unwrap();
    load(&mut eng, &cpu);
    for est in [Estimator::Full, Estimator::Stl] {
        compare(&mut eng, &mut cpu, &target, est, "emulator d=16 h=64");
    }
}

/// Adam on the device path equals the CPU's Adam (f64) over a few steps with the same noise.
#[test]
fn emulator_adam_matches_cpu() {
    use annealvi::optim::{Adam, GroupRates, Optimizer};
    let a = arch(6, 8, 2, 2, MaskKind::Halves);
    let target = IsotropicMixture::bimodal(6, 2.0, 0.7);
    let mut cpu = cpu_flows(&a);
    cpu.truncate(1);
    let mut eng = GpuFlows::emulated(&a, &target, 1, 32).unwrap();
    load(&mut eng, &cpu);
    let rates = GroupRates {
        mean: 1.0,
        log_scale: 1.0,
        logit: 1.0,
        network: 1.0,
    };
    let mut opt = Adam::new(1e-2, rates, 0.9, 0.999, 1e-8);
    let groups = cpu[0].groups();
    let theta0 = cpu[0].params().to_vec();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let mut eps = vec![0.0; 32 * 6];
    let mut grad = vec![0.0; theta0.len()];
    for _ in 0..5 {
        fill_standard_normal(&mut rng, &mut eps);
        eng.set_noise(&eps).unwrap();
        eng.loss_and_grad(1.0, Estimator::Full).unwrap();
        eng.adam_step(1e-2, 0.9, 0.999, 1e-8).unwrap();
        cpu[0].loss_and_grad_from_noise(&target, 1.0, Estimator::Full, &eps, &mut grad);
        opt.step(cpu[0].params_mut(), &grad, &groups);
    }
    let th = eng.params(0).unwrap();
    let dg: Vec<f64> = th.iter().zip(&theta0).map(|(a, b)| a - b).collect();
    let dc: Vec<f64> = cpu[0]
        .params()
        .iter()
        .zip(&theta0)
        .map(|(a, b)| a - b)
        .collect();
    let diff: Vec<f64> = dg.iter().zip(&dc).map(|(a, b)| a - b).collect();
    let rel = norm(&diff) / norm(&dc);
    println!("adam: ‖Δθ_gpu − Δθ_cpu‖/‖Δθ_cpu‖ = {rel:.2e}");
    assert!(rel < 1e-2, "Adam trajectories differ: {rel:.2e}");
}

#[test]
fn emulator_buffers_are_bounds_checked_handles() {
    use annealvi::family::realnvp_gpu::{Backend, EmuBackend};
    let mut emu = EmuBackend::default();
    let p = emu.alloc(4).unwrap();
    let q = emu.alloc(2).unwrap();
    emu.upload(p, &[1.0, 2.0, 3.0, 4.0]).unwrap();
    emu.upload(q, &[5.0, 6.0]).unwrap();
    // an offset inside the buffer reads the rest of it
    let mut two = [0.0f32; 2];
    emu.download(p + 8, &mut two).unwrap();
    assert_eq!(two, [3.0, 4.0]);
    emu.download(q, &mut two).unwrap();
    assert_eq!(two, [5.0, 6.0]);
    // past the end, unknown and misaligned addresses are errors, not memory accesses
    let invalid = |r: Result<(), GpuError>| matches!(r, Err(GpuError::Invalid(_)));
    let mut three = [0.0f32; 3];
    assert!(invalid(emu.download(p + 8, &mut three)));
    assert!(invalid(emu.upload(q, &[0.0; 3])));
    assert!(invalid(emu.upload_i32(q + 4, &[1, 2])));
    assert!(invalid(emu.download(0, &mut two)));
    assert!(invalid(emu.download(p + 2, &mut two)));
    // the failed copies changed nothing
    emu.download(q, &mut two).unwrap();
    assert_eq!(two, [5.0, 6.0]);
}

/// The engine on CUDA device 0, or None (after printing why) when there is none and
/// `ANNEALVI_REQUIRE_GPU` is not 1.
fn cuda(a: &FlowArch, target: &IsotropicMixture, flows: usize, batch: usize) -> Option<GpuFlows> {
    match GpuFlows::new(a, target, flows, batch) {
        Ok(e) => {
            println!("CUDA device: {}", e.device_name());
            Some(e)
        }
        Err(GpuError::NoDevice(why)) => {
            if std::env::var("ANNEALVI_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("no CUDA device but ANNEALVI_REQUIRE_GPU=1: {why}");
            }
            println!("skipped: no CUDA device ({why})");
            None
        }
        Err(e) => panic!("GPU engine failed to start: {e}"),
    }
}

/// NVRTC (needs only libnvrtc, no device) compiles the kernels and the PTX has every entry.
#[test]
fn nvrtc_compiles_kernels() {
    use annealvi::family::realnvp_gpu::{Kernel, compile_kernels};
    match compile_kernels() {
        Ok(ptx) => {
            for k in Kernel::ALL {
                assert!(
                    ptx.contains(&format!(".entry {}(", k.name())),
                    "PTX lacks {}",
                    k.name()
                );
            }
            let version = ptx
                .lines()
                .find(|l| l.starts_with(".version"))
                .unwrap_or("?");
            let target = ptx
                .lines()
                .find(|l| l.starts_with(".target"))
                .unwrap_or("?");
            println!(
                "NVRTC: {} kernels compiled ({version}, {target})",
                Kernel::ALL.len()
            );
        }
        Err(GpuError::NoDevice(why)) => {
            if std::env::var("ANNEALVI_REQUIRE_GPU").as_deref() == Ok("1") {
                panic!("no NVRTC but ANNEALVI_REQUIRE_GPU=1: {why}");
            }
            println!("skipped: no NVRTC ({why})");
        }
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn cuda_matches_cpu() {
    for (mask, d, h) in [(MaskKind::Halves, 16, 64), (MaskKind::Checkerboard, 7, 9)] {
        let a = arch(d, h, 8, 4, mask);
        let target = IsotropicMixture::bimodal(d, 3.0, 0.8);
        let Some(mut eng) = cuda(&a, &target, 2, 256) else {
            return;
        };
        let mut cpu = cpu_flows(&a);
        load(&mut eng, &cpu);
        for est in [Estimator::Full, Estimator::Stl] {
            let label = format!("cuda d={d} h={h} {mask:?}");
            compare(&mut eng, &mut cpu, &target, est, &label);
        }
    }
}

/// Training on the device: finite losses that go down (d = 16, 4 flows, device noise).
#[test]
fn cuda_training_decreases_loss() {
    let mut a = arch(16, 64, 8, 4, MaskKind::Halves);
    a.sigma0 = 1.0;
    let target = IsotropicMixture::bimodal(16, 3.0, 0.8);
    let Some(mut eng) = cuda(&a, &target, 4, 256) else {
        return;
    };
    for (f, q) in cpu_flows(&a).iter().chain(cpu_flows(&a).iter()).enumerate() {
        eng.set_params(f, q.params()).unwrap();
    }
    let mut first = Vec::new();
    let mut last = Vec::new();
    for step in 0..300u32 {
        eng.train_step(1.0, Estimator::Full, 1e-3, 11, step)
            .unwrap();
        if step == 0 {
            first = eng.losses().unwrap();
        }
    }
    for step in 300..320u32 {
        eng.train_step(1.0, Estimator::Full, 1e-3, 11, step)
            .unwrap();
        let l = eng.losses().unwrap();
        if last.is_empty() {
            last = l;
        } else {
            last.iter_mut().zip(&l).for_each(|(a, b)| *a += b);
        }
    }
    last.iter_mut().for_each(|v| *v /= 20.0);
    println!("training: loss at step 0 {first:?}, mean of steps 300..320 {last:?}");
    for (f, (a, b)) in first.iter().zip(&last).enumerate() {
        assert!(a.is_finite() && b.is_finite(), "flow {f}: non-finite loss");
        assert!(b < a, "flow {f}: loss did not decrease ({a} -> {b})");
    }
}
