//! SGD of the Gaussian-mixture student simulated exactly in its summary statistics, at a cost
//! per step that does not depend on the dimension d (`objective.engine = "statistics"`).
//!
//! # Why it is exact
//! Target π = Σ_j ω_j N(ν_j, v_j I_d) (isotropic), student q = Σ_k w_k N(μ_k, σ_k² I_d). One
//! Monte-Carlo SGD step draws n = K·B noise vectors z_i ~ N(0, I_d) and moves each mean by
//! μ_k ← μ_k − η [Σ_l A_kl μ_l + Σ_j C_kj ν_j + Σ_i c_ik z_i], where every coefficient is a
//! function of the projections z_i·μ_l, z_i·ν_j and of ‖z_i‖² (see
//! the per-sample formulas of `objective`); σ_k and the logits move by scalars of the same kind.
//! Let V be a subspace that contains the axis μ̂, the ν_j and the μ_k, with an orthonormal
//! basis (the *frame*, dimension p ≤ 1 + J + K) fixed by the past. By rotation invariance,
//! given the past, z_i = ξ_i + z_i^⊥ with ξ_i ~ N(0, I_p) (coordinates in the frame) and z_i^⊥
//! isotropic Gaussian in the (d − p)-dimensional complement, all independent. The Gram matrix
//! W of the z_i^⊥ is Wishart_n(d − p, I); by the Bartlett decomposition W = L Lᵀ with L lower
//! triangular (n × min(n, d − p)), L_ii² ~ χ²_{d−p−i} (rows from 0), L_ij ~ N(0, 1) below the
//! diagonal — and the rows of L are the coordinates of the z_i^⊥ in an orthonormal basis of
//! their span, so the orthogonal part of the step, Σ_i c_ik z_i^⊥, has the coordinates
//! (Cᵀ L)_k. When n > d − p the same construction (L of n × (d − p)) gives the rank-(d − p)
//! Gram matrix, so no case is approximated. ‖z_i‖² = ‖ξ_i‖² + W_ii.
//!
//! The new means therefore live in the frame plus at most K new directions; re-orthonormalising
//! (axis and target means first, so their coordinates never change) gives the next frame. The
//! coordinates of (μ̂, ν_j, μ_k) in the frame determine every summary statistic
//! (m_k = μ_k·μ̂, q_kl = μ_k·μ_l, σ_k, w_k), the loss, the outcome and the light-mode mass, and
//! their law after each step is exactly the law under d-dimensional SGD with the same
//! estimator, optimiser and schedule: the chain of statistics is Markov. Cost per step:
//! n(n − 1)/2 + n·p normals, min(n, d − p) chi-squares and O(K n²) arithmetic, whatever d is.
//! Derivation: docs/theory.md §11.
//!
//! The optimiser must act linearly and coordinate-free on the means: plain SGD (per-group
//! rates, the ln σ trust region) qualifies; Adam does not (its per-coordinate scaling is not
//! rotation invariant) and is refused by [`crate::config`].

use crate::family::gmm::{Stats, dot};
use crate::family::{GmmStudent, GroupKind, ParamGroup, VariationalFamily};
use crate::metrics::{classify, light_mode_mass};
use crate::normal::NormalGen;
use crate::objective::{Estimator, ExactObjective, SampleTerms, Terms2};
use crate::optim::Optimizer;
use crate::target::{IsotropicMixture, LogDensity, log_sum_exp};
use crate::train::{MarginalSnapshot, Observer, Record, RunResult, Student, TrainSettings};
use rand::Rng;
use rand_distr::{ChiSquared, Distribution};

/// Relative size below which a Gram–Schmidt residual counts as zero (the direction is
/// already in the span).
const GS_TOL: f64 = 1e-12;

/// Deliberate errors, for showing that the two-sample tests can detect a wrong engine. Never
/// set outside tests.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlantedError {
    /// Added to the Wishart degrees of freedom d − p.
    pub wishart_df_shift: i64,
    /// Multiplies every noise coordinate (ξ and L).
    pub noise_scale: f64,
}

impl Default for PlantedError {
    fn default() -> Self {
        Self {
            wishart_df_shift: 0,
            noise_scale: 1.0,
        }
    }
}

