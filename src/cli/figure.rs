//! `annealvi figure` and `annealvi reproduce`: the paper's figures.

use super::args::{DeviceArg, FigureArgs, FlowScale, ReproduceArgs};
use super::check_device;
use annealvi::error::{Error, Result};
use annealvi::figure;

/// `annealvi figure N`.
pub fn figure(a: FigureArgs) -> Result<()> {
    let FigureArgs {
        number,
        quick,
        full: _,
        flow,
        device,
        out,
        seed,
        threads: _,
        seeds,
        budgets,
        from,
    } = a;
    // a flag the figure does not use is refused, not silently ignored
    let uses = |flag: &str| -> bool {
        matches!(
            (number.as_str(), flag),
            ("1" | "3", "--seed") | ("4", "--device" | "--from") | ("5", "--flow" | "--device")
        )
    };
    for (flag, given) in [
        ("--seed", seed.is_some()),
        ("--flow", flow.is_some()),
        ("--device", device.is_some()),
        ("--from", from.is_some()),
    ] {
        if given
            && !uses(flag)
            && [
                "1",
                "2",
                "3",
                "4",
                "5",
                "dim",
                "schedules",
                "schedules-flow",
                "adaptive",
            ]
            .contains(&number.as_str())
        {
            return Err(Error::config(
                flag,
                "given",
                &format!(
                    "no {flag} for figure {number}: --seed is for figures 1 and 3, --device for figures \
                     4 and 5, --flow for figure 5, --from for figure 4"
                ),
            ));
        }
    }
    let (seed, flow, device) = (
        seed.unwrap_or(0),
        flow.unwrap_or(FlowScale::Quick),
        device.unwrap_or(DeviceArg::Cpu),
    );
    if budgets.is_some() && number != "schedules" {
        return Err(Error::config(
            "--budgets",
            "given",
            "only with figure schedules",
        ));
    }
    if number == "dim" {
        figure::figure_dim(&out, quick)?;
        return Ok(());
    }
    if number == "schedules" {
        let mut spec = if quick {
            figure::SchedulesSpec::quick()
        } else {
            figure::SchedulesSpec::full()
        };
        if let Some(n) = seeds {
            if n == 0 {
                return Err(Error::config("--seeds", n, "at least 1"));
            }
            spec.seeds = n;
        }
        if let Some(b) = budgets {
            if b.is_empty() {
                return Err(Error::config("--budgets", "", "at least one budget"));
            }
            for &t in &b {
                if !(t.is_finite() && (10.0..=1e6).contains(&t)) {
                    return Err(Error::config(
                        "--budgets",
                        t,
                        "annealing budgets in [10, 1e6] steps",
                    ));
                }
            }
            spec.budgets = b;
        }
        figure::figure_schedules_with(&out, &figure::schedules_config()?, &spec)?;
        return Ok(());
    }
    if number == "schedules-flow" {
        if seeds == Some(0) {
            return Err(Error::config("--seeds", 0, "at least 1"));
        }
        figure::figure_schedules_flow(&out, quick, seeds)?;
        return Ok(());
    }
    if number == "adaptive" {
        figure::figure_adaptive(&out, quick, seeds)?;
        return Ok(());
    }
    if seeds.is_some() {
        return Err(Error::config(
            "--seeds",
            "given",
            "only with figure schedules, schedules-flow and adaptive",
        ));
    }
    let number: u32 = number.parse().map_err(|_| {
        Error::config(
            "figure",
            &number,
            "1, 2, 3, 4, 5, dim, schedules, schedules-flow or adaptive",
        )
    })?;
    if number == 4 || (number == 5 && flow != FlowScale::None) {
        check_device(device)?;
    }
    let device = device.device();
    if let Some(dir) = from {
        if number != 4 {
            return Err(Error::config(
                "--from",
                dir.display(),
                "only with figure 4 (a RealNVP sweep directory)",
            ));
        }
        let p = figure::figure4_from(&dir, &out)?;
        println!(
            "Figure 4 from {}: {}/{} runs ({:.1}%), {}/{} cells, {}/{} training steps \
             ({:.1}%) done; wrote {}",
            dir.display(),
            p.runs_done,
            p.runs_planned,
            100.0 * p.fraction(),
            p.cells_done,
            p.cells_planned,
            p.steps_done,
            p.steps_planned,
            100.0 * p.steps_done as f64 / p.steps_planned.max(1) as f64,
            out.join("fig4.png").display()
        );
        return Ok(());
    }
    match number {
        1 => figure::figure1(&out, quick, seed),
        2 => figure::figure2(&out, quick),
        3 => figure::figure3(&out, quick, seed),
        4 => figure::figure4(&out, quick, device),
        5 => {
            let dir = out.join("fig4");
            let flow = flow.quick().map(|q| (dir.as_path(), q, device));
            figure::figure5(&out, quick, flow)
        }
        n => Err(Error::config(
            "figure",
            n,
            "1, 2, 3, 4, 5, dim, schedules, schedules-flow or adaptive",
        )),
    }
}

/// `annealvi reproduce`.
pub fn reproduce(a: ReproduceArgs) -> Result<()> {
    let ReproduceArgs {
        quick: _,
        full,
        flow,
        device,
        out,
        threads: _,
    } = a;
    if flow != FlowScale::None {
        check_device(device)?;
    }
    figure::reproduce(&out, !full, flow.quick(), device.device())
}
