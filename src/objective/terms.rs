//! The per-sample formulas of the Monte-Carlo gradient ([`SampleTerms`], and [`Terms2`] for
//! the paper's two-component, two-mode case in registers) and the softmax they use.

use super::Estimator;

/// The per-sample formulas of the Monte-Carlo gradient, shared by the d-dimensional kernel
/// ([`mc_gradient`](super::mc_gradient)) and the summary-statistics engine ([`crate::statistics`]).
///
/// A sample x = μ_k + σ_k z of component k enters the estimator only through the projections
/// a_l = z·μ_l (student means), c_j = z·ν_j (target means) and ‖z‖²: every squared distance is
/// ‖x − μ_l‖² = ‖μ_k − μ_l‖² + 2σ_k(a_k − a_l) + σ_k²‖z‖² (and likewise for ν_j). The gradient
/// with respect to the means is then Σ_l coef_m[k,l] μ_l + Σ_j coef_n[k,j] ν_j + Σ_i cz_i z_i,
/// with scalar coefficients from [`SampleTerms::sample`]; the scale and weight gradients are
/// scalars too. `gmm[k·K+l]` = μ_k·μ_l, `gmt[k·J+j]` = μ_k·ν_j and `nn[j]` = ν_j·ν_j are the
/// Gram quantities, computed by the caller in whatever coordinates it has.
#[derive(Default)]
pub(crate) struct SampleTerms {
    kc: usize,
    jc: usize,
    full: bool,
    beta: f64,
    w: Vec<f64>,
    sig: Vec<f64>,
    s2: Vec<f64>,
    gmm: Vec<f64>,
    gmt: Vec<f64>,
    nn: Vec<f64>,
    inv_s2: Vec<f64>,
    half_inv_s2: Vec<f64>,
    inv_s3: Vec<f64>,
    dn_inv_s: Vec<f64>,
    lq0: Vec<f64>,
    lnorm_t: Vec<f64>,
    half_inv_vt: Vec<f64>,
    mbeta_inv_vt: Vec<f64>,
    // per-component constants (set by `component`) and per-sample scratch
    dkl0: Vec<f64>,
    dkj0: Vec<f64>,
    tq: Vec<f64>,
    dq: Vec<f64>,
    tp: Vec<f64>,
    /// Σ over samples of scale·α: the coefficient of μ_l in ∇_{μ_k} (row-major K×K).
    pub coef_m: Vec<f64>,
    /// The coefficient of ν_j in ∇_{μ_k} (row-major K×J).
    pub coef_n: Vec<f64>,
    /// ∂/∂σ_k of the loss estimate.
    pub gsig: Vec<f64>,
    /// The score part of ∂/∂a_k (full estimator).
    pub glogit: Vec<f64>,
    /// Per component: the running sum, then (after [`SampleTerms::finish`]) the mean, of
    /// ln q − β ln π over its samples.
    pub fbar: Vec<f64>,
}

