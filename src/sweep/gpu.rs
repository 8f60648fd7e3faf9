//! The GPU engines of a sweep (`grid.device = "gpu"` or `"gpu_emulator"`, cargo feature `gpu`):
//! the runs of a cell are trained together as one batch of RealNVP flows by
//! [`GpuFlows`] (cuBLAS strided-batched GEMMs over all flows), at most `grid.gpu_flows` per
//! batch.
//!
//! Same runs as the CPU engine: flow k of a batch is seed s_k of the cell, initialised from the
//! stream (seed, s_k, Init) and fed, at every step, B × d standard normals drawn on the host
//! from its own stream (seed, cell, s_k, Sgd) exactly as the CPU training loop draws them
//! (generated in parallel over flows, uploaded once per step). The device computes in f32 with
//! f32 parameters and Adam state (the CPU engine keeps θ and Adam in f64), so trajectories
//! agree with the CPU engine's up to rounding, and the statistics of a sweep do not depend on
//! the engine. The outcome of each run is read on the CPU from its final θ with the stream
//! (seed, cell, s_k, Eval), as on the CPU engine.
//!
//! Divergence: the loss of every flow is read back after each step; a flow whose loss is not
//! finite at step t is recorded as diverged at t (its device state is left to run on, flows do
//! not interact). `wall_seconds` of a line is the batch's wall time divided by its number of
//! flows. A cell's lines are appended when its batch finishes (a killed sweep loses at most the
//! batches in flight; `--resume` reruns only the missing seeds).

use super::{Cell, Device, RunLine, RunSpec, SweepConfig, noise_index, run_line};
use crate::error::Result;
use crate::family::realnvp::RealNvp;
use crate::family::realnvp_gpu::GpuFlows;
use crate::family::{VariationalFamily, fill_standard_normal};
use crate::seed::{Purpose, stream};
use crate::train::{RunResult, Student};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Trains the runs `todo` (grouped by cell, in batches) and hands each finished line to
/// `append`. With a `deadline`, stops before the first batch that would start after it, or
/// that would end after it at the time per flow-step of the batches already trained (the
/// first batch always starts when the deadline has not passed).
pub(super) fn run(
    cfg: &SweepConfig,
    engine: Device,
    cells: &[Cell],
    todo: &[RunSpec],
    deadline: Option<Instant>,
    append: &(dyn Fn(&RunLine) + Sync),
) -> Result<()> {
    let mut by_cell: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for r in todo {
        by_cell.entry(r.cell).or_default().push(r.seed);
    }
    // (flow-steps trained, seconds spent) by this call
    let mut spent = (0.0f64, 0.0f64);
    for (cell, seeds) in by_cell {
        let steps = cfg.cell_config(&cells[cell]).optim.steps.max(1) as f64;
        for batch in seeds.chunks(cfg.grid.gpu_flows.max(1)) {
            let work = steps * batch.len() as f64;
            if let Some(d) = deadline {
                let now = Instant::now();
                let need = if spent.0 > 0.0 {
                    spent.1 / spent.0 * work
                } else {
                    0.0
                };
                if now >= d || now + Duration::from_secs_f64(need) > d {
                    return Ok(());
                }
            }
            let t = Instant::now();
            for line in run_batch(cfg, engine, cells[cell], batch)? {
                append(&line);
            }
            spent = (spent.0 + work, spent.1 + t.elapsed().as_secs_f64());
        }
    }
    Ok(())
}

/// Trains the seeds `seeds` of `cell` as one batch of flows; one line per seed, in order.
pub(super) fn run_batch(
    cfg: &SweepConfig,
    engine: Device,
    cell: Cell,
    seeds: &[usize],
) -> Result<Vec<RunLine>> {
    let start = Instant::now();
    let exp = cfg.cell_config(&cell).compile()?;
    let c = exp.config();
    let target = exp.target().ok_or_else(|| {
        crate::Error::config(
            "run.target.kind",
            "\"many_well\"",
            "a mixture target for the GPU engines (\"bimodal\", \"mixture\" or \"gmm40\")",
        )
    })?;
    let arch = exp.flow_arch();
    let schedule = exp.schedule();
    let settings = exp.settings();
    let (b, d, nf) = (c.objective.samples, arch.d, seeds.len());
    // the device first: without one, fail before allocating the flows
    let mut dev = match engine {
        Device::Gpu => GpuFlows::new(&arch, target, nf, b)?,
        _ => GpuFlows::emulated(&arch, target, nf, b)?,
    };
    let mut flows: Vec<RealNvp> = seeds
        .par_iter()
        .map(|&s| exp.init_flow(&mut stream(c.seed, s as u64, Purpose::Init)))
        .collect::<Result<_>>()?;
    {
        let thetas: Vec<Vec<f64>> = flows.iter().map(|q| q.params().to_vec()).collect();
        dev.set_all_params(&thetas)?;
    }
    let mut rngs: Vec<_> = seeds
        .iter()
        .map(|&s| stream(c.seed, noise_index(&cell, s), Purpose::Sgd))
        .collect();
    let mut eps = vec![0.0; nf * b * d];
    let mut diverged: Vec<Option<usize>> = vec![None; nf];
    let o = &c.optim;
    for step in 0..o.steps {
        let beta = schedule.beta(step as f64);
        eps.par_chunks_mut(b * d)
            .zip(rngs.par_iter_mut())
            .for_each(|(e, r)| fill_standard_normal(r, e));
        dev.set_noise(&eps)?;
        dev.loss_and_grad(beta, settings.estimator)?;
        for (k, l) in dev.losses()?.iter().enumerate() {
            if diverged[k].is_none() && !l.is_finite() {
                diverged[k] = Some(step);
            }
        }
        if diverged.iter().all(Option::is_some) {
            break;
        }
        dev.adam_step(o.lr, o.adam_beta1, o.adam_beta2, o.adam_eps)?;
    }
    let finals = dev.all_params()?;
    let wall = start.elapsed().as_secs_f64();
    let lines = flows
        .par_iter_mut()
        .zip(finals)
        .zip(seeds.par_iter())
        .zip(diverged.par_iter())
        .map(|(((q, theta), &s), div)| {
            q.params_mut().copy_from_slice(&theta);
            let mut eval = stream(c.seed, noise_index(&cell, s), Purpose::Eval);
            // the parameters stay on the device while training, so the divergence bound
            // (train module docs) is checked on the final ones: a flow out of bounds at the end
            // is diverged at its last step
            let out_of_bounds = theta
                .iter()
                .any(|v| v.is_nan() || v.abs() > settings.divergence_bound);
            let (step, is_div) = match div {
                Some(t) => (*t, true),
                None => (o.steps, out_of_bounds),
            };
            let r = Student::finish(q, target, step, is_div, settings, &mut eval);
            let res = RunResult {
                outcome: r.outcome,
                final_step: r.final_step,
                light_mode_mass: r.light_mode_mass,
                stats: (),
            };
            run_line(cell, s, res, None, Some(r.stats), wall / nf as f64)
        })
        .collect();
    Ok(lines)
}
