//! The noise of one statistics-engine step: the χ² sampler of the Bartlett factor's diagonal,
//! the workspace, and the per-sample passes (general, and the paper's case in registers) that
//! draw the orthogonal parts sample by sample while updating their Gram matrix's Cholesky
//! factor.

use super::StatsStudent;
use super::linalg::{cholesky, cholesky2, sdot};
use crate::normal::NormalGen;
use crate::objective::{ExactObjective, SampleTerms, Terms2};
use rand::Rng;
use rand_distr::{ChiSquared, Distribution};

/// χ²_k sampler: Marsaglia & Tsang's squeeze for the Gamma(k/2, 2) law when k ≥ 2 (one
/// normal and one uniform per draw, ~2% rejections), rand_distr's sampler for k = 1, and 0
/// for k = 0.
#[derive(Clone, Debug)]
pub(crate) enum ChiSq {
    Zero,
    One(ChiSquared<f64>),
    Large {
        /// a − 1/3 with a = k/2.
        dm: f64,
        /// 1/√(9 dm).
        c: f64,
    },
}

impl ChiSq {
    pub(crate) fn new(k: usize) -> Self {
        match k {
            0 => ChiSq::Zero,
            1 => ChiSq::One(ChiSquared::new(1.0).expect("1 > 0")),
            _ => {
                let dm = k as f64 / 2.0 - 1.0 / 3.0;
                ChiSq::Large {
                    dm,
                    c: 1.0 / (9.0 * dm).sqrt(),
                }
            }
        }
    }

    #[inline]
    pub(crate) fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        match *self {
            ChiSq::Zero => 0.0,
            ChiSq::One(ref d) => d.sample(rng),
            ChiSq::Large { dm, c } => loop {
                let x: f64 = rng.sample(rand_distr::StandardNormal);
                let v = 1.0 + c * x;
                if v <= 0.0 {
                    continue;
                }
                let v = v * v * v;
                let u: f64 = rng.r#gen();
                let x2 = x * x;
                if u < 1.0 - 0.0331 * x2 * x2 || u.ln() < 0.5 * x2 + dm * (1.0 - v + v.ln()) {
                    return 2.0 * dm * v;
                }
            },
        }
    }
}

/// Buffers of the statistics engine, and the exact objective for records.
pub struct StatsWorkspace {
    pub(super) exact: Option<ExactObjective>,
    pub(super) normals: Option<NormalGen>,
    /// ξ: n × p frame coordinates of the noise.
    pub(super) xi: Vec<f64>,
    /// Per sample, K normals for its projections on the orthogonal parts' span (n × K).
    pub(super) eta: Vec<f64>,
    /// Per sample, its coefficients c_ik (n × K).
    pub(super) cz: Vec<f64>,
    /// The per-sample formulas' constants and sums (reused from step to step).
    pub(super) terms: Option<SampleTerms>,
    /// χ²_{m−s} for s = 0..=K, and the m they were built for.
    pub(super) chi: Vec<ChiSq>,
    pub(super) chi_df: usize,
    /// The last pass's Cholesky factor (K × K) and active columns (K).
    pub(super) chol: Vec<f64>,
    pub(super) active: Vec<bool>,
}

