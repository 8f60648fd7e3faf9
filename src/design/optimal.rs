//! Optimal schedules at a fixed annealing budget (docs/theory.md §10, "Optimal schedules").
//!
//! The schedule is piecewise linear in ln β over `segments` equal slices of the budget T:
//! β(0) is free, β(T) = 1, and the increments of ln β over the slices are non-negative
//! fractions of the total span −ln β(0) (softmax of free parameters), so every candidate is
//! monotone and ends exactly at 1. After T the run continues at β = 1 for the grid's
//! `extra_steps`, as in a sweep.
//!
//! The objective is the sharp formula ([`FormulaModel::sharp_for`], milliseconds per schedule),
//! minimised by Nelder–Mead (argmin) from two starts; the reported P(collapse) of the result,
//! and of the best exponential and linear-in-temperature schedules at the same budget (β_i by a
//! 1-D Brent search on the same formula), comes from the tabulated ODE Monte Carlo
//! ([`Predictor`]).

use super::Predictor;
use crate::error::{Error, Result};
use crate::schedule::{Exponential, LinearTemperature, Points, Schedule};
use crate::theory::formula::FormulaModel;
use argmin::core::{CostFunction, Executor, State};
use argmin::solver::brent::BrentOpt;
use argmin::solver::neldermead::NelderMead;

/// Largest span −ln β(0) of a candidate: β(0) ≥ e^{−16} ≈ 1.1e-7.
const MAX_SPAN: f64 = 16.0;
/// Smallest span: β(0) ≤ e^{−1e-4} (no annealing, in effect).
const MIN_SPAN: f64 = 1e-4;
/// Bound on the free log-weights of the slices.
const MAX_LOG_WEIGHT: f64 = 12.0;
/// Range of β_i searched for the one-parameter shapes.
const BETA_I_RANGE: (f64, f64) = (1e-6, 0.95);

/// The piecewise-log-linear schedule of the parameters `theta` at budget `budget` (steps):
/// `theta[0]` = ln(−ln β(0)), `theta[i]` (i ≥ 1) the log-weight of slice i (slice 0 has weight
/// 1). Knots at the whole steps round(j T / K), j = 0..K, K = theta.len().
pub fn schedule_of(theta: &[f64], budget: f64) -> Points {
    Points::new(knots_of(theta, budget))
}

/// The knots (step, β) of [`schedule_of`].
pub fn knots_of(theta: &[f64], budget: f64) -> Vec<(f64, f64)> {
    let k = theta.len();
    assert!(k >= 1);
    let span = theta[0].exp().clamp(MIN_SPAN, MAX_SPAN);
    let w: Vec<f64> = std::iter::once(1.0)
        .chain(
            theta[1..]
                .iter()
                .map(|x| x.clamp(-MAX_LOG_WEIGHT, MAX_LOG_WEIGHT).exp()),
        )
        .collect();
    let total: f64 = w.iter().sum();
    let mut out = Vec::with_capacity(k + 1);
    let mut acc = 0.0;
    for j in 0..=k {
        let t = (j as f64 * budget / k as f64).round();
        let beta = if j == k {
            1.0
        } else {
            (-span * (1.0 - acc / total)).exp()
        };
        out.push((t, beta));
        if j < k {
            acc += w[j];
        }
    }
    out
}

/// Parameters of the exponential schedule from `beta_i` (equal slices).
pub fn theta_of_exponential(beta_i: f64, segments: usize) -> Vec<f64> {
    let mut t = vec![0.0; segments];
    t[0] = (-beta_i.ln()).clamp(MIN_SPAN, MAX_SPAN).ln();
    t
}

/// Parameters of the schedule through ln β at the `segments + 1` equal-slice knots of
/// `schedule` (β at the last knot taken as 1): span = −ln β(0), slice weights proportional to
/// the rise of ln β over each slice. The exponential schedule gives
/// [`theta_of_exponential`]; a schedule that does not rise over some slice gets the smallest
/// weight.
pub fn theta_of_schedule(schedule: &dyn Schedule, budget: f64, segments: usize) -> Vec<f64> {
    let lb: Vec<f64> = (0..=segments)
        .map(|j| {
            if j == segments {
                0.0
            } else {
                schedule
                    .beta((j as f64 * budget / segments as f64).round())
                    .clamp(f64::MIN_POSITIVE, 1.0)
                    .ln()
            }
        })
        .collect();
    let rise = |j: usize| (lb[j + 1] - lb[j]).max(1e-300);
    let mut t = vec![0.0; segments];
    t[0] = (-lb[0]).clamp(MIN_SPAN, MAX_SPAN).ln();
    for (j, x) in t.iter_mut().enumerate().skip(1) {
        *x = (rise(j) / rise(0))
            .ln()
            .clamp(-MAX_LOG_WEIGHT, MAX_LOG_WEIGHT);
    }
    t
}

