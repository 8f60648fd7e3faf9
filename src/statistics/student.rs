//! The statistics engine in the training loop: [`Student`] for [`StatsStudent`] (the
//! gradient from the noise passes, the update that moves the frame, records, marginals and the
//! outcome).

use super::StatsStudent;
use super::linalg::{add_noise_part, residual_direction_flat};
use super::passes::{ChiSq, StatsWorkspace};
use crate::family::gmm::{Stats, dot};
use crate::family::{GroupKind, ParamGroup, VariationalFamily};
use crate::normal::NormalGen;
use crate::objective::{Estimator, ExactObjective};
use crate::optim::Optimizer;
use crate::target::IsotropicMixture;
use crate::train::{
    MarginalSnapshot, Observer, Record, RunResult, Student, TrainSettings, Trainable, exact_kl,
    gmm_result, marginal_along,
};
use rand::Rng;

impl Trainable for StatsStudent {
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

    fn params_within(&self, bound: f64) -> bool {
        // the frame is orthonormal: a mean's coordinates have the norm of the mean
        self.q.within(bound)
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
        let stats_axis = self.frame_target.axis();
        let (kl, neg_elbo) = exact_kl(ws.exact.as_ref(), &self.q, stats_axis, target, beta)
            .unwrap_or_else(|| self.mc_kl(target, beta, settings.kl_samples, eval_rng));
        observer.on_record(&Record {
            step,
            beta,
            loss,
            kl,
            neg_elbo,
            stats,
        });
    }

    fn log_target_at_samples<R: Rng + ?Sized>(
        &mut self,
        target: &IsotropicMixture,
        n: usize,
        rng: &mut R,
        out: &mut Vec<f64>,
    ) {
        self.log_target_samples(target, n, rng, out);
    }

    fn marginal(
        &self,
        target: &IsotropicMixture,
        beta: f64,
        step: usize,
        grid: (f64, usize),
    ) -> Option<MarginalSnapshot> {
        let q_axis = self.frame_target.axis();
        Some(marginal_along(&self.q, q_axis, target, beta, step, grid))
    }

    fn finish<R: Rng + ?Sized>(
        &mut self,
        _target: &IsotropicMixture,
        step: usize,
        diverged: bool,
        _settings: &TrainSettings,
        _eval_rng: &mut R,
    ) -> RunResult {
        gmm_result(&self.q, &self.frame_target, step, diverged)
    }
}