/// The Gaussian-mixture student in frame coordinates: the state of the statistics engine.
///
/// The frame is an orthonormal basis (e_1 = μ̂, then the target means, then student
/// directions) of a p-dimensional subspace of R^d holding μ̂, every ν_j and every μ_k; only
/// coordinates are stored. `params()` is θ of the student in those coordinates (K·p means,
/// then ln σ_k, then the logits).
#[derive(Clone, Debug)]
pub struct StatsStudent {
    d: usize,
    /// Frame directions fixed for the whole run (μ̂ and the target means).
    a: usize,
    /// Frame dimension p = min(d, a + K).
    p: usize,
    /// The student with p-dimensional means (its coordinates).
    q: GmmStudent,
    /// The target with its means in frame coordinates (geometry only: outcomes, axis).
    frame_target: IsotropicMixture,
    /// Coordinates of the target means, J × p.
    nu: Vec<f64>,
    /// The last gradient in extended coordinates: K·(p + K) means, then ln σ, then logits.
    grad_ext: Vec<f64>,
    theta_ext: Vec<f64>,
    planted: PlantedError,
    /// Use the general per-sample pass even in the paper's case (tests compare the two).
    general_pass: bool,
    /// The optimiser's parameter groups in extended coordinates (built once).
    groups_ext: Vec<ParamGroup>,
    /// Scratch: orthonormal residual directions of the means (flat).
    basis: Vec<f64>,
}

/// Gram–Schmidt step: orthogonalises `v` against the orthonormal `basis` (twice, for
/// stability); returns the unit residual if it is not negligible against `norm0`.
fn residual_direction(basis: &[Vec<f64>], v: &[f64], norm0: f64) -> Option<Vec<f64>> {
    let mut r = v.to_vec();
    let flat: Vec<f64> = basis.concat();
    residual_direction_flat(&flat, &mut r, norm0).then_some(r)
}

/// [`residual_direction`] in place: orthogonalises `r` against the orthonormal directions of `basis`
/// (flat, `r.len()` entries each; twice, for stability) and normalises it; returns false
/// (leaving `r` unnormalised) when the residual is negligible against `norm0`.
fn residual_direction_flat(basis: &[f64], r: &mut [f64], norm0: f64) -> bool {
    let len = r.len();
    for _ in 0..2 {
        for b in basis.chunks_exact(len) {
            let t = dot(b, r);
            r.iter_mut().zip(b).for_each(|(x, y)| *x -= t * y);
        }
    }
    let n = dot(r, r).sqrt();
    if norm0 > 0.0 && n > GS_TOL * norm0 {
        r.iter_mut().for_each(|x| *x /= n);
        true
    } else {
        false
    }
}

/// Cholesky factor of the K × K positive semi-definite `gram` (lower triangle read), written
/// into `chol` (row-major, lower triangular); a pivot that is not positive against the
/// diagonal's scale marks its column inactive (zero). Returns the number of active columns.
/// Over-counting a direction that rounding leaves behind is harmless: any orthonormal set
/// fixed by the past may carry the projections.
fn cholesky(gram: &[f64], k: usize, chol: &mut [f64], active: &mut [bool]) -> usize {
    if k == 2 {
        return cholesky2(gram, chol, active);
    }
    let scale = (0..k).map(|r| gram[r * k + r]).fold(0.0, f64::max);
    let mut rank = 0;
    for col in 0..k {
        let mut piv = gram[col * k + col];
        for t in 0..col {
            piv -= chol[col * k + t] * chol[col * k + t];
        }
        if piv > 1e-14 * scale && piv > 0.0 {
            let lc = piv.sqrt();
            chol[col * k + col] = lc;
            for row in col + 1..k {
                let mut v = gram[row * k + col];
                for t in 0..col {
                    v -= chol[row * k + t] * chol[col * k + t];
                }
                chol[row * k + col] = v / lc;
            }
            active[col] = true;
            rank += 1;
        } else {
            for row in col..k {
                chol[row * k + col] = 0.0;
            }
            active[col] = false;
        }
    }
    rank
}

/// [`cholesky`] for K = 2, unrolled (the same arithmetic).
#[inline(always)]
fn cholesky2(gram: &[f64], chol: &mut [f64], active: &mut [bool]) -> usize {
    let (g00, g10, g11) = (gram[0], gram[2], gram[3]);
    let scale = g00.max(g11);
    let tol = 1e-14 * scale;
    let mut rank = 0;
    let (l00, l10) = if g00 > tol && g00 > 0.0 {
        let l = g00.sqrt();
        active[0] = true;
        rank += 1;
        (l, g10 / l)
    } else {
        active[0] = false;
        (0.0, 0.0)
    };
    let piv = g11 - l10 * l10;
    let l11 = if piv > tol && piv > 0.0 {
        active[1] = true;
        rank += 1;
        piv.sqrt()
    } else {
        active[1] = false;
        0.0
    };
    chol[0] = l00;
    chol[1] = 0.0;
    chol[2] = l10;
    chol[3] = l11;
    rank
}

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