/// The sharp formula's P(collapse) of `schedule`, annealing to step `budget` then
/// `extra_steps` at β = 1; 1 where the formula fails (so that the optimiser avoids it).
fn formula_p(model: &FormulaModel, schedule: &dyn Schedule, budget: f64) -> f64 {
    let p = model.sharp_for(schedule, budget + model.extra_steps).p;
    if p.is_finite() { p } else { 1.0 }
}

struct KnotCost<'a> {
    model: &'a FormulaModel,
    budget: f64,
}

impl CostFunction for KnotCost<'_> {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, theta: &Vec<f64>) -> std::result::Result<f64, argmin::core::Error> {
        Ok(formula_p(
            self.model,
            &schedule_of(theta, self.budget),
            self.budget,
        ))
    }
}

/// A one-parameter shape at a budget, as a function of ln β_i.
struct ShapeCost<'a> {
    model: &'a FormulaModel,
    shape: Shape,
    budget: f64,
}

impl CostFunction for ShapeCost<'_> {
    type Param = f64;
    type Output = f64;
    fn cost(&self, ln_beta_i: &f64) -> std::result::Result<f64, argmin::core::Error> {
        let s = self.shape.schedule(ln_beta_i.exp(), self.budget);
        Ok(formula_p(self.model, s.as_ref(), self.budget))
    }
}

/// The one-parameter shapes compared with the optimal schedule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// β_i^(1 − t/T).
    Exponential,
    /// 1/β falling linearly from 1/β_i to 1.
    LinearTemperature,
}

impl Shape {
    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Shape::Exponential => "exponential",
            Shape::LinearTemperature => "linear_temperature",
        }
    }
    /// The schedule from β_i to 1 in `budget` steps.
    pub fn schedule(self, beta_i: f64, budget: f64) -> Box<dyn Schedule> {
        match self {
            Shape::Exponential => Box::new(Exponential { beta_i, t0: budget }),
            Shape::LinearTemperature => Box::new(LinearTemperature { beta_i, t0: budget }),
        }
    }
}

fn argmin_err(e: argmin::core::Error) -> Error {
    Error::Invalid(format!("optimiser: {e}"))
}

/// The β_i of `shape` minimising the sharp formula at `budget`: a grid of 15 values of ln β_i
/// over [1e-6, 0.95], then Brent's method in the bracket around the grid's minimum. Returns
/// (β_i, formula P).
pub fn best_beta_i(model: &FormulaModel, shape: Shape, budget: f64) -> Result<(f64, f64)> {
    use rayon::prelude::*;
    let (lo, hi) = (BETA_I_RANGE.0.ln(), BETA_I_RANGE.1.ln());
    let n = 15;
    let xs: Vec<f64> = (0..n)
        .map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64)
        .collect();
    let cost = ShapeCost {
        model,
        shape,
        budget,
    };
    let ps: Vec<f64> = xs.par_iter().map(|x| cost.cost(x).unwrap_or(1.0)).collect();
    let k = (0..n).min_by(|&a, &b| ps[a].total_cmp(&ps[b])).unwrap_or(0);
    let (a, b) = (xs[k.saturating_sub(1)], xs[(k + 1).min(n - 1)]);
    let solver = BrentOpt::new(a, b).set_tolerance(1e-3, 1e-3);
    let res = Executor::new(cost, solver)
        .configure(|s| s.max_iters(40))
        .run()
        .map_err(argmin_err)?;
    let st = res.state();
    let (x, p) = match st.get_best_param() {
        Some(&x) if st.get_best_cost() <= ps[k] => (x, st.get_best_cost()),
        _ => (xs[k], ps[k]),
    };
    Ok((x.exp(), p))
}

