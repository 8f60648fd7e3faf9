//! ODE Monte Carlo of the collapse probability, tabulated (docs/theory.md §8).
//!
//! With fixed equal weights the quasi-static flow of (m_1, m_2, q_11, q_12, q_22) depends on
//! the orthogonal parts only through D⊥² = ‖ν_1 − ν_2‖² (the confinement acts on each μ_k the
//! same way and the entropy sees only D), so the outcome is a function of three numbers:
//! the centre M = (m_1 + m_2)/2, the half-split δ = (m_1 − m_2)/2 and D⊥². For fixed (M, D⊥²)
//! small |δ| collapses (δ = 0 is an invariant symmetric state) and large |δ| covers, so the
//! collapse region is |δ| < δ_c(M, D⊥²). The table holds δ_c on a grid — 9 centres over
//! ±3.5 standard deviations of M, refined by bisection where δ_c(M) bends (it has a kink
//! where both components start at the unstable point of the lone drift), and 3 values of D⊥²
//! around its mean 2s²(d−1) (relative spread √(2/(d−1))) — found by bisection on the ODE,
//! and classifies any number of initial conditions by interpolation: ~80 threshold searches
//! (~1000 integrations) per cell instead of one integration per initial condition. Tests
//! check the table against direct integration.

use super::IntegrateError;
use super::quasi_static::{QuasiStatic, collapses, split_threshold};

/// δ_c(M, D⊥²) on a grid, for one cell: for each of 3 values of D⊥², δ_c at a set of
/// centres M (9 equispaced ones, refined where δ_c is not linear).
#[derive(Clone, Debug)]
pub struct CollapseTable {
    d_nodes: Vec<f64>,
    /// For each D⊥² node, the centres M (ascending) and δ_c at each.
    rows: Vec<(Vec<f64>, Vec<f64>)>,
}

/// Bisection tolerance on δ, relative to the initial scale s.
const DELTA_TOL: f64 = 2e-3;

/// An M interval is split while δ_c at its midpoint differs from the linear interpolation
/// of its ends by more than this (relative to s; 4× the bisection tolerance).
const REFINE_TOL: f64 = 8e-3;

/// Splits of an interval of the 9-node M grid at most (its width /2⁷ ≈ 0.005 s at the end).
const REFINE_DEPTH: u32 = 7;

impl CollapseTable {
    /// Tabulates δ_c for `flow` with initial means N(0, s² I_d); the run ends at `tau_end`
    /// with the schedule's kink at `tau_kink`.
    ///
    /// δ_c(M) is piecewise smooth with kinks: where both components start at the unstable
    /// point m_u of the lone drift (M = m_u, δ → 0), δ_c(M) ≈ |M − m_u| (docs/theory.md §8),
    /// and where δ_c jumps to ∞. Linear interpolation across such a kink over the coarse grid
    /// overestimates δ_c, so each interval is bisected while its midpoint is off the linear
    /// interpolation by more than 8e-3 s (at most 7 times).
    pub fn new(
        flow: &QuasiStatic,
        d: usize,
        s: f64,
        (tau_kink, tau_end): (f64, f64),
    ) -> Result<Self, IntegrateError> {
        let sd_m = s / std::f64::consts::SQRT_2;
        let m_coarse: Vec<f64> = (0..9)
            .map(|i| sd_m * (-3.5 + 7.0 * i as f64 / 8.0))
            .collect();
        let nd = d.saturating_sub(1).max(1) as f64;
        let mean = 2.0 * s * s * nd;
        let cv = (2.0 / nd).sqrt();
        let d_nodes: Vec<f64> = [-2.5, 0.0, 2.5]
            .iter()
            .map(|k| (mean * (1.0 + k * cv)).max(0.0))
            .collect();
        let p = s * s * nd;
        let mut rows = Vec::with_capacity(d_nodes.len());
        for &d2 in &d_nodes {
            let dc = |m: f64| {
                split_threshold(
                    flow,
                    m,
                    d2,
                    p,
                    1.0,
                    6.0 * s,
                    DELTA_TOL * s,
                    (tau_kink, tau_end),
                )
            };
            let coarse = m_coarse
                .iter()
                .map(|&m| dc(m))
                .collect::<Result<Vec<_>, _>>()?;
            let (mut ms, mut dcs) = (vec![m_coarse[0]], vec![coarse[0]]);
            for i in 0..m_coarse.len() - 1 {
                refine(
                    &dc,
                    (m_coarse[i], coarse[i]),
                    (m_coarse[i + 1], coarse[i + 1]),
                    REFINE_TOL * s,
                    REFINE_DEPTH,
                    (&mut ms, &mut dcs),
                )?;
            }
            rows.push((ms, dcs));
        }
        Ok(Self { d_nodes, rows })
    }

