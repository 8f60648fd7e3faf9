//! Schedule design from theory: the fastest exponential schedule with a predicted collapse
//! probability below a tolerance, and a comparison of schedule shapes at equal length
//! (docs/theory.md §10).
//!
//! Predictions use the tabulated ODE Monte Carlo ([`crate::theory::monte_carlo`]) with a fixed
//! set of initial conditions (common random numbers across candidate schedules, so the
//! searched curve P(t0) has no sampling jitter from one candidate to the next). [`run`] then
//! checks the chosen schedule by SGD.
//!
//! The searches, the comparison and the SGD check run in parallel on the caller's rayon pool
//! (install one to choose the number of threads); the results do not depend on it.

use crate::error::{Error, Result};
use crate::metrics::wilson_interval;
use crate::schedule::{Exponential, Linear, LinearTemperature, Schedule};
use crate::seed::{Purpose, stream};
use crate::sweep::{Axis, RunSpec, SweepConfig};
use crate::target::Bimodal;
use crate::theory::monte_carlo::CollapseTable;
use crate::theory::quasi_static::{QuasiStatic, draw_initial};
use crate::theory::tables::EntropyTable;
use serde::Serialize;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

pub mod optimal;

/// What the predictions need.
pub struct Predictor {
    /// The target.
    pub target: Bimodal,
    /// Dimension d.
    pub d: usize,
    /// η (τ = η t).
    pub lr: f64,
    /// Standard deviation of the initial means' coordinates.
    pub init_scale: f64,
    /// Steps at β = 1 after the annealing.
    pub extra_steps: f64,
    /// Initial conditions (m_1, m_2, q_11, q_12, q_22), drawn once.
    pub ics: Vec<[f64; 5]>,
    entropy: EntropyTable,
}

impl Predictor {
    /// The predictor of a sweep configuration's model (bimodal target, 2 components, fixed
    /// weights ½, random initial means) with `n` initial conditions.
    pub fn from_sweep(cfg: &SweepConfig, n: usize) -> Result<Self> {
        let run = &cfg.run;
        let target = run.build_target();
        let b = target
            .as_bimodal()
            .ok_or_else(|| Error::Invalid("design needs run.target.kind = \"bimodal\"".into()))?;
        let s = run.init_scale();
        if run.student.components != 2 || run.fixed_w1() != Some(0.5) || s.is_none() {
            return Err(Error::Invalid(
                "design needs a 2-component student with fixed equal weights and random \
                 initial means (run.student.components = 2, weights ½, trainable_weights = \
                 false, no means)"
                    .into(),
            ));
        }
        Ok(Self::new(
            *b,
            run.target.d,
            run.optim.lr,
            s.unwrap_or(1.0),
            cfg.grid.extra_steps as f64,
            n,
            run.seed,
        ))
    }

    /// A predictor with `n` initial conditions drawn from stream (seed, 0, Eval); fixed equal
    /// weights.
    pub fn new(
        target: Bimodal,
        d: usize,
        lr: f64,
        init_scale: f64,
        extra_steps: f64,
        n: usize,
        seed: u64,
    ) -> Self {
        let mut rng = stream(seed, 0, Purpose::Eval);
        let ics = (0..n)
            .map(|_| draw_initial(&mut rng, d, init_scale))
            .collect();
        Self {
            target,
            d,
            lr,
            init_scale,
            extra_steps,
            ics,
            entropy: EntropyTable::new(0.5),
        }
    }

    /// Collapsed count among the initial conditions under `schedule`, which reaches β = 1 at
    /// step `t_end_anneal`; the run lasts `t_end_anneal + extra_steps` steps.
    pub fn collapsed(&self, schedule: &dyn Schedule, t_end_anneal: f64) -> Result<usize> {
        let flow = QuasiStatic::new(self.target, schedule, self.lr, &self.entropy);
        let times = (
            self.lr * t_end_anneal,
            self.lr * (t_end_anneal + self.extra_steps),
        );
        let table = CollapseTable::new(&flow, self.d, self.init_scale, times)?;
        Ok(self.ics.iter().filter(|x| table.collapses(x)).count())
    }