/// Nelder–Mead from `start` on the knot parameters at `budget`, with one restart around the
/// first optimum. Returns (θ, formula P, evaluations).
fn nelder_mead(
    model: &FormulaModel,
    budget: f64,
    start: &[f64],
    max_iters: u64,
) -> Result<(Vec<f64>, f64, u64)> {
    let mut x = start.to_vec();
    let mut best = f64::INFINITY;
    let mut evals = 0;
    for step in [0.8, 0.3] {
        let mut simplex = vec![x.clone()];
        for i in 0..x.len() {
            let mut v = x.clone();
            // the span moves by a factor e^{±0.4}, a weight by e^{±step}
            v[i] += if i == 0 { 0.5 * step } else { step };
            simplex.push(v);
        }
        let solver = NelderMead::new(simplex)
            .with_sd_tolerance(1e-5)
            .map_err(argmin_err)?;
        let res = Executor::new(KnotCost { model, budget }, solver)
            .configure(|s| s.max_iters(max_iters))
            .run()
            .map_err(argmin_err)?;
        let st = res.state();
        evals += st.get_func_counts().values().sum::<u64>();
        if let Some(p) = st.get_best_param()
            && st.get_best_cost() < best
        {
            best = st.get_best_cost();
            x = p.clone();
        }
    }
    Ok((x, best, evals))
}

/// An optimised schedule.
#[derive(Clone, Debug)]
pub struct Optimised {
    /// The annealing budget T (steps).
    pub budget: f64,
    /// The parameters ([`schedule_of`]).
    pub theta: Vec<f64>,
    /// Its knots (step, β), β = 1 at T.
    pub knots: Vec<(f64, f64)>,
    /// The sharp formula's P(collapse) (the optimiser's objective).
    pub p_formula: f64,
    /// Formula evaluations spent.
    pub evaluations: u64,
}

/// The schedule with `segments` slices minimising the sharp formula at `budget`: Nelder–Mead
/// (with a restart) from the best exponential schedule, from the best linear-in-temperature
/// schedule (through its knots, [`theta_of_schedule`]) and from each of `warm` (parameters of
/// other budgets, in normalised time), in parallel; the best result by the formula.
pub fn optimise(
    model: &FormulaModel,
    budget: f64,
    segments: usize,
    warm: &[Vec<f64>],
) -> Result<Optimised> {
    let (runs, evaluations) = optimiser_runs(model, budget, segments, warm)?;
    let (theta, p_formula) = runs
        .into_iter()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .ok_or_else(|| Error::Invalid("no optimiser start".into()))?;
    Ok(Optimised {
        budget,
        knots: knots_of(&theta, budget),
        theta,
        p_formula,
        evaluations,
    })
}

/// As [`optimise`], checked by the table ODE Monte Carlo of `pred`, with the optimum's number of
/// collapsed initial conditions. The formula's best result is kept unless another Nelder–Mead
/// result collapses clearly fewer initial conditions of the table: c_formula − c > 2
/// √(c_formula + c) (a difference beyond the Monte-Carlo noise of the two counts, so that the
/// check does not chase that noise). This matters where the formula is flat: on long budgets it
/// rounds P to 0 for several schedules that the table ODE still tells apart, and the optimum
/// would otherwise stay wherever the first start left it.
pub fn optimise_verified(
    pred: &Predictor,
    model: &FormulaModel,
    budget: f64,
    segments: usize,
    warm: &[Vec<f64>],
) -> Result<(Optimised, usize)> {
    let (mut runs, evaluations) = optimiser_runs(model, budget, segments, warm)?;
    runs.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut counted = Vec::with_capacity(runs.len());
    for (theta, p) in runs {
        let c = pred.collapsed(&schedule_of(&theta, budget), budget)?;
        counted.push((theta, p, c));
    }
    let first = counted
        .first()
        .map(|r| r.2)
        .ok_or_else(|| Error::Invalid("no optimiser start".into()))?;
    let fewest = counted
        .iter()
        .enumerate()
        .min_by_key(|(i, r)| (r.2, *i))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let c = counted[fewest].2;
    let pick = if (first - c) as f64 > 2.0 * ((first + c) as f64).sqrt() {
        fewest
    } else {
        0
    };
    let (theta, p_formula, c) = counted.swap_remove(pick);
    Ok((
        Optimised {
            budget,
            knots: knots_of(&theta, budget),
            theta,
            p_formula,
            evaluations,
        },
        c,
    ))
}

/// One Nelder–Mead result: parameters and formula P.
type OptimiserRun = (Vec<f64>, f64);