impl SampleTerms {
    /// Constants for a student with weights `w` and scales `sig` in dimension `d`, the Gram
    /// quantities `gmm`, `gmt`, `nn` (see the type's docs), and a target with log-weights
    /// `log_wt` and variances `v_t`, tempered at β.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        d: usize,
        w: &[f64],
        sig: &[f64],
        gmm: &[f64],
        gmt: &[f64],
        nn: &[f64],
        log_wt: &[f64],
        v_t: &[f64],
        beta: f64,
        estimator: Estimator,
    ) -> Self {
        let mut t = Self::default();
        t.reset(d, w, sig, gmm, gmt, nn, log_wt, v_t, beta, estimator);
        t
    }

    /// Recomputes every constant and zeroes the sums, as [`SampleTerms::new`] would, reusing
    /// the allocations.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reset(
        &mut self,
        d: usize,
        w: &[f64],
        sig: &[f64],
        gmm: &[f64],
        gmt: &[f64],
        nn: &[f64],
        log_wt: &[f64],
        v_t: &[f64],
        beta: f64,
        estimator: Estimator,
    ) {
        fn set(v: &mut Vec<f64>, it: impl Iterator<Item = f64>) {
            v.clear();
            v.extend(it);
        }
        let kc = w.len();
        let jc = v_t.len();
        let dn = d as f64;
        let ln2pi = (2.0 * std::f64::consts::PI).ln();
        self.kc = kc;
        self.jc = jc;
        self.full = estimator == Estimator::Full;
        self.beta = beta;
        set(&mut self.w, w.iter().copied());
        set(&mut self.sig, sig.iter().copied());
        set(&mut self.s2, sig.iter().map(|s| s * s));
        set(&mut self.gmm, gmm.iter().copied());
        set(&mut self.gmt, gmt.iter().copied());
        set(&mut self.nn, nn.iter().copied());
        // ln w_l − (d/2) ln(2π σ_l²), and the target's normalisations
        set(
            &mut self.lq0,
            (0..kc).map(|l| w[l].ln() + -0.5 * dn * (ln2pi + self.s2[l].ln())),
        );
        set(
            &mut self.lnorm_t,
            (0..jc).map(|j| log_wt[j] - 0.5 * dn * (ln2pi + v_t[j].ln())),
        );
        // Reciprocals and constant parts of the per-sample formulas.
        set(&mut self.inv_s2, self.s2.iter().map(|v| 1.0 / v));
        set(&mut self.half_inv_s2, self.inv_s2.iter().map(|v| 0.5 * v));
        set(
            &mut self.inv_s3,
            (0..kc).map(|l| 1.0 / (self.sig[l] * self.s2[l])),
        );
        set(&mut self.dn_inv_s, self.sig.iter().map(|s| dn / s));
        set(&mut self.half_inv_vt, v_t.iter().map(|v| 0.5 / v));
        set(&mut self.mbeta_inv_vt, v_t.iter().map(|v| -beta / v));
        for v in [
            &mut self.dkl0,
            &mut self.tq,
            &mut self.dq,
            &mut self.gsig,
            &mut self.glogit,
            &mut self.fbar,
        ] {
            set(v, std::iter::repeat_n(0.0, kc));
        }
        set(&mut self.dkj0, std::iter::repeat_n(0.0, jc));
        set(&mut self.tp, std::iter::repeat_n(0.0, jc));
        set(&mut self.coef_m, std::iter::repeat_n(0.0, kc * kc));
        set(&mut self.coef_n, std::iter::repeat_n(0.0, kc * jc));
    }

    /// Per-component constants: squared distances between the means (clamped at 0). Call
    /// before the samples of component k.
    #[inline(always)]
    pub(crate) fn component(&mut self, k: usize) {
        let (kc, jc) = (self.kc, self.jc);
        for l in 0..kc {
            self.dkl0[l] =
                (self.gmm[k * kc + k] + self.gmm[l * kc + l] - 2.0 * self.gmm[k * kc + l]).max(0.0);
        }
        for j in 0..jc {
            self.dkj0[j] =
                (self.gmm[k * kc + k] + self.nn[j] - 2.0 * self.gmt[k * jc + j]).max(0.0);
        }
    }

    /// Adds one sample of component k (weight `scale` = w_k/B) with projections `a` (K),
    /// `c` (J) and ‖z‖² = `zz`; writes into `cz` (K) the coefficients of this sample's z in
    /// ∇_{μ_l}.
    #[inline(always)]
    pub(crate) fn sample(
        &mut self,
        k: usize,
        scale: f64,
        a: &[f64],
        c: &[f64],
        zz: f64,
        cz: &mut [f64],
    ) {
        // the paper's case (two components, two modes) with constant loop bounds: the same
        // operations in the same order, unrolled by the compiler
        if self.kc == 2 && self.jc == 2 {
            self.sample_sized::<2, 2>(k, scale, a, c, zz, cz)
        } else {
            self.sample_sized::<0, 0>(k, scale, a, c, zz, cz)
        }
    }

    /// [`SampleTerms::sample`] for K = `KC`, J = `JC` known at compile time (0: read from
    /// `self`).
    #[inline(always)]
    fn sample_sized<const KC: usize, const JC: usize>(
        &mut self,
        k: usize,
        scale: f64,
        a: &[f64],
        c: &[f64],
        zz: f64,
        cz: &mut [f64],
    ) {
        let kc = if KC > 0 { KC } else { self.kc };
        let jc = if JC > 0 { JC } else { self.jc };
        // slices of exactly K or J entries, so that the loops below need no bounds checks
        let (a, c, cz) = (&a[..kc], &c[..jc], &mut cz[..kc]);
        let tq = &mut self.tq[..kc];
        let dq = &mut self.dq[..kc];
        let tp = &mut self.tp[..jc];
        let (dkl0, lq0, half_inv_s2, inv_s2) = (
            &self.dkl0[..kc],
            &self.lq0[..kc],
            &self.half_inv_s2[..kc],
            &self.inv_s2[..kc],
        );
        let (dkj0, lnorm_t, half_inv_vt, mbeta_inv_vt) = (
            &self.dkj0[..jc],
            &self.lnorm_t[..jc],
            &self.half_inv_vt[..jc],
            &self.mbeta_inv_vt[..jc],
        );
        let coef_m = &mut self.coef_m[..kc * kc];
        let coef_n_row = &mut self.coef_n[k * jc..(k + 1) * jc];
        let sk = self.sig[k];
        let ak = a[k];
        // ln q(x) with x = μ_k + σ_k z
        let s2zz = self.s2[k] * zz;
        for l in 0..kc {
            dq[l] = dkl0[l] + 2.0 * sk * (ak - a[l]) + s2zz;
            tq[l] = lq0[l] - half_inv_s2[l] * dq[l];
        }
        // responsibilities r_l = e_l / Σ e, ln q = max + ln Σ e with e_l = exp(t_l − max)
        let lq = softmax_in_place(tq);
        // ln π(x)
        for j in 0..jc {
            let dist = dkj0[j] + 2.0 * sk * (ak - c[j]) + s2zz;
            tp[j] = lnorm_t[j] - half_inv_vt[j] * dist;
        }
        let lp = softmax_in_place(tp);
        self.fbar[k] += lq - self.beta * lp;

        // ∇_x f = Σ_l α_l μ_l + Σ_j γ_j ν_j + A x
        let mut big_a = 0.0;
        let mut dsig = 0.0;
        {
            let cm_row = &mut coef_m[k * kc..(k + 1) * kc];
            for l in 0..kc {
                let alpha = tq[l] * inv_s2[l];
                big_a -= alpha;
                cm_row[l] += scale * alpha;
                dsig += alpha * a[l];
            }
        }
        for j in 0..jc {
            let gamma = tp[j] * mbeta_inv_vt[j];
            big_a -= gamma;
            coef_n_row[j] += scale * gamma;
            dsig += gamma * c[j];
        }
        coef_m[k * kc + k] += scale * big_a;
        dsig += big_a * (ak + sk * zz);
        self.gsig[k] += scale * dsig;
        cz.iter_mut().for_each(|v| *v = 0.0);
        cz[k] = scale * big_a * sk;

        if self.full {
            // score: ∂_θ ln q(x)|_x
            let (inv_s3, dn_inv_s, w) = (&self.inv_s3[..kc], &self.dn_inv_s[..kc], &self.w[..kc]);
            let (gsig, glogit) = (&mut self.gsig[..kc], &mut self.glogit[..kc]);
            for l in 0..kc {
                let r = tq[l];
                let alpha = r * inv_s2[l];
                coef_m[l * kc + k] += scale * alpha;
                coef_m[l * kc + l] -= scale * alpha;
                cz[l] += scale * alpha * sk;
                gsig[l] += scale * r * (dq[l] * inv_s3[l] - dn_inv_s[l]);
                glogit[l] += scale * (r - w[l]);
            }
        }
    }

    /// The constants of the two-component, two-mode case, copied into a [`Terms2`] whose
    /// sums start at zero (call after [`SampleTerms::reset`]).
    pub(crate) fn two_by_two(&self) -> Terms2 {
        debug_assert!(self.kc == 2 && self.jc == 2);
        let two = |v: &[f64]| [v[0], v[1]];
        Terms2 {
            beta: self.beta,
            w: two(&self.w),
            sig: two(&self.sig),
            s2: two(&self.s2),
            lq0: two(&self.lq0),
            inv_s2: two(&self.inv_s2),
            half_inv_s2: two(&self.half_inv_s2),
            inv_s3: two(&self.inv_s3),
            dn_inv_s: two(&self.dn_inv_s),
            lnorm_t: two(&self.lnorm_t),
            half_inv_vt: two(&self.half_inv_vt),
            mbeta_inv_vt: two(&self.mbeta_inv_vt),
            dkl0: [0.0; 2],
            dkj0: [0.0; 2],
            coef_m: [0.0; 4],
            coef_n: [0.0; 4],
            gsig: [0.0; 2],
            glogit: [0.0; 2],
            fbar: [0.0; 2],
            check: 0.0,
        }
    }

    /// Takes back the sums of a [`Terms2`] (the constants are unchanged).
    pub(crate) fn store_two_by_two(&mut self, t: &Terms2) {
        self.coef_m.copy_from_slice(&t.coef_m);
        self.coef_n.copy_from_slice(&t.coef_n);
        self.gsig.copy_from_slice(&t.gsig);
        self.glogit.copy_from_slice(&t.glogit);
        self.fbar.copy_from_slice(&t.fbar);
    }

    /// Ends the samples of component k (B of them): fbar_k becomes their mean.
    #[inline(always)]
    pub(crate) fn end_component(&mut self, k: usize, samples: usize) {
        self.fbar[k] /= samples as f64;
    }

    /// The loss estimate Σ_k w_k fbar_k; writes ∂/∂ln σ_k (= σ_k ∂/∂σ_k) into `grad_log_sigma`
    /// and ∂/∂a_k into `grad_logit` (zeros when the weights are fixed).
    pub(crate) fn finish(
        &self,
        trainable_weights: bool,
        grad_log_sigma: &mut [f64],
        grad_logit: &mut [f64],
    ) -> f64 {
        let kc = self.kc;
        let w = &self.w;
        let loss: f64 = (0..kc).map(|k| w[k] * self.fbar[k]).sum();
        for k in 0..kc {
            grad_log_sigma[k] = self.sig[k] * self.gsig[k];
        }
        if trainable_weights {
            for j in 0..kc {
                grad_logit[j] = self.glogit[j] + w[j] * (self.fbar[j] - loss);
            }
        } else {
            grad_logit.iter_mut().for_each(|g| *g = 0.0);
        }
        loss
    }
}

