//! `annealvi bench`: throughput of SGD on the mixture, of RealNVP training on the CPU and (cargo
//! feature `gpu`) on the device.

#[cfg(feature = "gpu")]
use super::args::FlowGpuArgs;
use super::args::{BenchSimulation, FlowArgs, FormulaArgs, GmmArgs};
use super::{check_range, check_threads};
use annealvi::bench::{FlowBench, GmmBench};
use annealvi::config::Simulation;
use annealvi::error::{Error, Result};
use annealvi::family::realnvp::Precision;

/// `annealvi bench gmm`.
pub fn gmm(a: GmmArgs) -> Result<()> {
    let GmmArgs {
        d,
        seeds,
        samples,
        steps,
        threads,
        simulation,
        rounds,
    } = a;
    check_range("--d", d, 1, 1 << 20)?;
    check_range("--rounds", rounds, 1, 1000)?;
    check_range("--seeds", seeds, 1, 1 << 24)?;
    check_range("--samples", samples, 1, 1 << 20)?;
    check_range("--steps", steps, 1, 1 << 30)?;
    check_threads(threads)?;
    let simulations: &[Simulation] = match simulation {
        BenchSimulation::Vector => &[Simulation::Vector],
        BenchSimulation::Statistics => &[Simulation::Statistics],
        BenchSimulation::Both => &[Simulation::Vector, Simulation::Statistics],
    };
    println!(
        "bench gmm: d={d} seeds={seeds} samples/component={samples} steps={steps} threads={}",
        if threads == 0 {
            rayon::current_num_threads()
        } else {
            threads
        }
    );
    let mut rates = Vec::new();
    let mut ratios = Vec::new();
    for round in 0..rounds {
        rates.clear();
        for &simulation in simulations {
            let b = GmmBench {
                d,
                seeds,
                samples,
                steps,
                threads,
                simulation,
            };
            let r = b.run()?;
            let tag = if rounds > 1 {
                format!(" (round {})", round + 1)
            } else {
                String::new()
            };
            println!(
                "simulation {simulation:?}{tag}: wall {:.3} s; mean light-mode mass {:.4}; {:.1} run-steps/s",
                r.seconds, r.mean_light_mass, r.run_steps_per_sec
            );
            rates.push(r.run_steps_per_sec);
        }
        if let [v, s] = rates[..] {
            ratios.push(s / v);
        }
    }
    if !ratios.is_empty() {
        ratios.sort_by(f64::total_cmp);
        let median = ratios[ratios.len() / 2];
        if ratios.len() > 1 {
            println!(
                "statistics / vector: {median:.2}x (median of {} rounds; range {:.2}-{:.2})",
                ratios.len(),
                ratios[0],
                ratios[ratios.len() - 1]
            );
        } else {
            println!("statistics / vector: {median:.2}x");
        }
    }
    println!("run-steps/s: {:.1}", rates[rates.len() - 1]);
    Ok(())
}

/// `annealvi bench flow`.
pub fn flow(a: FlowArgs) -> Result<()> {
    let FlowArgs {
        d,
        width,
        batch,
        steps,
        threads,
        precision,
    } = a;
    check_flow_model(d, width, batch, steps)?;
    check_range("--threads", threads, 1, 1024)?;
    let precision = match precision.as_str() {
        "f32" => Precision::F32,
        "f64" => Precision::F64,
        other => return Err(Error::config("--precision", other, "f32 or f64")),
    };
    let b = FlowBench {
        d,
        width,
        batch,
        steps,
        threads,
        precision,
    };
    println!(
        "bench flow: d={d} width={width} batch={batch} steps={steps} threads={threads} precision={precision:?} (8 couplings, depth-4 relu MLPs, Adam 1e-3)"
    );
    let r = b.run()?;
    println!(
        "wall (flow 0): {:.3} s; loss {:.3} -> {:.3}; run-steps/s (all flows): {:.2}",
        r.seconds, r.loss.0, r.loss.1, r.run_steps_per_sec
    );
    println!("steps/s: {:.3}", r.steps_per_sec);
    Ok(())
}