impl StatsStudent {
    /// The samples of one step (see [`Student::loss_and_grad`](crate::train::Student::loss_and_grad)): the per-sample formulas
    /// into `terms` and `ws.cz`, and the Cholesky factor (with its active columns) of the
    /// orthogonal parts' Gram matrix. `KC` = K when known at compile time (0: read it).
    #[inline(always)]
    pub(super) fn noise_pass<
        const KC: usize,
        const PC: usize,
        const JC: usize,
        const AC: usize,
        R,
    >(
        &self,
        ws: &mut StatsWorkspace,
        terms: &mut SampleTerms,
        rng: &mut R,
        b: usize,
        ns: f64,
    ) -> (Vec<f64>, Vec<bool>)
    where
        R: Rng + ?Sized,
    {
        let k = if KC > 0 { KC } else { self.q.components() };
        let jc = if JC > 0 { JC } else { self.jc() };
        let p = if PC > 0 { PC } else { self.p };
        let fixed = if AC > 0 { AC } else { self.a };
        let (mut a, mut c) = (vec![0.0; k], vec![0.0; jc]);
        let mut cz = vec![0.0; k];
        let mut gram = vec![0.0; k * k];
        let mut chol = vec![0.0; k * k];
        let mut active = vec![false; k];
        let mut u = vec![0.0; k];
        let mut s = 0usize;
        let w = self.q.weights();
        let means = &self.q.means_flat()[..k * p];
        let nu = &self.nu[..jc * p];
        for l in 0..k {
            let scale = w[l] / b as f64;
            terms.component(l);
            for j in 0..b {
                let i = l * b + j;
                let xi = &ws.xi[i * p..(i + 1) * p];
                let eta = &ws.eta[i * k..(i + 1) * k];
                let rho2 = ws.chi[s].sample(rng) * (ns * ns);
                // u = T η over the active columns (η_t for the t-th active column)
                u.iter_mut().for_each(|v| *v = 0.0);
                let mut eta2 = 0.0;
                let mut t = 0;
                for col in 0..k {
                    if active[col] {
                        let e = eta[t];
                        eta2 += e * e;
                        for row in col..k {
                            u[row] += chol[row * k + col] * e;
                        }
                        t += 1;
                    }
                }
                for (l2, al) in a.iter_mut().enumerate() {
                    *al = sdot(xi, &means[l2 * p..(l2 + 1) * p]);
                }
                for (j2, cj) in c.iter_mut().enumerate() {
                    *cj = sdot(&xi[..fixed], &nu[j2 * p..j2 * p + fixed]);
                }
                let nz = eta2 + rho2;
                let zz = sdot(xi, xi) + nz;
                terms.sample(l, scale, &a, &c, zz, &mut cz);
                ws.cz[i * k..(i + 1) * k].copy_from_slice(&cz);
                for r in 0..k {
                    for q in 0..=r {
                        gram[r * k + q] += cz[r] * u[q] + u[r] * cz[q] + nz * cz[r] * cz[q];
                    }
                }
                s = if k == 2 {
                    cholesky2(&gram, &mut chol, &mut active)
                } else {
                    cholesky(&gram, k, &mut chol, &mut active)
                };
            }
            terms.end_component(l, b);
        }
        (chol, active)
    }
}

