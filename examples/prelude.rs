//! The library from Rust through `annealvi::prelude`: a schedule, the ODE prediction of its
//! collapse probability, the fastest exponential schedule below 10%, and one SGD run.
//!
//!     cargo run --release --example prelude

use annealvi::prelude::*;

fn main() -> Result<()> {
    // the paper's model: bimodal target in d = 512, R = 3, w* = 0.8, SGD with η = 0.05
    let target = Bimodal {
        d: 512,
        r: 3.0,
        w_star: 0.8,
        h: 0.5 * (0.8f64 / 0.2).ln(),
    };
    let schedule = Exponential {
        beta_i: 0.05,
        t0: 4000.0,
    };
    println!(
        "beta(0) = {}, beta(2000) = {:.4}, rate r = {:.6} per step",
        schedule.beta(0.0),
        schedule.beta(2000.0),
        schedule.rate()
    );
    // P(collapse) over 2000 initial conditions, 500 steps at beta = 1 after the annealing
    let pred = Predictor::new(target, 512, 0.05, 1.0, 500.0, 2000, 0);
    let c = pred.collapsed(&schedule, 4000.0)?;
    let (lo, hi) = wilson_interval(c, 2000);
    println!(
        "predicted P(collapse) = {:.3} [{lo:.3}, {hi:.3}]",
        c as f64 / 2000.0
    );
    let betas = [0.01, 0.03, 0.1];
    let (best, _) = fastest_exponential(&pred, 0.1, &betas, (100.0, 20000.0))?;
    if let Some(d) = best {
        println!(
            "fastest schedule with P <= 0.1 among beta_i in {betas:?}: beta_i = {}, t0 = {}",
            d.beta_i, d.t0
        );
    }
    // one SGD run of a configuration (TOML text, validated like the CLI's files)
    let cfg = Config::from_toml_str(
        "[target]\nd = 64\n[student]\nsigma0 = \"schedule\"\n\
         [schedule]\nkind = \"exponential\"\nbeta_i = 0.05\nt0 = 1000\n[optim]\nsteps = 1500\n",
    )?;
    let mut rec = Recorder::default();
    // compiled once (validated, target and schedule built), then run 0 by the driver
    let exp = cfg.compile()?;
    let run = Trainer::new(&exp).index(0).observer(&mut rec).run()?;
    let (_, res) = run.into_mixture().expect("the Gaussian-mixture student");
    println!(
        "SGD run (d = 64): {} after {} steps, light-mode mass {:.3}",
        res.outcome.label(),
        res.final_step,
        res.light_mode_mass
    );
    Ok(())
}