    /// Predicted P(collapse) under `schedule`.
    pub fn p(&self, schedule: &dyn Schedule, t_end_anneal: f64) -> Result<f64> {
        Ok(self.collapsed(schedule, t_end_anneal)? as f64 / self.ics.len() as f64)
    }
}

/// The chosen exponential schedule.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Design {
    /// Initial inverse temperature.
    pub beta_i: f64,
    /// Annealing time (steps to reach β = 1).
    pub t0: f64,
    /// Predicted P(collapse) (ODE Monte Carlo).
    pub p_predicted: f64,
    /// Collapsed initial conditions of the prediction.
    pub collapsed: usize,
}

/// Each β_i with its design (None where no t0 in range reaches the tolerance).
pub type PerBeta = Vec<(f64, Option<Design>)>;

/// For each β_i in `betas`, the smallest t0 ∈ [t_min, t_max] (to 2% by bisection in ln t0)
/// whose predicted P(collapse) ≤ `eps`; then the β_i with the smallest such t0. Assumes P
/// decreases in t0 once below `eps` (true on the paper's grids; a candidate whose t_max
/// exceeds `eps` is skipped). Also returns every β_i's result (None where unreachable).
pub fn fastest_exponential(
    pred: &Predictor,
    eps: f64,
    betas: &[f64],
    t_range: (f64, f64),
) -> Result<(Option<Design>, PerBeta)> {
    fastest_exponential_cancellable(pred, eps, betas, t_range, &AtomicBool::new(false))
}

/// [`fastest_exponential`] that stops once `cancel` is set (read before every prediction):
/// then `Err(Error::Interrupted)`.
pub fn fastest_exponential_cancellable(
    pred: &Predictor,
    eps: f64,
    betas: &[f64],
    (t_min, t_max): (f64, f64),
    cancel: &AtomicBool,
) -> Result<(Option<Design>, PerBeta)> {
    use rayon::prelude::*;
    let per_beta: Vec<(f64, Option<Design>)> = betas
        .par_iter()
        .map(|&bi| -> Result<(f64, Option<Design>)> {
            let eval = |t0: f64| -> Result<(f64, usize)> {
                if cancel.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted);
                }
                let c = pred.collapsed(&Exponential { beta_i: bi, t0 }, t0)?;
                Ok((c as f64 / pred.ics.len() as f64, c))
            };
            let top = eval(t_max)?;
            if top.0 > eps {
                return Ok((bi, None));
            }
            let (mut lo, mut hi, mut at_hi) = (t_min.ln(), t_max.ln(), top);
            let low = eval(t_min)?;
            if low.0 <= eps {
                return Ok((
                    bi,
                    Some(Design {
                        beta_i: bi,
                        t0: t_min,
                        p_predicted: low.0,
                        collapsed: low.1,
                    }),
                ));
            }
            while hi - lo > 0.02 {
                let mid = 0.5 * (lo + hi);
                let v = eval(mid.exp())?;
                if v.0 <= eps {
                    hi = mid;
                    at_hi = v;
                } else {
                    lo = mid;
                }
            }
            Ok((
                bi,
                Some(Design {
                    beta_i: bi,
                    t0: hi.exp().ceil(),
                    p_predicted: at_hi.0,
                    collapsed: at_hi.1,
                }),
            ))
        })
        .collect::<Result<_>>()?;
    let best = per_beta
        .iter()
        .filter_map(|(_, d)| *d)
        .min_by(|a, b| a.t0.total_cmp(&b.t0));
    Ok((best, per_beta))
}

/// The schedule shapes compared by [`compare_schedules`].
pub const SHAPES: [&str; 3] = ["exponential", "linear_beta", "linear_temperature"];

/// A schedule of `shape` from β_i to 1 in t0 steps.
pub fn shaped(shape: &str, beta_i: f64, t0: f64) -> Box<dyn Schedule> {
    match shape {
        "linear_beta" => Box::new(Linear { beta_i, t0 }),
        "linear_temperature" => Box::new(LinearTemperature { beta_i, t0 }),
        _ => Box::new(Exponential { beta_i, t0 }),
    }
}