/// [`SampleTerms`] for K = J = 2 (the paper's case) as fixed-size arrays, so that a kernel
/// holding one by value keeps its constants and sums in registers. [`Terms2::sample`] does
/// the operations of [`SampleTerms::sample`] in the same order: the sums are bit for bit
/// those of the general path.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Terms2 {
    beta: f64,
    w: [f64; 2],
    sig: [f64; 2],
    s2: [f64; 2],
    lq0: [f64; 2],
    inv_s2: [f64; 2],
    half_inv_s2: [f64; 2],
    inv_s3: [f64; 2],
    dn_inv_s: [f64; 2],
    lnorm_t: [f64; 2],
    half_inv_vt: [f64; 2],
    mbeta_inv_vt: [f64; 2],
    dkl0: [f64; 2],
    dkj0: [f64; 2],
    coef_m: [f64; 4],
    coef_n: [f64; 4],
    gsig: [f64; 2],
    glogit: [f64; 2],
    fbar: [f64; 2],
    /// 0, or NaN once a per-sample term of the loss was not finite (samples with `LOSS`
    /// false only).
    pub check: f64,
}

impl Terms2 {
    /// The student's weights w_1, w_2.
    pub(crate) fn weights(&self) -> [f64; 2] {
        self.w
    }

    /// Per-component constants from the Gram quantities of `t` (as
    /// [`SampleTerms::component`]).
    #[inline(always)]
    pub(crate) fn component(&mut self, t: &SampleTerms, k: usize) {
        for l in 0..2 {
            self.dkl0[l] = (t.gmm[k * 2 + k] + t.gmm[l * 2 + l] - 2.0 * t.gmm[k * 2 + l]).max(0.0);
        }
        for j in 0..2 {
            self.dkj0[j] = (t.gmm[k * 2 + k] + t.nn[j] - 2.0 * t.gmt[k * 2 + j]).max(0.0);
        }
    }