/// The Nelder–Mead runs of [`optimise`]: (parameters, formula P) per start, and the formula
/// evaluations spent.
fn optimiser_runs(
    model: &FormulaModel,
    budget: f64,
    segments: usize,
    warm: &[Vec<f64>],
) -> Result<(Vec<OptimiserRun>, u64)> {
    use rayon::prelude::*;
    let (bi, _) = best_beta_i(model, Shape::Exponential, budget)?;
    let (bl, _) = best_beta_i(model, Shape::LinearTemperature, budget)?;
    let mut starts = vec![theta_of_exponential(bi, segments)];
    starts.extend(warm.iter().filter(|w| w.len() == segments).cloned());
    if starts.len() == 1 {
        // a second start: spend more of the budget late (at large β)
        let mut t = theta_of_exponential(bi, segments);
        for (i, x) in t.iter_mut().enumerate().skip(1) {
            *x = 0.1 * i as f64;
        }
        starts.push(t);
    }
    starts.push(theta_of_schedule(
        Shape::LinearTemperature.schedule(bl, budget).as_ref(),
        budget,
        segments,
    ));
    let max_iters = 120 * segments as u64;
    let runs: Vec<(Vec<f64>, f64, u64)> = starts
        .par_iter()
        .map(|s| nelder_mead(model, budget, s, max_iters))
        .collect::<Result<_>>()?;
    let evaluations = runs.iter().map(|r| r.2).sum();
    Ok((
        runs.into_iter().map(|(t, p, _)| (t, p)).collect(),
        evaluations,
    ))
}

/// P(collapse) of one schedule at a budget by the formula and the table ODE Monte Carlo.
#[derive(Clone, Debug)]
pub struct Verified {
    /// "optimal", "exponential" or "linear_temperature".
    pub shape: &'static str,
    /// β(0).
    pub beta_i: f64,
    /// Sharp formula.
    pub p_formula: f64,
    /// Table ODE Monte Carlo.
    pub p_table: f64,
    /// Its collapsed initial conditions.
    pub collapsed: usize,
}

/// The optimal schedule and the best one-parameter shapes at one budget.
#[derive(Clone, Debug)]
pub struct AtBudget {
    /// The optimised schedule.
    pub optimal: Optimised,
    /// Its verification, then the best exponential's and (when asked) the best
    /// linear-in-temperature's.
    pub rows: Vec<Verified>,
}

/// [`optimise`] at `budget`, and the best β_i of each of `shapes` at the same budget; every
/// schedule's P(collapse) verified by the table ODE Monte Carlo of `pred`.
pub fn at_budget(
    pred: &Predictor,
    model: &FormulaModel,
    budget: f64,
    segments: usize,
    shapes: &[Shape],
    warm: &[Vec<f64>],
) -> Result<AtBudget> {
    let (optimal, c) = optimise_verified(pred, model, budget, segments, warm)?;
    let table = |s: &dyn Schedule| pred.collapsed(s, budget);
    let n = pred.ics.len() as f64;
    let mut rows = vec![Verified {
        shape: "optimal",
        beta_i: optimal.knots[0].1,
        p_formula: optimal.p_formula,
        p_table: c as f64 / n,
        collapsed: c,
    }];
    for &shape in shapes {
        let (bi, pf) = best_beta_i(model, shape, budget)?;
        let c = table(shape.schedule(bi, budget).as_ref())?;
        rows.push(Verified {
            shape: shape.name(),
            beta_i: bi,
            p_formula: pf,
            p_table: c as f64 / n,
            collapsed: c,
        });
    }
    Ok(AtBudget { optimal, rows })
}

/// One budget tried by [`shortest_budget`].
#[derive(Clone, Debug)]
pub struct Tried {
    /// Budget (steps).
    pub budget: f64,
    /// Table ODE Monte Carlo P(collapse) of the shape's best schedule there.
    pub p_table: f64,
    /// β(0) of that schedule.
    pub beta_i: f64,
    /// Its parameters (optimal shape only).
    pub theta: Vec<f64>,
}