/// g += Σ_i c_il ξ_i: the frame part of the noise in ∇_{μ_l} (`cz` n × K, `xi` n × p;
/// `P` = p when known at compile time, 0: read it from `g`).
#[inline(always)]
fn add_noise_part<const P: usize>(g: &mut [f64], cz: &[f64], xi: &[f64], k: usize, l: usize) {
    let p = if P > 0 { P } else { g.len() };
    let g = &mut g[..p];
    for (czi, x) in cz.chunks_exact(k).zip(xi.chunks_exact(p)) {
        let ci = czi[l];
        for (gi, xv) in g.iter_mut().zip(&x[..p]) {
            *gi += ci * xv;
        }
    }
}

/// Σ a_i b_i for short vectors (frame coordinates).
#[inline(always)]
fn sdot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The target's part of the frame, computed once per target: the number a of fixed
/// directions (μ̂ and the target means' span) and the target means' coordinates on them.
/// Building it reads the target's d-vectors (O(J² d)); everything after is O(1) in d, so
/// runs that share a target share one (see [`StatsStudent::random_in`]).
#[derive(Clone, Debug)]
pub struct TargetFrame {
    d: usize,
    /// Coordinates of the target means on the a fixed directions (J rows of length a).
    nu: Vec<Vec<f64>>,
    a: usize,
    bimodal: Option<(f64, f64)>,
    weights: Vec<f64>,
    variances: Vec<f64>,
}

impl TargetFrame {
    /// The frame of `target` (O(J² d)).
    pub fn new(target: &IsotropicMixture) -> Self {
        let fixed = StatsStudent::target_basis(target);
        Self::from_basis(target, &fixed)
    }

    fn from_basis(target: &IsotropicMixture, fixed: &[Vec<f64>]) -> Self {
        let nu = target
            .means()
            .iter()
            .map(|v| fixed.iter().map(|b| dot(b, v)).collect())
            .collect();
        Self {
            d: target.dim(),
            nu,
            a: fixed.len(),
            bimodal: target.as_bimodal().map(|b| (b.r, b.w_star)),
            weights: target.weights().to_vec(),
            variances: target.variances().to_vec(),
        }
    }

    /// Dimension d of the target.
    pub fn dim(&self) -> usize {
        self.d
    }
}

impl StatsStudent {
    /// The fixed part of the frame: an orthonormal basis (μ̂ first) of span{μ̂, ν_j}, built
    /// from the target's d-vectors (O(J d)).
    fn target_basis(target: &IsotropicMixture) -> Vec<Vec<f64>> {
        let mut basis: Vec<Vec<f64>> = vec![target.axis().to_vec()];
        for nu in target.means() {
            if let Some(b) = residual_direction(&basis, nu, dot(nu, nu).sqrt()) {
                basis.push(b);
            }
        }
        basis
    }

    /// The state from frame coordinates of the means (K rows of length p) and the target's
    /// frame; σ_k, logits and trainability from `q0` (any dimension).
    fn assemble(frame: &TargetFrame, means: Vec<Vec<f64>>, p: usize, q0: &GmmStudent) -> Self {
        let d = frame.d;
        let k = q0.components();
        let a = frame.a;
        let nu: Vec<Vec<f64>> = frame
            .nu
            .iter()
            .map(|c| {
                let mut c = c.clone();
                c.resize(p, 0.0);
                c
            })
            .collect();
        let sigma: Vec<f64> = (0..k).map(|l| q0.sigma(l)).collect();
        let mut fq = GmmStudent::new(&means, &sigma, &q0.weights(), q0.trainable_weights());
        // keep the logits bit-identical (weights() → ln would round)
        let (off, src) = (fq.logit_offset(), q0.logit_offset());
        fq.params_mut()[off..off + k].copy_from_slice(&q0.params()[src..src + k]);
        let frame_target = match frame.bimodal {
            Some((r, w_star)) => IsotropicMixture::bimodal(p, r, w_star),
            None => {
                IsotropicMixture::new(nu.clone(), frame.weights.clone(), frame.variances.clone())
            }
        };
        Self {
            d,
            a,
            p,
            q: fq,
            frame_target,
            nu: nu.concat(),
            grad_ext: Vec::new(),
            theta_ext: Vec::new(),
            planted: PlantedError::default(),
            general_pass: false,
            groups_ext: Vec::new(),
            basis: Vec::new(),
        }
    }

