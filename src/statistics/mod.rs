//! SGD of the Gaussian-mixture student simulated exactly in its summary statistics, at a cost
//! per step that does not depend on the dimension d (`student.simulation = "statistics"`).
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
//! rotation invariant, so the law of the statistics would depend on the basis).
//!
//! Files: this one holds the state ([`StatsStudent`], [`TargetFrame`]), its construction and
//! its density; `linalg` the frame's Gram–Schmidt and Cholesky steps; `passes` the noise of one
//! step (the χ² draws of the Bartlett factor and the per-sample passes); `student` the
//! training-loop side ([`Student`](crate::train::Student): gradient, update, records, outcome).

mod linalg;
mod passes;
mod student;

pub use passes::StatsWorkspace;

use crate::family::gmm::{Stats, dot};
use crate::family::{GmmStudent, ParamGroup, VariationalFamily};
use crate::objective::{Estimator, SampleTerms};
use crate::target::{IsotropicMixture, LogDensity, log_sum_exp};
use linalg::{residual_direction, sdot};
use rand::Rng;
use rand_distr::{ChiSquared, Distribution};

#[cfg(feature = "testing")]
pub use hooks::PlantedError;
#[cfg(not(feature = "testing"))]
pub(crate) use hooks::PlantedError;

mod hooks {
    /// Deliberate errors, for showing that the two-sample tests can detect a wrong engine
    /// (public with the cargo feature `testing` only; never set outside tests).
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

    /// With a deliberate error (tests of the tests only; cargo feature `testing`).
    #[cfg(feature = "testing")]
    pub fn with_planted_error(mut self, e: PlantedError) -> Self {
        self.planted = e;
        self
    }

    /// Uses the general per-sample pass even where the paper's case has its own (it draws
    /// the same numbers; tests compare the two bit for bit; cargo feature `testing`).
    #[cfg(any(test, feature = "testing"))]
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

    /// ℓ_i = ln π(x_i) at `n` points x_i ~ q of R^d, drawn exactly through the frame: a
    /// component l with probability w_l, then x = μ_l + σ_l z with z = ξ + z^⊥, ξ ~ N(0, I_p)
    /// the frame coordinates and z^⊥ isotropic in the (d − p)-dimensional complement. As
    /// every ν_j and μ_l lie in the frame's span, ‖x − ν_j‖² = ‖x_f − ν_j‖² + σ_l² ‖z^⊥‖²
    /// with x_f = μ_l + σ_l ξ and ‖z^⊥‖² ~ χ²_{d−p}, so
    ///
    ///   ln π(x) = ln Σ_j ω_j (2π v_j)^{−d/2} exp(−(‖x_f − ν_j‖² + σ_l² χ²_{d−p}) / (2 v_j)),
    ///
    /// the value of the target's d-dimensional density at x (same law as the vector engine's
    /// samples; other numbers).
    pub(crate) fn log_target_samples<R: Rng + ?Sized>(
        &self,
        target: &IsotropicMixture,
        n: usize,
        rng: &mut R,
        out: &mut Vec<f64>,
    ) {
        let (k, jc, p) = (self.q.components(), self.jc(), self.p);
        let dn = self.d as f64;
        let perp = if self.d > p {
            ChiSquared::new((self.d - p) as f64).ok()
        } else {
            None
        };
        let w = self.q.weights();
        let (lw, var) = (target.log_weights(), target.variances());
        let (mut xi, mut terms) = (vec![0.0; p], vec![0.0; jc]);
        out.clear();
        for _ in 0..n {
            let u: f64 = rng.r#gen();
            let mut l = k - 1;
            let mut acc = 0.0;
            for (i, wi) in w.iter().enumerate() {
                acc += wi;
                if u < acc {
                    l = i;
                    break;
                }
            }
            let s = self.q.sigma(l);
            crate::family::fill_standard_normal(rng, &mut xi);
            let chi = perp.as_ref().map_or(0.0, |c| c.sample(rng));
            for (xv, m) in xi.iter_mut().zip(self.q.mean(l)) {
                *xv = m + s * *xv;
            }
            let r2 = s * s * chi;
            for (j, t) in terms.iter_mut().enumerate() {
                let nu = &self.nu[j * p..(j + 1) * p];
                let dist2: f64 = xi.iter().zip(nu).map(|(a, b)| (a - b) * (a - b)).sum();
                *t = lw[j]
                    - 0.5 * dn * (2.0 * std::f64::consts::PI * var[j]).ln()
                    - 0.5 * (dist2 + r2) / var[j];
            }
            out.push(log_sum_exp(&terms));
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