    /// [`SampleTerms::sample`] for component `K`; returns the coefficients c_il of this
    /// sample's z in ∇_{μ_l}. `FULL`: the full estimator (else sticking the landing).
    #[inline(always)]
    ///
    /// `LOSS` false: the loss's value is not wanted, so its logarithms (ln q, ln π) are not
    /// taken; [`Terms2::check`] records instead whether every per-sample term of the loss
    /// would have been finite. The gradient sums do not depend on `LOSS`.
    pub(crate) fn sample<const K: usize, const FULL: bool, const LOSS: bool>(
        &mut self,
        scale: f64,
        a: [f64; 2],
        c: [f64; 2],
        zz: f64,
    ) -> [f64; 2] {
        let sk = self.sig[K];
        let ak = a[K];
        let s2zz = self.s2[K] * zz;
        let mut dq = [0.0; 2];
        let mut tq = [0.0; 2];
        for l in 0..2 {
            dq[l] = self.dkl0[l] + 2.0 * sk * (ak - a[l]) + s2zz;
            tq[l] = self.lq0[l] - self.half_inv_s2[l] * dq[l];
        }
        let (mq, eq) = softmax2(&mut tq);
        let mut tp = [0.0; 2];
        for j in 0..2 {
            let dist = self.dkj0[j] + 2.0 * sk * (ak - c[j]) + s2zz;
            tp[j] = self.lnorm_t[j] - self.half_inv_vt[j] * dist;
        }
        let (mp, ep) = softmax2(&mut tp);
        if LOSS {
            // ln q = max + ln(1 + e), as in `softmax_in_place`
            self.fbar[K] += (mq + eq.ln_1p()) - self.beta * (mp + ep.ln_1p());
        } else {
            // ln(1 + e) is finite unless e is NaN: 0 where the term is finite, else NaN
            self.check += ((mq - self.beta * mp) + eq * 0.0 + ep * 0.0) * 0.0;
        }

        let mut big_a = 0.0;
        let mut dsig = 0.0;
        for l in 0..2 {
            let alpha = tq[l] * self.inv_s2[l];
            big_a -= alpha;
            self.coef_m[K * 2 + l] += scale * alpha;
            dsig += alpha * a[l];
        }
        for j in 0..2 {
            let gamma = tp[j] * self.mbeta_inv_vt[j];
            big_a -= gamma;
            self.coef_n[K * 2 + j] += scale * gamma;
            dsig += gamma * c[j];
        }
        self.coef_m[K * 2 + K] += scale * big_a;
        dsig += big_a * (ak + sk * zz);
        self.gsig[K] += scale * dsig;
        let mut cz = [0.0; 2];
        cz[K] = scale * big_a * sk;
        if FULL {
            for l in 0..2 {
                let r = tq[l];
                let alpha = r * self.inv_s2[l];
                self.coef_m[l * 2 + K] += scale * alpha;
                self.coef_m[l * 2 + l] -= scale * alpha;
                cz[l] += scale * alpha * sk;
                self.gsig[l] += scale * r * (dq[l] * self.inv_s3[l] - self.dn_inv_s[l]);
                self.glogit[l] += scale * (r - self.w[l]);
            }
        }
        cz
    }