    /// The statistics-engine state of a d-dimensional student `q` against `target` (both in
    /// R^d): builds the frame from the actual vectors (O((J + K) d), once per run).
    pub fn from_student(q: &GmmStudent, target: &IsotropicMixture) -> Self {
        let d = target.dim();
        let k = q.components();
        let mut basis = Self::target_basis(target);
        let a = basis.len();
        for l in 0..k {
            let m = q.mean(l);
            if let Some(b) = residual_direction(&basis, m, dot(m, m).sqrt()) {
                basis.push(b);
            }
        }
        let p = d.min(a + k);
        let means: Vec<Vec<f64>> = (0..k)
            .map(|l| {
                let mut c: Vec<f64> = basis.iter().map(|b| dot(b, q.mean(l))).collect();
                c.resize(p, 0.0);
                c
            })
            .collect();
        Self::assemble(&TargetFrame::from_basis(target, &basis[..a]), means, p, q)
    }

    /// A student whose K means are drawn i.i.d. N(0, s² I_d), drawn directly in frame
    /// coordinates: N(0, s²) along the a fixed directions, and for the orthogonal parts the
    /// Bartlett factor of their Gram matrix (Wishart_K(d − a, s² I)): mean k has N(0, s²)
    /// coordinates on the k earlier directions and s·√χ²_{d−a−k} on a new one. O(K(a + K))
    /// draws, whatever d; σ_k and weights from `q0` (its means are ignored).
    pub fn random<R: Rng + ?Sized>(
        target: &IsotropicMixture,
        q0: &GmmStudent,
        scale: f64,
        rng: &mut R,
    ) -> Self {
        Self::random_in(&TargetFrame::new(target), q0, scale, rng)
    }

    /// [`StatsStudent::random`] in a target frame built beforehand: O(K(a + K)) work,
    /// nothing of size d.
    pub fn random_in<R: Rng + ?Sized>(
        frame: &TargetFrame,
        q0: &GmmStudent,
        scale: f64,
        rng: &mut R,
    ) -> Self {
        let d = frame.d;
        let k = q0.components();
        let a = frame.a;
        let p = d.min(a + k);
        let m = d - a.min(d);
        let means: Vec<Vec<f64>> = (0..k)
            .map(|l| {
                let mut c = vec![0.0; p];
                crate::family::fill_standard_normal(rng, &mut c[..a.min(p)]);
                for t in 0..l.min(m) {
                    c[a + t] = rng.sample(rand_distr::StandardNormal);
                }
                if l < m {
                    c[a + l] = ChiSquared::new((m - l) as f64)
                        .map_or(0.0, |x| x.sample(rng))
                        .sqrt();
                }
                c.iter_mut().for_each(|v| *v *= scale);
                c
            })
            .collect();
        Self::assemble(frame, means, p, q0)
    }

    /// With a deliberate error (tests of the tests only).
    #[doc(hidden)]
    pub fn with_planted_error(mut self, e: PlantedError) -> Self {
        self.planted = e;
        self
    }

    /// Uses the general per-sample pass even where the paper's case has its own (it draws
    /// the same numbers; tests compare the two bit for bit).
    #[doc(hidden)]
    pub fn with_general_pass(mut self) -> Self {
        self.general_pass = true;
        self
    }

    /// Dimension p of the frame.
    pub fn frame_dim(&self) -> usize {
        self.p
    }

    /// The student in frame coordinates (p-dimensional means, same σ_k and weights).
    pub fn frame_student(&self) -> &GmmStudent {
        &self.q
    }

    /// Summary statistics (m_k = μ_k·μ̂, q_kl, σ_k, w_k): the same as the d-dimensional
    /// student's [`GmmStudent::stats`] with μ̂ = the target's axis.
    pub fn stats(&self) -> Stats {
        self.q.stats(self.frame_target.axis())
    }

    fn jc(&self) -> usize {
        self.frame_target.means().len()
    }

    /// Gram quantities μ_k·μ_l (K × K), μ_k·ν_j (K × J), ν_j·ν_j (J) in frame coordinates,
    /// into the given slices.
    fn grams_into(&self, gmm: &mut [f64], gmt: &mut [f64], nn: &mut [f64]) {
        let (k, jc, p) = (self.q.components(), self.jc(), self.p);
        for i in 0..k {
            for l in 0..k {
                gmm[i * k + l] = dot(self.q.mean(i), self.q.mean(l));
            }
            for j in 0..jc {
                gmt[i * jc + j] = dot(self.q.mean(i), &self.nu[j * p..(j + 1) * p]);
            }
        }
        for (j, v) in nn.iter_mut().enumerate() {
            let nu = &self.nu[j * p..(j + 1) * p];
            *v = dot(nu, nu);
        }
    }