/// The shortest budget (to 2%, by doubling from 250 steps then bisection in ln T, up to
/// `max_budget`) at which the best schedule of `shape` (None: the optimal shape with
/// `segments` slices) has a table-ODE P(collapse) ≤ `eps`. Assumes that P decreases with the
/// budget. Returns the budget found (None if `max_budget` does not reach `eps`) and every
/// budget tried.
pub fn shortest_budget(
    pred: &Predictor,
    model: &FormulaModel,
    eps: f64,
    shape: Option<Shape>,
    segments: usize,
    max_budget: f64,
) -> Result<(Option<Tried>, Vec<Tried>)> {
    let mut tried: Vec<Tried> = Vec::new();
    let eval = |budget: f64, tried: &mut Vec<Tried>| -> Result<Tried> {
        let budget = budget.round();
        let t = match shape {
            Some(sh) => {
                let (bi, _) = best_beta_i(model, sh, budget)?;
                let c = pred.collapsed(sh.schedule(bi, budget).as_ref(), budget)?;
                Tried {
                    budget,
                    p_table: c as f64 / pred.ics.len() as f64,
                    beta_i: bi,
                    theta: Vec::new(),
                }
            }
            None => {
                // warm start from the nearest budget tried
                let warm: Vec<Vec<f64>> = tried
                    .iter()
                    .min_by(|a, b| {
                        (a.budget / budget)
                            .ln()
                            .abs()
                            .total_cmp(&(b.budget / budget).ln().abs())
                    })
                    .map(|t| vec![t.theta.clone()])
                    .unwrap_or_default();
                let (o, c) = optimise_verified(pred, model, budget, segments, &warm)?;
                Tried {
                    budget,
                    p_table: c as f64 / pred.ics.len() as f64,
                    beta_i: o.knots[0].1,
                    theta: o.theta,
                }
            }
        };
        tried.push(t.clone());
        Ok(t)
    };
    let mut hi = 250f64.max(segments as f64);
    let mut at_hi = eval(hi, &mut tried)?;
    let mut lo = 0.0;
    while at_hi.p_table > eps {
        if hi >= max_budget {
            return Ok((None, tried));
        }
        lo = hi;
        hi = (2.0 * hi).min(max_budget);
        at_hi = eval(hi, &mut tried)?;
    }
    if lo == 0.0 {
        return Ok((Some(at_hi), tried));
    }
    let (mut l, mut h) = (lo.ln(), hi.ln());
    while h - l > 0.02 {
        let mid = 0.5 * (l + h);
        let t = eval(mid.exp(), &mut tried)?;
        if t.p_table <= eps {
            h = mid;
            at_hi = t;
        } else {
            l = mid;
        }
    }
    Ok((Some(at_hi), tried))
}

/// SGD check of a training configuration: (collapsed, n) over seeds 0..n−1 (initial means of
/// seed k as in a sweep's seed k; noise stream mixed from k).
pub fn simulate_config(cfg: &crate::config::Config, n: usize) -> Result<(usize, usize)> {
    let collapsed = outcomes_config(cfg, n)?.iter().filter(|c| **c).count();
    Ok((collapsed, n))
}

/// Whether each of the seeds 0..n−1 of [`simulate_config`] collapses, in seed order. The
/// streams depend on the seed alone, so two configurations get paired runs: seed k starts
/// from the same initial means and draws the same noise in both. Only the outcome is kept, so
/// the runs record nothing (`record.every = 0`, as in a sweep): the outcome does not depend on
/// the records (they draw from their own stream), and the exact KL of a record costs far more
/// than an SGD step of the statistics engine.
pub fn outcomes_config(cfg: &crate::config::Config, n: usize) -> Result<Vec<bool>> {
    use rayon::prelude::*;
    let mut cfg = cfg.clone();
    cfg.record.every = 0;
    let exp = cfg.compile()?;
    (0..n)
        .into_par_iter()
        .map(|k| {
            let noise = crate::seed::mix(k as u64 ^ 0x0b7_5eed);
            let r = crate::run::Trainer::new(&exp)
                .streams(k as u64, noise)
                .run()?;
            Ok(matches!(
                r.outcome(),
                crate::metrics::Outcome::Collapsed { .. }
            ))
        })
        .collect()
}

/// Options of [`run`].
#[derive(Clone, Debug)]
pub struct OptimalOptions {
    /// Optimise at this budget (steps)…
    pub budget: Option<f64>,
    /// …or find the shortest budget whose optimal schedule reaches this P(collapse).
    pub max_collapse: Option<f64>,
    /// Equal time slices of the schedule (free knots: `segments − 1` inside, plus β(0)).
    pub segments: usize,
    /// Initial conditions of the table ODE Monte Carlo.
    pub ics: usize,
    /// SGD seeds of the check of the optimal and the best exponential schedule at the budget
    /// (0 = no check).
    pub check_seeds: usize,
}