/// `annealvi bench flow-gpu`.
#[cfg(feature = "gpu")]
pub fn flow_gpu(a: FlowGpuArgs) -> Result<()> {
    let FlowGpuArgs {
        d,
        width,
        batch,
        steps,
        warmup,
        flows,
    } = a;
    check_flow_model(d, width, batch, steps)?;
    check_range("--warmup", warmup, 0, 1 << 30)?;
    check_range("--flows", flows, 1, 1 << 16)?;
    println!(
        "bench flow-gpu: d={d} width={width} batch={batch} steps={steps} flows={flows} (8 couplings, depth-4 relu MLPs, Adam 1e-3, f32)"
    );
    let r = annealvi::family::realnvp_gpu::bench_training(
        d, width, batch, steps, flows, warmup, false,
    )?;
    println!(
        "device: {}; wall {:.3} s; loss (flow 0) {:.3} -> {:.3}; run-steps/s (all flows): {:.2}",
        r.device, r.seconds, r.loss.0, r.loss.1, r.run_steps_per_sec
    );
    println!("steps/s: {:.3}", r.steps_per_sec);
    Ok(())
}

/// The flow benchmarks' model and run: dimension d ≥ 2, MLP width, batch and timed steps.
fn check_flow_model(d: usize, width: usize, batch: usize, steps: usize) -> Result<()> {
    check_range("--d", d, 2, 1 << 16)?;
    check_range("--width", width, 1, 1 << 16)?;
    check_range("--batch", batch, 1, 1 << 20)?;
    check_range("--steps", steps, 1, 1 << 30)
}

/// `annealvi bench formula`.
pub fn formula(a: FormulaArgs) -> Result<()> {
    use annealvi::theory::formula::{FormulaModel, SharpSettings, time_sharp};
    let FormulaArgs {
        config,
        repeat,
        rounds,
    } = a;
    check_range("--repeat", repeat, 1, 1000)?;
    check_range("--rounds", rounds, 1, 100)?;
    let cfg = match &config {
        Some(_) => annealvi::sweep::SweepConfig::load(config.as_deref(), &[])?,
        None => annealvi::figure::schedules_config()?,
    };
    let model = FormulaModel::from_sweep(&cfg).ok_or_else(|| {
        Error::Invalid(
            "bench formula needs a bimodal target, 2 components, fixed weights 1/2 and random \
             initial means"
                .into(),
        )
    })?;
    let cells: Vec<(f64, f64)> = cfg
        .cells()
        .iter()
        .filter(|c| c.t0 > 0.0)
        .map(|c| (c.beta_i, c.t0))
        .collect();
    println!(
        "bench formula: {} annealed cells, {} pass(es) per measurement, {rounds} round(s), one thread",
        cells.len(),
        repeat
    );
    let (fast, reference) = (SharpSettings::default(), SharpSettings::reference());
    // warm the shared tables
    let _ = model.sharp(0.1, 100.0);
    let (mut runs_f, mut runs_r) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        runs_r.push(time_sharp(&model, &cells, &reference, repeat));
        runs_f.push(time_sharp(&model, &cells, &fast, repeat));
    }
    let median = |v: &[annealvi::theory::formula::SharpCost],
                  f: fn(&annealvi::theory::formula::SharpCost) -> f64| {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(f64::total_cmp);
        x[x.len() / 2]
    };
    let (cf, cr) = (median(&runs_f, |c| c.cpu), median(&runs_r, |c| c.cpu));
    let (wf, wr) = (median(&runs_f, |c| c.wall), median(&runs_r, |c| c.wall));
    let (f, r) = (&runs_f[0], &runs_r[0]);
    let (gap, at) =
        f.p.iter()
            .zip(&r.p)
            .zip(&cells)
            .map(|((a, b), c)| ((a - b).abs(), *c))
            .fold(
                (0.0, (0.0, 0.0)),
                |acc, x| if x.0 > acc.0 { x } else { acc },
            );
    println!(
        "reference settings: {:.3} ms/cell CPU ({:.3} wall), {:.1} integrations/cell",
        1e3 * cr,
        1e3 * wr,
        r.integrations
    );
    println!(
        "default settings:   {:.3} ms/cell CPU ({:.3} wall), {:.1} integrations/cell; {:.2}x \
         less CPU; largest |p_default - p_reference| = {gap:.4} at beta_i = {}, t0 = {}",
        1e3 * cf,
        1e3 * wf,
        f.integrations,
        cr / cf,
        at.0,
        at.1
    );
    let mf = cf;
    println!("ms/cell: {:.4}", 1e3 * mf);
    Ok(())
}