impl StatsStudent {
    /// [`StatsStudent::noise_pass`] for the paper's case (K = 2 components, J = 2 target
    /// modes, p = 3 frame coordinates of which a = 1 fixed) with the constants and sums in
    /// registers ([`Terms2`]): the same random numbers, drawn in the same order, and the
    /// same floating-point operations in the same order, so the same numbers bit for bit
    /// (checked by a test against the general pass).
    #[inline(always)]
    pub(super) fn bimodal_pass<const FULL: bool, const LOSS: bool, R>(
        &self,
        ws: &mut StatsWorkspace,
        terms: &mut SampleTerms,
        rng: &mut R,
        b: usize,
        ns: f64,
    ) -> ([f64; 4], [bool; 2], f64)
    where
        R: Rng + ?Sized,
    {
        let mut t2 = terms.two_by_two();
        let w = t2.weights();
        let m = self.q.means_flat();
        let means = [[m[0], m[1], m[2]], [m[3], m[4], m[5]]];
        let nu = [self.nu[0], self.nu[3]];
        let nsq = ns * ns;
        // Gram matrix (lower triangle g00, g10, g11) and its Cholesky factor
        let (mut g00, mut g10, mut g11) = (0.0, 0.0, 0.0);
        let (mut l00, mut l10, mut l11) = (0.0, 0.0, 0.0);
        let (mut act0, mut act1) = (false, false);
        let mut s = 0usize;
        let xi_all = &ws.xi[..2 * b * 3];
        let eta_all = &ws.eta[..2 * b * 2];
        let cz_all = &mut ws.cz[..2 * b * 2];
        let chi = &ws.chi[..3];
        /// The per-sample formulas of one sample of component K, given ‖z^⊥‖² = nz.
        #[inline(always)]
        fn one<const K: usize, const FULL: bool, const LOSS: bool>(
            t2: &mut Terms2,
            scale: f64,
            xi: &[f64],
            nz: f64,
            means: &[[f64; 3]; 2],
            nu: [f64; 2],
        ) -> [f64; 2] {
            let x = [xi[0], xi[1], xi[2]];
            let a = [
                x[0] * means[0][0] + x[1] * means[0][1] + x[2] * means[0][2],
                x[0] * means[1][0] + x[1] * means[1][1] + x[2] * means[1][2],
            ];
            let c = [x[0] * nu[0], x[0] * nu[1]];
            let zz = (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]) + nz;
            t2.sample::<K, FULL, LOSS>(scale, a, c, zz)
        }
        for l in 0..2 {
            let scale = w[l] / b as f64;
            t2.component(terms, l);
            for j in 0..b {
                let i = l * b + j;
                let xi = &xi_all[i * 3..i * 3 + 3];
                let eta = &eta_all[i * 2..i * 2 + 2];
                // u = T η over the active columns, ‖η‖², and ‖rest‖² ~ χ²_{m−s}. The usual
                // case, both columns active, is a branch of its own: the next sample's
                // formulas then wait for this sample's Cholesky factor only through u (a
                // predicted branch, not a data dependence), so the two overlap.
                let (u, eta2, rho2) = if act0 && act1 {
                    let rho2 = chi[2].sample(rng) * nsq;
                    let (e0, e1) = (eta[0], eta[1]);
                    ([l00 * e0, l10 * e0 + l11 * e1], e0 * e0 + e1 * e1, rho2)
                } else {
                    let rho2 = chi[s].sample(rng) * nsq;
                    let (mut u0, mut u1) = (0.0, 0.0);
                    let mut eta2 = 0.0;
                    let mut t = 0;
                    if act0 {
                        let e = eta[t];
                        eta2 += e * e;
                        u0 += l00 * e;
                        u1 += l10 * e;
                        t += 1;
                    }
                    if act1 {
                        let e = eta[t];
                        eta2 += e * e;
                        u1 += l11 * e;
                    }
                    ([u0, u1], eta2, rho2)
                };
                let nz = eta2 + rho2;
                let cz = if l == 0 {
                    one::<0, FULL, LOSS>(&mut t2, scale, xi, nz, &means, nu)
                } else {
                    one::<1, FULL, LOSS>(&mut t2, scale, xi, nz, &means, nu)
                };
                cz_all[i * 2] = cz[0];
                cz_all[i * 2 + 1] = cz[1];
                g00 += cz[0] * u[0] + u[0] * cz[0] + nz * cz[0] * cz[0];
                g10 += cz[1] * u[0] + u[1] * cz[0] + nz * cz[1] * cz[0];
                g11 += cz[1] * u[1] + u[1] * cz[1] + nz * cz[1] * cz[1];
                // cholesky2, inlined
                let tol = 1e-14 * g00.max(g11);
                s = 0;
                (l00, l10, act0) = if g00 > tol && g00 > 0.0 {
                    s += 1;
                    let r = g00.sqrt();
                    (r, g10 / r, true)
                } else {
                    (0.0, 0.0, false)
                };
                let piv = g11 - l10 * l10;
                (l11, act1) = if piv > tol && piv > 0.0 {
                    s += 1;
                    (piv.sqrt(), true)
                } else {
                    (0.0, false)
                };
            }
            t2.end_component(l, b);
        }
        terms.store_two_by_two(&t2);
        ([l00, 0.0, l10, l11], [act0, act1], t2.check)
    }
}