    fn terms(&self, target: &IsotropicMixture, beta: f64, estimator: Estimator) -> SampleTerms {
        let mut t = SampleTerms::default();
        self.reset_terms(&mut t, target, beta, estimator);
        t
    }

    /// The per-sample constants of the current state into `t` (reusing its allocations).
    fn reset_terms(
        &self,
        t: &mut SampleTerms,
        target: &IsotropicMixture,
        beta: f64,
        estimator: Estimator,
    ) {
        let (k, jc) = (self.q.components(), self.jc());
        // one scratch buffer (on the stack when small): gmm, gmt, nn, σ, w
        let need = k * k + k * jc + jc + 2 * k;
        let mut stack = [0.0; 48];
        let mut heap = Vec::new();
        let buf: &mut [f64] = if need <= stack.len() {
            &mut stack[..need]
        } else {
            heap.resize(need, 0.0);
            &mut heap
        };
        let (gmm, rest) = buf.split_at_mut(k * k);
        let (gmt, rest) = rest.split_at_mut(k * jc);
        let (nn, rest) = rest.split_at_mut(jc);
        let (sig, w) = rest.split_at_mut(k);
        self.grams_into(gmm, gmt, nn);
        sig.iter_mut()
            .enumerate()
            .for_each(|(l, v)| *v = self.q.sigma(l));
        self.q.weights_into(w);
        t.reset(
            self.d,
            w,
            sig,
            gmm,
            gmt,
            nn,
            target.log_weights(),
            target.variances(),
            beta,
            estimator,
        );
    }

    /// Projections a_l = ξ·μ_l and c_j = ξ·ν_j of frame coordinates ξ.
    fn project(&self, xi: &[f64], a: &mut [f64], c: &mut [f64]) {
        let p = self.p;
        for (l, al) in a.iter_mut().enumerate() {
            *al = sdot(xi, self.q.mean(l));
        }
        for (j, cj) in c.iter_mut().enumerate() {
            *cj = sdot(&xi[..self.a], &self.nu[j * p..j * p + self.a]);
        }
    }

    /// Monte-Carlo (KL(q‖π), E_q[ln q − β ln π]) from `n` samples per component, each drawn
    /// exactly through its frame coordinates and ‖z^⊥‖² ~ χ²_{d−p}.
    fn mc_kl<R: Rng + ?Sized>(
        &self,
        target: &IsotropicMixture,
        beta: f64,
        n: usize,
        rng: &mut R,
    ) -> (f64, f64) {
        let (k, jc, p) = (self.q.components(), self.jc(), self.p);
        let mut t1 = self.terms(target, 1.0, Estimator::Stl);
        let mut tb = self.terms(target, beta, Estimator::Stl);
        let perp = if self.d > p {
            ChiSquared::new((self.d - p) as f64).ok()
        } else {
            None
        };
        let (mut xi, mut a, mut c, mut cz) =
            (vec![0.0; p], vec![0.0; k], vec![0.0; jc], vec![0.0; k]);
        for l in 0..k {
            t1.component(l);
            tb.component(l);
            for _ in 0..n {
                crate::family::fill_standard_normal(rng, &mut xi);
                let zz = dot(&xi, &xi) + perp.as_ref().map_or(0.0, |c| c.sample(rng));
                self.project(&xi, &mut a, &mut c);
                t1.sample(l, 0.0, &a, &c, zz, &mut cz);
                tb.sample(l, 0.0, &a, &c, zz, &mut cz);
            }
            t1.end_component(l, n);
            tb.end_component(l, n);
        }
        let w = self.q.weights();
        let kl = (0..k).map(|l| w[l] * t1.fbar[l]).sum();
        let ne = (0..k).map(|l| w[l] * tb.fbar[l]).sum();
        (kl, ne)
    }
}

/// Coordinates of a point of the frame's span in the full-d density: ln q at the point whose
/// frame coordinates are `x` (length p).
impl VariationalFamily for StatsStudent {
    fn dim(&self) -> usize {
        self.d
    }
    fn params(&self) -> &[f64] {
        self.q.params()
    }
    fn params_mut(&mut self) -> &mut [f64] {
        self.q.params_mut()
    }
    fn groups(&self) -> Vec<ParamGroup> {
        self.q.groups()
    }
    /// ln q(x) for the point of the frame's span with frame coordinates `x` (length p), with
    /// the d-dimensional normalisation.
    fn log_density(&self, x: &[f64]) -> f64 {
        let w = self.q.weights();
        let dn = self.d as f64;
        let terms: Vec<f64> = (0..self.q.components())
            .map(|l| {
                let s2 = self.q.sigma(l).powi(2);
                let m = self.q.mean(l);
                let dist2: f64 = x.iter().zip(m).map(|(a, b)| (a - b) * (a - b)).sum();
                w[l].ln() - 0.5 * dn * (2.0 * std::f64::consts::PI * s2).ln() - 0.5 * dist2 / s2
            })
            .collect();
        log_sum_exp(&terms)
    }
    /// Draws the frame coordinates (length p) of a sample of q: its orthogonal projection on
    /// the frame's span (the rest is isotropic noise of the complement, not represented).
    fn sample(&self, rng: &mut dyn rand::RngCore, x: &mut [f64]) {
        self.q.sample(rng, x)
    }
}