    /// Number of threshold searches the table holds.
    pub fn nodes(&self) -> usize {
        self.rows.iter().map(|r| r.0.len()).sum()
    }

    /// δ_c at (M, D⊥²): linear interpolation, clamped to the grid.
    pub fn threshold(&self, m: f64, d2: f64) -> f64 {
        let row = |j: usize| {
            let (ms, dcs) = &self.rows[j];
            let (i, a) = bracket(ms, m);
            lerp(dcs[i], dcs[i + 1], a)
        };
        let (j, b) = bracket(&self.d_nodes, d2);
        lerp(row(j), row(j + 1), b)
    }

    /// Whether the initial statistics x0 = (m_1, m_2, q_11, q_12, q_22) collapse.
    pub fn collapses(&self, x0: &[f64; 5]) -> bool {
        let m = 0.5 * (x0[0] + x0[1]);
        let delta = 0.5 * (x0[0] - x0[1]);
        let d2 = (x0[2] + x0[4] - 2.0 * x0[3] - 4.0 * delta * delta).max(0.0);
        delta.abs() < self.threshold(m, d2)
    }
}

/// Linear interpolation between x (t = 0) and y (t = 1); the nearer end if either is ∞.
fn lerp(x: f64, y: f64, t: f64) -> f64 {
    if x.is_infinite() || y.is_infinite() {
        if t < 0.5 { x } else { y }
    } else {
        x + t * (y - x)
    }
}

/// Appends the nodes of (a, b] to `out`, bisecting the interval while δ_c at its midpoint is
/// more than `tol` off the linear interpolation of its ends (`depth` more times at most).
fn refine(
    dc: &dyn Fn(f64) -> Result<f64, IntegrateError>,
    a: (f64, f64),
    b: (f64, f64),
    tol: f64,
    depth: u32,
    out: (&mut Vec<f64>, &mut Vec<f64>),
) -> Result<(), IntegrateError> {
    let (ms, dcs) = out;
    if depth > 0 {
        let mid = 0.5 * (a.0 + b.0);
        let v = dc(mid)?;
        let off = if a.1.is_finite() && b.1.is_finite() && v.is_finite() {
            (v - 0.5 * (a.1 + b.1)).abs()
        } else if a.1 == v && v == b.1 {
            0.0
        } else {
            f64::INFINITY
        };
        if off > tol {
            refine(dc, a, (mid, v), tol, depth - 1, (&mut *ms, &mut *dcs))?;
            return refine(dc, (mid, v), b, tol, depth - 1, (ms, dcs));
        }
        // the midpoint is on the line: keep it anyway (it cost an integration search)
        ms.push(mid);
        dcs.push(v);
    }
    ms.push(b.0);
    dcs.push(b.1);
    Ok(())
}

/// Index i and fraction t with x between nodes i and i+1 (clamped).
fn bracket(nodes: &[f64], x: f64) -> (usize, f64) {
    let n = nodes.len();
    if n < 2 || x <= nodes[0] {
        return (0, 0.0);
    }
    if x >= nodes[n - 1] {
        return (n - 2, 1.0);
    }
    let i = nodes.partition_point(|&v| v <= x) - 1;
    let i = i.min(n - 2);
    (i, (x - nodes[i]) / (nodes[i + 1] - nodes[i]))
}

/// Direct classification (one integration per initial condition), for checks and for
/// models the table does not cover.
pub fn direct(flow: &QuasiStatic, x0: [f64; 5], times: (f64, f64)) -> Result<bool, IntegrateError> {
    collapses(flow, x0, times.0, times.1)
}