/// One row of the comparison: the best β_i of a shape at a given length.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct ShapeResult {
    /// Schedule shape.
    pub shape: &'static str,
    /// Annealing time t0 (steps).
    pub t0: f64,
    /// The β_i minimising the predicted P(collapse).
    pub best_beta_i: f64,
    /// That minimum.
    pub p_min: f64,
}

/// For each shape and each annealing length t0: min over β_i ∈ `betas` of the predicted
/// P(collapse).
pub fn compare_schedules(pred: &Predictor, betas: &[f64], t0s: &[f64]) -> Result<Vec<ShapeResult>> {
    use rayon::prelude::*;
    let jobs: Vec<(&'static str, f64, f64)> = SHAPES
        .iter()
        .flat_map(|&s| {
            t0s.iter()
                .flat_map(move |&t0| betas.iter().map(move |&b| (s, t0, b)))
        })
        .collect();
    let ps: Vec<f64> = jobs
        .par_iter()
        .map(|&(s, t0, b)| pred.p(shaped(s, b, t0).as_ref(), t0))
        .collect::<Result<_>>()?;
    let mut out = Vec::new();
    for &s in SHAPES.iter() {
        for &t0 in t0s {
            let mut best = (f64::INFINITY, f64::NAN);
            for (j, &(js, jt, jb)) in jobs.iter().enumerate() {
                if js == s && jt == t0 && ps[j] < best.0 {
                    best = (ps[j], jb);
                }
            }
            out.push(ShapeResult {
                shape: s,
                t0,
                best_beta_i: best.1,
                p_min: best.0,
            });
        }
    }
    Ok(out)
}

/// SGD check of a schedule: (collapsed, n) over seeds 0..n−1 of the cell (β_i, t0) of `cfg`
/// (same streams as a sweep of that cell).
pub fn simulate(cfg: &SweepConfig, beta_i: f64, t0: f64, n: usize) -> (usize, usize) {
    match simulate_cancellable(cfg, beta_i, t0, n, &AtomicBool::new(false)) {
        Some(r) => r,
        None => unreachable!("a flag nobody sets cancels nothing"),
    }
}

/// [`simulate`] that stops once `cancel` is set (read at every SGD step): then `None`.
pub fn simulate_cancellable(
    cfg: &SweepConfig,
    beta_i: f64,
    t0: f64,
    n: usize,
    cancel: &AtomicBool,
) -> Option<(usize, usize)> {
    use rayon::prelude::*;
    let mut one = cfg.clone();
    one.grid.beta_i = Axis::List(vec![beta_i]);
    one.grid.t0 = Axis::List(vec![t0]);
    one.grid.no_annealing = false;
    one.grid.seeds = n;
    let cells = one.cells();
    let bar = crate::progress::bar(n as u64, "SGD check");
    let outcomes: Option<Vec<bool>> = (0..n)
        .into_par_iter()
        .map(|seed| {
            let line = one.run_one_cancellable(RunSpec { cell: 0, seed }, &cells, cancel)?;
            bar.inc(1);
            Some(line.outcome == crate::metrics::OutcomeKind::Collapsed)
        })
        .collect();
    bar.finish_and_clear();
    let collapsed = outcomes?.iter().filter(|c| **c).count();
    Some((collapsed, n))
}

/// Options of [`run`].
#[derive(Clone, Debug)]
pub struct DesignOptions {
    /// Largest acceptable predicted P(collapse).
    pub max_collapse: f64,
    /// Initial conditions of the ODE Monte Carlo.
    pub ics: usize,
    /// SGD seeds of the check (0 = no check).
    pub check_seeds: usize,
    /// Also compare schedule shapes at these annealing lengths (empty = no comparison).
    pub compare_t0: Vec<f64>,
}

/// `annealvi design`: the fastest exponential schedule with predicted P(collapse) ≤ ε, its SGD
/// check, and optionally the comparison of schedule shapes. Returns the report (markdown).
pub fn run(cfg: &SweepConfig, o: &DesignOptions) -> Result<String> {
    let pred = Predictor::from_sweep(cfg, o.ics)?;
    let betas: Vec<f64> = (0..16)
        .map(|i| 10f64.powf(-3.0 + 2.7 * i as f64 / 15.0))
        .collect();
    let (best, all) = fastest_exponential(&pred, o.max_collapse, &betas, (10.0, 2e5))?;
    let mut r = String::new();
    let _ = writeln!(
        r,
        "# Schedule design: P(collapse) ≤ {} (d = {}, R = {}, η = {}, {} steps at β = 1 after \
         annealing)\n",
        o.max_collapse, pred.d, pred.target.r, pred.lr, pred.extra_steps
    );
    let _ = writeln!(
        r,
        "Prediction: quasi-static ODE Monte Carlo over {} initial conditions.\n",
        o.ics
    );
    let _ = writeln!(r, "| β_i | fewest steps t0 | predicted P |\n|---|---|---|");
    for (bi, d) in &all {
        match d {
            Some(d) => {
                let _ = writeln!(r, "| {bi:.4} | {:.0} | {:.4} |", d.t0, d.p_predicted);
            }
            None => {
                let _ = writeln!(r, "| {bi:.4} | > 200000 | — |");
            }
        }
    }
    match best {
        None => {
            let _ = writeln!(
                r,
                "\nNo exponential schedule with t0 ≤ 200000 reaches P ≤ {}.",
                o.max_collapse
            );
        }
        Some(d) => {
            let (lo, hi) = wilson_interval(d.collapsed, o.ics);
            let _ = writeln!(
                r,
                "\n**Design**: β_i = {:.4}, t0 = {:.0} (rate r = {:.6} per step): predicted \
                 P(collapse) = {:.4} [{lo:.4}, {hi:.4}].",
                d.beta_i,
                d.t0,
                Exponential {
                    beta_i: d.beta_i,
                    t0: d.t0
                }
                .rate(),
                d.p_predicted
            );
            if o.check_seeds > 0 {
                let (c, n) = simulate(cfg, d.beta_i, d.t0, o.check_seeds);
                let (lo, hi) = wilson_interval(c, n);
                let _ = writeln!(
                    r,
                    "**SGD check** ({n} seeds, B = {}): measured P(collapse) = {:.4} [{lo:.4}, \
                     {hi:.4}] ({c}/{n}).",
                    cfg.run.objective.samples,
                    c as f64 / n as f64
                );
            }
        }
    }
    if !o.compare_t0.is_empty() {
        let res = compare_schedules(&pred, &betas, &o.compare_t0)?;
        let _ = writeln!(
            r,
            "\n## Schedule shapes at equal length (min over β_i of the predicted P)\n"
        );
        let mut head = String::from("| t0 |");
        let mut sep = String::from("|---|");
        for s in SHAPES {
            let _ = write!(head, " {s} (best β_i) |");
            sep.push_str("---|");
        }
        let _ = writeln!(r, "{head}\n{sep}");
        for &t0 in &o.compare_t0 {
            let mut row = format!("| {t0:.0} |");
            let mut winner = ("", f64::INFINITY);
            for s in SHAPES {
                if let Some(x) = res.iter().find(|x| x.shape == s && x.t0 == t0) {
                    let _ = write!(row, " {:.4} ({:.4}) |", x.p_min, x.best_beta_i);
                    if x.p_min < winner.1 {
                        winner = (s, x.p_min);
                    }
                }
            }
            let _ = writeln!(r, "{row}");
        }
        // a shape wins a length if its P is lowest by more than the Monte-Carlo resolution
        let mut wins = std::collections::BTreeMap::new();
        let resolution = 1.0 / o.ics as f64;
        for &t0 in &o.compare_t0 {
            let row: Vec<&ShapeResult> = res.iter().filter(|x| x.t0 == t0).collect();
            let min = row.iter().map(|x| x.p_min).fold(f64::INFINITY, f64::min);
            let best: Vec<&str> = row
                .iter()
                .filter(|x| x.p_min <= min + resolution)
                .map(|x| x.shape)
                .collect();
            let key = if best.len() == 1 {
                best[0].to_string()
            } else {
                format!("tie ({})", best.join(", "))
            };
            *wins.entry(key).or_insert(0) += 1;
        }
        let _ = writeln!(r, "\nLowest predicted P, lengths won: {wins:?}");
    }
    Ok(r)
}
