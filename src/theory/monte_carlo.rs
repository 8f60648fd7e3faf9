//! ODE Monte Carlo of the collapse probability, tabulated (docs/theory.md §8).
//!
//! With fixed equal weights the quasi-static flow of (m_1, m_2, q_11, q_12, q_22) depends on
//! the orthogonal parts only through D⊥² = ‖ν_1 − ν_2‖² (the confinement acts on each μ_k the
//! same way and the entropy sees only D), so the outcome is a function of three numbers:
//! the centre M = (m_1 + m_2)/2, the half-split δ = (m_1 − m_2)/2 and D⊥². For fixed (M, D⊥²)
//! small |δ| collapses (δ = 0 is an invariant symmetric state) and large |δ| covers, so the
//! collapse region is |δ| < δ_c(M, D⊥²). The table holds δ_c on a grid — 9 centres over
//! ±3.5 standard deviations of M and 3 values of D⊥² around its mean 2s²(d−1) (relative
//! spread √(2/(d−1))) — found by bisection on the ODE, and classifies any number of initial
//! conditions by interpolation: 27 threshold searches (~300 integrations) per cell instead of
//! one integration per initial condition. Tests check the table against direct integration.

use super::quasi_static::{QuasiStatic, collapses, split_threshold};

/// δ_c(M, D⊥²) on a grid, for one cell.
#[derive(Clone, Debug)]
pub struct CollapseTable {
    m_nodes: Vec<f64>,
    d_nodes: Vec<f64>,
    /// delta_c[j·m_nodes.len() + i] at (m_i, D⊥²_j).
    delta_c: Vec<f64>,
}

/// Bisection tolerance on δ, relative to the initial scale s.
const DELTA_TOL: f64 = 2e-3;

impl CollapseTable {
    /// Tabulates δ_c for `flow` with initial means N(0, s² I_d); the run ends at `tau_end`
    /// with the schedule's kink at `tau_kink`.
    pub fn new(
        flow: &QuasiStatic,
        d: usize,
        s: f64,
        (tau_kink, tau_end): (f64, f64),
    ) -> Result<Self, String> {
        let sd_m = s / std::f64::consts::SQRT_2;
        let m_nodes: Vec<f64> = (0..9)
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
        let mut delta_c = Vec::with_capacity(27);
        for &d2 in &d_nodes {
            for &m in &m_nodes {
                delta_c.push(split_threshold(
                    flow,
                    m,
                    d2,
                    p,
                    1.0,
                    6.0 * s,
                    DELTA_TOL * s,
                    (tau_kink, tau_end),
                )?);
            }
        }
        Ok(Self {
            m_nodes,
            d_nodes,
            delta_c,
        })
    }

    /// δ_c at (M, D⊥²): linear interpolation, clamped to the grid.
    pub fn threshold(&self, m: f64, d2: f64) -> f64 {
        let (i, a) = bracket(&self.m_nodes, m);
        let (j, b) = bracket(&self.d_nodes, d2);
        let nm = self.m_nodes.len();
        let at = |jj: usize, ii: usize| self.delta_c[jj * nm + ii];
        let lerp = |x: f64, y: f64, t: f64| {
            if x.is_infinite() || y.is_infinite() {
                if t < 0.5 { x } else { y }
            } else {
                x + t * (y - x)
            }
        };
        let lo = lerp(at(j, i), at(j, i + 1), a);
        let hi = lerp(at(j + 1, i), at(j + 1, i + 1), a);
        lerp(lo, hi, b)
    }

    /// Whether the initial statistics x0 = (m_1, m_2, q_11, q_12, q_22) collapse.
    pub fn collapses(&self, x0: &[f64; 5]) -> bool {
        let m = 0.5 * (x0[0] + x0[1]);
        let delta = 0.5 * (x0[0] - x0[1]);
        let d2 = (x0[2] + x0[4] - 2.0 * x0[3] - 4.0 * delta * delta).max(0.0);
        delta.abs() < self.threshold(m, d2)
    }
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
pub fn direct(flow: &QuasiStatic, x0: [f64; 5], times: (f64, f64)) -> Result<bool, String> {
    collapses(flow, x0, times.0, times.1)
}