/// What [`run`] found.
#[derive(Clone, Debug)]
pub struct OptimalReport {
    /// The report (markdown).
    pub text: String,
    /// A training configuration of the designed schedule (the sweep's run settings with
    /// `schedule.kind = "points"` and `optim.steps` = budget + extra steps), as TOML.
    pub toml: String,
    /// The designed schedule at its budget.
    pub design: AtBudget,
}

/// Largest budget the shortest-budget search tries.
pub const MAX_BUDGET: f64 = 256_000.0;

/// `annealvi design --shape optimal`: the optimal schedule at `--budget`, or at the shortest
/// budget reaching `--max-collapse` (with the exponential schedule's shortest budget for
/// comparison), verified by the table ODE Monte Carlo.
pub fn run(cfg: &crate::sweep::SweepConfig, o: &OptimalOptions) -> Result<OptimalReport> {
    use std::fmt::Write as _;
    let pred = Predictor::from_sweep(cfg, o.ics)?;
    let model = FormulaModel::from_sweep(cfg).ok_or_else(|| {
        Error::Invalid("design --shape optimal needs the sharp formula's model".into())
    })?;
    let mut r = String::new();
    let _ = writeln!(
        r,
        "# Optimal schedule (d = {}, R = {}, η = {}, {} steps at β = 1 after annealing)\n",
        pred.d, pred.target.r, pred.lr, pred.extra_steps
    );
    let _ = writeln!(
        r,
        "β(t) piecewise linear in ln β over {} equal slices (β(0) and {} inner knots free), \
         optimised on the sharp formula (Nelder–Mead); P(collapse) by the table ODE Monte \
         Carlo over {} initial conditions.\n",
        o.segments,
        o.segments - 1,
        o.ics
    );
    let design = match (o.budget, o.max_collapse) {
        (Some(budget), _) => at_budget(
            &pred,
            &model,
            budget.round(),
            o.segments,
            &[Shape::Exponential, Shape::LinearTemperature],
            &[],
        )?,
        (None, Some(eps)) => {
            let (opt, tried_o) = shortest_budget(&pred, &model, eps, None, o.segments, MAX_BUDGET)?;
            let (exp, tried_e) = shortest_budget(
                &pred,
                &model,
                eps,
                Some(Shape::Exponential),
                o.segments,
                MAX_BUDGET,
            )?;
            let _ = writeln!(
                r,
                "## Shortest budget with P(collapse) ≤ {eps}\n\n| shape | budgets tried (P) | \
                 shortest budget |\n|---|---|---|"
            );
            for (name, best, tried) in
                [("optimal", &opt, &tried_o), ("exponential", &exp, &tried_e)]
            {
                let list: Vec<String> = tried
                    .iter()
                    .map(|t| format!("{:.0} ({:.4})", t.budget, t.p_table))
                    .collect();
                let b = best
                    .as_ref()
                    .map_or(format!("> {MAX_BUDGET:.0}"), |t| format!("{:.0}", t.budget));
                let _ = writeln!(r, "| {name} | {} | {b} |", list.join(", "));
            }
            if let (Some(a), Some(b)) = (&opt, &exp) {
                let _ = writeln!(
                    r,
                    "\nOptimal reaches {eps} in {:.0} steps, exponential in {:.0}: ratio {:.2}.",
                    a.budget,
                    b.budget,
                    a.budget / b.budget
                );
            }
            let _ = writeln!(r);
            let Some(a) = opt else {
                return Err(Error::Invalid(format!(
                    "no schedule with a budget ≤ {MAX_BUDGET:.0} steps reaches P(collapse) ≤ {eps}"
                )));
            };
            at_budget(
                &pred,
                &model,
                a.budget,
                o.segments,
                &[Shape::Exponential, Shape::LinearTemperature],
                &[a.theta],
            )?
        }
        (None, None) => {
            return Err(Error::Invalid(
                "--shape optimal needs --budget T or --max-collapse EPS".into(),
            ));
        }
    };
    let budget = design.optimal.budget;
    let _ = writeln!(r, "## At budget T = {budget:.0}\n");
    let _ = writeln!(
        r,
        "| schedule | β(0) | P formula | P table ODE |\n|---|---|---|---|"
    );
    for v in &design.rows {
        let _ = writeln!(
            r,
            "| {} | {:.4e} | {:.4} | {:.4} |",
            v.shape, v.beta_i, v.p_formula, v.p_table
        );
    }
    let (o_row, e_row) = (&design.rows[0], &design.rows[1]);
    let _ = writeln!(
        r,
        "\noptimal: P={:.4}; best exponential (β_i={:.4e}): P={:.4} (table ODE, ± {:.4} each; \
         {} formula evaluations)\n",
        o_row.p_table,
        e_row.beta_i,
        e_row.p_table,
        (o_row.p_table.max(e_row.p_table).max(1e-3) / o.ics as f64).sqrt() * 2.0,
        design.optimal.evaluations
    );
    let _ = writeln!(r, "| step | β | ln β |\n|---|---|---|");
    let k = &design.optimal.knots;
    for &(t, b) in k {
        let _ = writeln!(r, "| {t:.0} | {b:.5} | {:.4} |", b.ln());
    }
    let mut run = cfg.run.clone();
    run.schedule = crate::schedule::ScheduleConfig {
        kind: crate::schedule::ScheduleKind::Points,
        points: k.clone(),
        ..Default::default()
    };
    run.optim.steps = budget as usize + cfg.grid.extra_steps;
    run.validate()?;
    if o.check_seeds > 0 {
        let mut exp = run.clone();
        exp.schedule = crate::schedule::ScheduleConfig {
            kind: crate::schedule::ScheduleKind::Exponential,
            beta_i: e_row.beta_i,
            t0: budget,
            ..Default::default()
        };
        let _ = writeln!(
            r,
            "\n**SGD check** ({} seeds, B = {}), measured P(collapse):",
            o.check_seeds, cfg.run.objective.samples
        );
        for (name, c) in [("optimal", &run), ("best exponential", &exp)] {
            let (k, n) = simulate_config(c, o.check_seeds)?;
            let (lo, hi) = crate::metrics::wilson_interval(k, n);
            let _ = writeln!(
                r,
                "- {name}: {:.4} [{lo:.4}, {hi:.4}] ({k}/{n})",
                k as f64 / n as f64
            );
        }
        let _ = writeln!(r);
    }
    let toml = format!(
        "# Optimal annealing schedule at a budget of {budget:.0} steps (then {} at β = 1): \
         predicted P(collapse) {:.4} (table ODE), best exponential {:.4}.\n# Train with: \
         annealvi train --config THIS_FILE --out DIR\n{}",
        cfg.grid.extra_steps,
        o_row.p_table,
        e_row.p_table,
        run.to_toml()
    );
    Ok(OptimalReport {
        text: r,
        toml,
        design,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn theta_of_schedule_goes_through_the_schedules_knots() {
        // the linear-in-temperature schedule: its knots are reproduced exactly
        let lt = LinearTemperature {
            beta_i: 0.05,
            t0: 1000.0,
        };
        let k = knots_of(&theta_of_schedule(&lt, 1000.0, 10), 1000.0);
        for &(t, b) in &k {
            assert!(
                (b - lt.beta(t)).abs() < 1e-9 * lt.beta(t).max(1e-3),
                "{t}: {b}"
            );
        }
        // and the exponential gives its own parameters
        let e = Exponential {
            beta_i: 0.02,
            t0: 700.0,
        };
        let th = theta_of_schedule(&e, 700.0, 7);
        for (a, b) in th.iter().zip(theta_of_exponential(0.02, 7)) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
    }

    #[test]
    fn knots_are_monotone_and_end_at_one() {
        let theta = [
            (-(0.01f64).ln()).ln(),
            1.0,
            -2.0,
            0.5,
            3.0,
            0.0,
            -1.0,
            2.0,
            0.3,
        ];
        let k = knots_of(&theta, 1000.0);
        assert_eq!(k.len(), 10);
        assert!((k[0].1 - 0.01).abs() < 1e-12);
        assert_eq!(k[9], (1000.0, 1.0));
        assert!(k.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        // equal weights are the exponential schedule
        let e = schedule_of(&theta_of_exponential(0.01, 8), 800.0);
        let x = Exponential {
            beta_i: 0.01,
            t0: 800.0,
        };
        for t in [0.0, 50.0, 333.0, 799.0, 800.0, 900.0] {
            assert!((e.beta(t) - x.beta(t)).abs() < 1e-12);
        }
    }
}