    /// Ends the samples of component k (B of them): fbar_k becomes their mean.
    #[inline(always)]
    pub(crate) fn end_component(&mut self, k: usize, samples: usize) {
        self.fbar[k] /= samples as f64;
    }
}

/// [`softmax_in_place`] for two entries, without the logarithm: writes the
/// responsibilities and returns (max, e) with ln Σ exp = max + ln(1 + e).
#[inline(always)]
fn softmax2(t: &mut [f64; 2]) -> (f64, f64) {
    let (ta, tb) = (t[0], t[1]);
    let e = (-(ta - tb).abs()).exp();
    let s = 1.0 + e;
    let (ra, rb) = if ta >= tb { (1.0, e) } else { (e, 1.0) };
    t[0] = ra / s;
    t[1] = rb / s;
    (ta.max(tb), e)
}

/// Replaces t by softmax(t) and returns ln Σ exp(t) (one exp per entry; one exp and one ln_1p
/// for two entries).
#[inline(always)]
fn softmax_in_place(t: &mut [f64]) -> f64 {
    if let Ok(t2) = <&mut [f64; 2]>::try_from(&mut *t) {
        let (m, e) = softmax2(t2);
        return m + e.ln_1p();
    }
    let m = t.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut s = 0.0;
    for v in t.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    for v in t.iter_mut() {
        *v /= s;
    }
    m + s.ln()
}