/// Buffers of the statistics engine, and the exact objective for records.
pub struct StatsWorkspace {
    exact: Option<ExactObjective>,
    normals: Option<NormalGen>,
    /// ξ: n × p frame coordinates of the noise.
    xi: Vec<f64>,
    /// Per sample, K normals for its projections on the orthogonal parts' span (n × K).
    eta: Vec<f64>,
    /// Per sample, its coefficients c_ik (n × K).
    cz: Vec<f64>,
    /// The per-sample formulas' constants and sums (reused from step to step).
    terms: Option<SampleTerms>,
    /// χ²_{m−s} for s = 0..=K, and the m they were built for.
    chi: Vec<ChiSq>,
    chi_df: usize,
    /// The last pass's Cholesky factor (K × K) and active columns (K).
    chol: Vec<f64>,
    active: Vec<bool>,
}

impl StatsStudent {
    /// The samples of one step (see [`Student::loss_and_grad`]): the per-sample formulas
    /// into `terms` and `ws.cz`, and the Cholesky factor (with its active columns) of the
    /// orthogonal parts' Gram matrix. `KC` = K when known at compile time (0: read it).
    #[inline(always)]
    fn noise_pass<const KC: usize, const PC: usize, const JC: usize, const AC: usize, R>(
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
    fn bimodal_pass<const FULL: bool, const LOSS: bool, R>(
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

impl Student for StatsStudent {
    type Workspace = StatsWorkspace;
    type Stats = Stats;

    fn workspace(&self, target: &IsotropicMixture, settings: &TrainSettings) -> StatsWorkspace {
        let exact = (target.as_bimodal().is_some()
            && self.q.components() <= 2
            && settings.record_every > 0)
            .then(|| ExactObjective::new(self.d));
        StatsWorkspace {
            exact,
            normals: None,
            xi: Vec::new(),
            eta: Vec::new(),
            cz: Vec::new(),
            terms: None,
            chi: Vec::new(),
            chi_df: 0,
            chol: Vec::new(),
            active: Vec::new(),
        }
    }

    fn loss_and_grad<R: Rng + ?Sized>(
        &mut self,
        ws: &mut StatsWorkspace,
        target: &IsotropicMixture,
        beta: f64,
        settings: &TrainSettings,
        want_loss: bool,
        rng: &mut R,
        grad: &mut [f64],
    ) -> f64 {
        let (k, jc, p, d) = (self.q.components(), self.jc(), self.p, self.d);
        let b = settings.samples;
        let n = k * b;
        let m = ((d - p) as i64 + self.planted.wishart_df_shift).max(0) as usize;
        ws.cz.resize(n * k, 0.0);

        // the frame part of the noise: ξ (n × p)
        // (reseeded in place: the generator is a few hundred bytes, not worth moving)
        let normals = match &mut ws.normals {
            Some(g) => {
                g.reseed(rng);
                g
            }
            none => none.insert(NormalGen::from_rng(rng)),
        };
        let ns = self.planted.noise_scale;
        ws.xi.resize(n * p, 0.0);
        normals.fill(&mut ws.xi);
        ws.eta.resize(n * k, 0.0);
        normals.fill(&mut ws.eta);
        if ns != 1.0 {
            ws.xi.iter_mut().for_each(|v| *v *= ns);
            ws.eta.iter_mut().for_each(|v| *v *= ns);
        }
        if ws.chi.len() != k + 1 || ws.chi_df != m {
            // χ²_{m−s} for s = 0..=K (None where m − s ≤ 0)
            ws.chi = (0..=k).map(|s| ChiSq::new(m.saturating_sub(s))).collect();
            ws.chi_df = m;
        }

        // The orthogonal part, sample by sample. Y_l = Σ_i c_il z_i^⊥ (l = 1..K) is carried
        // by its Gram matrix G = Y Yᵀ and the Cholesky factor T (G = T Tᵀ, s = rank): the
        // rows of T are the coordinates of the Y_l in an orthonormal basis f of their span.
        // Given the past, z_i^⊥ = Σ_t η_t f_t + rest with η ~ N(0, I_s) and
        // ‖rest‖² ~ χ²_{m−s} independent; then Y z_i^⊥ = T η, ‖z_i^⊥‖² = ‖η‖² + ‖rest‖², and
        // G ← G + c uᵀ + u cᵀ + ‖z_i^⊥‖² c cᵀ with u = T η.
        let mut terms = ws.terms.take().unwrap_or_default();
        self.reset_terms(&mut terms, target, beta, settings.estimator);
        let mut check = 0.0;
        if k == 2 && (self.p, jc, self.a) == (3, 2, 1) && !self.general_pass {
            // the paper's bimodal case: constants and sums in registers; the loss's value
            // is needed for records and for the weights' gradient
            let loss = want_loss || self.q.trainable_weights();
            let full = settings.estimator == Estimator::Full;
            let (chol, active, chk) = match (full, loss) {
                (true, true) => self.bimodal_pass::<true, true, R>(ws, &mut terms, rng, b, ns),
                (true, false) => self.bimodal_pass::<true, false, R>(ws, &mut terms, rng, b, ns),
                (false, true) => self.bimodal_pass::<false, true, R>(ws, &mut terms, rng, b, ns),
                (false, false) => self.bimodal_pass::<false, false, R>(ws, &mut terms, rng, b, ns),
            };
            check = chk;
            ws.chol.clear();
            ws.chol.extend_from_slice(&chol);
            ws.active.clear();
            ws.active.extend_from_slice(&active);
        } else {
            (ws.chol, ws.active) = if k == 2 && (self.p, jc, self.a) == (3, 2, 1) {
                self.noise_pass::<2, 3, 2, 1, R>(ws, &mut terms, rng, b, ns)
            } else if k == 2 {
                self.noise_pass::<2, 0, 0, 0, R>(ws, &mut terms, rng, b, ns)
            } else {
                self.noise_pass::<0, 0, 0, 0, R>(ws, &mut terms, rng, b, ns)
            };
        }
        let (chol, active) = (&ws.chol, &ws.active);

        // gradient of the means: frame part and orthogonal part
        let e = p + k;
        self.grad_ext.clear();
        self.grad_ext.resize(k * e + 2 * k, 0.0);
        for l in 0..k {
            let g = &mut self.grad_ext[l * e..l * e + p];
            for l2 in 0..k {
                let cm = terms.coef_m[l * k + l2];
                g.iter_mut()
                    .zip(self.q.mean(l2))
                    .for_each(|(gi, mi)| *gi += cm * mi);
            }
            for j in 0..jc {
                let cn = terms.coef_n[l * jc + j];
                g.iter_mut()
                    .zip(&self.nu[j * p..(j + 1) * p])
                    .for_each(|(gi, ni)| *gi += cn * ni);
            }
            if p == 3 {
                add_noise_part::<3>(g, &ws.cz[..n * k], &ws.xi[..n * p], k, l);
            } else {
                add_noise_part::<0>(g, &ws.cz[..n * k], &ws.xi[..n * p], k, l);
            }
            let g = &mut self.grad_ext[l * e + p..(l + 1) * e];
            let mut t = 0;
            for col in 0..k {
                if active[col] {
                    g[t] = chol[l * k + col];
                    t += 1;
                }
            }
        }
        let off = k * e;
        let (gs, gw) = self.grad_ext[off..].split_at_mut(k);
        // `check` is 0, or NaN where the loss's value was skipped and a term was not finite
        let loss = terms.finish(self.q.trainable_weights(), gs, gw) + check;

        // the frame part, for anyone reading `grad`
        for l in 0..k {
            grad[l * p..(l + 1) * p].copy_from_slice(&self.grad_ext[l * e..l * e + p]);
        }
        grad[k * p..].copy_from_slice(&self.grad_ext[off..]);
        ws.terms = Some(terms);
        loss
    }

    fn update(
        &mut self,
        opt: &mut dyn Optimizer,
        _grad: &mut [f64],
        _groups: &[ParamGroup],
        scale: f64,
    ) -> bool {
        if self.grad_ext.iter().any(|g| !g.is_finite()) {
            return false;
        }
        if scale != 1.0 {
            self.grad_ext.iter_mut().for_each(|g| *g *= scale);
        }
        let (k, p, a) = (self.q.components(), self.p, self.a);
        let e = p + k;
        // θ in extended coordinates (frame, then the new orthogonal directions)
        self.theta_ext.clear();
        for l in 0..k {
            self.theta_ext.extend_from_slice(self.q.mean(l));
            self.theta_ext.extend(std::iter::repeat_n(0.0, k));
        }
        let off = self.q.log_sigma_offset();
        self.theta_ext.extend_from_slice(&self.q.params()[off..]);
        if self.groups_ext.is_empty() {
            self.groups_ext = vec![
                ParamGroup {
                    kind: GroupKind::Mean,
                    range: 0..k * e,
                    trainable: true,
                },
                ParamGroup {
                    kind: GroupKind::LogScale,
                    range: k * e..k * e + k,
                    trainable: true,
                },
                ParamGroup {
                    kind: GroupKind::Logit,
                    range: k * e + k..k * e + 2 * k,
                    trainable: self.q.trainable_weights(),
                },
            ];
        }
        opt.step(&mut self.theta_ext, &self.grad_ext, &self.groups_ext);

        // the next frame: μ̂ and the ν_j keep their a coordinates; the means' residuals
        // beyond them are re-orthonormalised into p − a coordinates (basis: flat, `len`
        // entries per direction)
        let len = e - a;
        self.basis.clear();
        let mut nb = 0;
        for l in 0..k {
            let res = &self.theta_ext[l * e + a..(l + 1) * e];
            if nb < p - a {
                self.basis.extend_from_slice(res);
                let (done, r) = self.basis.split_at_mut(nb * len);
                if residual_direction_flat(done, r, dot(res, res).sqrt()) {
                    nb += 1;
                } else {
                    self.basis.truncate(nb * len);
                }
            }
        }
        let theta = self.q.params_mut();
        for l in 0..k {
            let res = &self.theta_ext[l * e + a..(l + 1) * e];
            let out = &mut theta[l * p..(l + 1) * p];
            out[..a].copy_from_slice(&self.theta_ext[l * e..l * e + a]);
            for (i, o) in out[a..].iter_mut().enumerate() {
                *o = if i < nb {
                    dot(&self.basis[i * len..(i + 1) * len], res)
                } else {
                    0.0
                };
            }
        }
        theta[off..].copy_from_slice(&self.theta_ext[k * e..]);
        true
    }

    fn params_finite(&self) -> bool {
        self.q.is_finite()
    }

    fn record<R: Rng + ?Sized>(
        &mut self,
        ws: &mut StatsWorkspace,
        target: &IsotropicMixture,
        beta: f64,
        step: usize,
        loss: f64,
        settings: &TrainSettings,
        eval_rng: &mut R,
        observer: &mut dyn Observer,
    ) {
        let stats = self.stats();
        let exact = match (ws.exact.as_ref(), target.as_bimodal()) {
            (Some(e), Some(b)) if self.q.is_finite() => {
                ExactObjective::reduce(&self.q, self.frame_target.axis())
                    .ok()
                    .map(|st| {
                        let v = e.evaluate_reduced(&st, b, beta);
                        (v.entropy_term - v.cross_term, v.neg_elbo)
                    })
            }
            _ => None,
        };
        let (kl, neg_elbo) =
            exact.unwrap_or_else(|| self.mc_kl(target, beta, settings.kl_samples, eval_rng));
        observer.on_record(&Record {
            step,
            beta,
            loss,
            kl,
            neg_elbo,
            stats,
        });
    }

    fn marginal(
        &self,
        target: &IsotropicMixture,
        beta: f64,
        step: usize,
        (range, n): (f64, usize),
    ) -> Option<MarginalSnapshot> {
        let s: Vec<f64> = (0..n)
            .map(|i| -range + 2.0 * range * i as f64 / (n - 1) as f64)
            .collect();
        let axis = target.axis();
        Some(MarginalSnapshot {
            step,
            beta,
            q: s.iter()
                .map(|&x| self.q.axis_density(self.frame_target.axis(), x))
                .collect(),
            target: s.iter().map(|&x| target.axis_density(axis, x)).collect(),
            target_tempered: target
                .as_bimodal()
                .map(|b| b.tempered_axis_densities(beta, &s)),
            s,
        })
    }

    fn finish<R: Rng + ?Sized>(
        &mut self,
        _target: &IsotropicMixture,
        step: usize,
        diverged: bool,
        _settings: &TrainSettings,
        _eval_rng: &mut R,
    ) -> RunResult {
        let stats = self.stats();
        if diverged {
            RunResult::diverged(step, stats)
        } else {
            RunResult {
                outcome: classify(&self.q, &self.frame_target),
                final_step: step,
                light_mode_mass: light_mode_mass(&self.q, &self.frame_target),
                stats,
            }
        }
    }
}
