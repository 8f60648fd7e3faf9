//! Fitted students from Python: the Gaussian mixture ([`GmmModel`]) and the RealNVP flow
//! ([`FlowModel`]), each holding the library's student, with seeded sampling and log-densities
//! (the library's own `sample` / `log_density` / `sample_with_log_q` / `inverse`).
//!
//! The statistics engine (`objective.engine = "statistics"`) ends with a student in frame
//! coordinates (p ≤ d dimensions: μ̂, the target means' span, then student directions);
//! [`embed_frame_student`] writes it back in R^d so that every fitted mixture has (K, d) means.

use annealvi::config::{Config, Simulation};
use annealvi::family::gmm::dot;
use annealvi::family::realnvp::Precision;
use annealvi::family::{GmmStudent, RealNvp, VariationalFamily};
use annealvi::seed::{Purpose, stream};
use annealvi::target::{IsotropicMixture, LogDensity};
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The largest number of entries (n·d) of a sample or of a log-density batch: 2²⁸ f64 (2 GiB).
const MAX_ENTRIES: usize = 1 << 28;

/// Chunk of the flow's log-density (rows through the inverse at a time); fixed, so that the
/// values do not depend on the number of points asked for.
const FLOW_CHUNK: usize = 256;

fn check_n(n: usize, d: usize) -> PyResult<()> {
    if n.checked_mul(d).is_none_or(|e| e > MAX_ENTRIES) {
        return Err(PyValueError::new_err(format!(
            "invalid value for `n`: {n} (expected an integer in [0, {}] for d = {d}: n·d ≤ 2^28)",
            MAX_ENTRIES / d.max(1)
        )));
    }
    Ok(())
}

/// The points `x` as a row-major (n, d) slice, checked: shape (n, d), finite.
fn points(x: &PyReadonlyArray2<'_, f64>, d: usize) -> PyResult<(usize, Vec<f64>)> {
    let a = x.as_array();
    let (n, cols) = a.dim();
    if cols != d {
        return Err(PyValueError::new_err(format!(
            "invalid value for `x`: shape ({n}, {cols}) (expected (n, {d}): one point per row)"
        )));
    }
    check_n(n, d)?;
    let flat: Vec<f64> = a.iter().copied().collect();
    if let Some(i) = flat.iter().position(|v| !v.is_finite()) {
        return Err(PyValueError::new_err(format!(
            "invalid value for `x`: {} at row {}, column {} (expected finite coordinates)",
            flat[i],
            i / d,
            i % d
        )));
    }
    Ok((n, flat))
}

/// The stream of `sample(n, seed)`: (seed, 0, Eval) of the library's seeding.
fn sample_stream(seed: u64) -> annealvi::seed::Stream {
    stream(seed, 0, Purpose::Eval)
}

/// The Gaussian-mixture student q(x) = Σ_k w_k N(x; μ_k, σ_k² I_d), as the library holds it.
#[pyclass(module = "annealvi._native", frozen)]
pub struct GmmModel {
    q: GmmStudent,
}

impl GmmModel {
    pub(crate) fn new(q: GmmStudent) -> Self {
        Self { q }
    }
}

#[pymethods]
impl GmmModel {
    /// A mixture from its means (K, d), scales σ (K,) > 0 and weights (K,) > 0 summing to 1.
    #[new]
    fn py_new(
        means: PyReadonlyArray2<'_, f64>,
        sigma: PyReadonlyArray1<'_, f64>,
        weights: PyReadonlyArray1<'_, f64>,
    ) -> PyResult<Self> {
        let m = means.as_array();
        let (k, d) = m.dim();
        if k < 1 || d < 1 {
            return Err(PyValueError::new_err(format!(
                "invalid value for `means`: shape ({k}, {d}) (expected (K, d) with K ≥ 1, d ≥ 1)"
            )));
        }
        if m.iter().any(|v| !v.is_finite()) {
            return Err(PyValueError::new_err(
                "invalid value for `means`: non-finite entries (expected finite means)",
            ));
        }
        let s = sigma.as_array().to_vec();
        let w = weights.as_array().to_vec();
        if s.len() != k || s.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(PyValueError::new_err(format!(
                "invalid value for `sigma`: {s:?} (expected {k} finite numbers > 0)"
            )));
        }
        let total: f64 = w.iter().sum();
        if w.len() != k
            || w.iter().any(|v| !(v.is_finite() && *v > 0.0))
            || (total - 1.0).abs() > 1e-9
        {
            return Err(PyValueError::new_err(format!(
                "invalid value for `weights`: {w:?} (expected {k} numbers > 0 summing to 1)"
            )));
        }
        let rows: Vec<Vec<f64>> = m.rows().into_iter().map(|r| r.to_vec()).collect();
        Ok(Self::new(GmmStudent::new(&rows, &s, &w, false)))
    }

    /// Dimension d.
    #[getter]
    fn dim(&self) -> usize {
        self.q.dim()
    }

    /// Number of components K.
    #[getter]
    fn components(&self) -> usize {
        self.q.components()
    }

    /// The means μ_k, shape (K, d).
    #[getter]
    fn means<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let (k, d) = (self.q.components(), self.q.dim());
        PyArray1::from_slice(py, self.q.means_flat()).reshape([k, d])
    }

    /// The scales σ_k, shape (K,).
    #[getter]
    fn sigma<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        let s: Vec<f64> = (0..self.q.components()).map(|k| self.q.sigma(k)).collect();
        PyArray1::from_vec(py, s)
    }

    /// The weights w_k, shape (K,).
    #[getter]
    fn weights<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_vec(py, self.q.weights())
    }

    /// `n` samples, shape (n, d), from the stream of `seed`.
    fn sample<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        seed: u64,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let d = self.q.dim();
        check_n(n, d)?;
        let q = &self.q;
        let x = py.detach(|| {
            let mut rng = sample_stream(seed);
            let mut x = vec![0.0; n * d];
            for row in x.chunks_exact_mut(d) {
                q.sample(&mut rng, row);
            }
            x
        });
        PyArray1::from_vec(py, x).reshape([n, d])
    }

    /// ln q(x) for the rows of `x` (n, d), shape (n,).
    fn log_prob<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let d = self.q.dim();
        let (_, flat) = points(&x, d)?;
        let q = &self.q;
        let lp = py.detach(|| {
            flat.chunks_exact(d)
                .map(|row| q.log_density(row))
                .collect::<Vec<_>>()
        });
        Ok(PyArray1::from_vec(py, lp))
    }
}

/// Points (n, d) and their ln q (n,).
type Points<'py> = (Bound<'py, PyArray2<f64>>, Bound<'py, PyArray1<f64>>);

/// The RealNVP flow student, as the library holds it.
#[pyclass(module = "annealvi._native", frozen)]
pub struct FlowModel {
    q: RealNvp,
}

impl FlowModel {
    pub(crate) fn new(q: RealNvp) -> Self {
        Self { q }
    }
}

#[pymethods]
impl FlowModel {
    /// Dimension d.
    #[getter]
    fn dim(&self) -> usize {
        self.q.dim()
    }

    /// The architecture: d, layers, depth, width, activation, mask, scale_bound, sigma0
    /// (the base's standard deviation σ0), precision.
    #[getter]
    fn arch<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let a = self.q.arch();
        let out = PyDict::new(py);
        out.set_item("d", a.d)?;
        out.set_item("layers", a.layers)?;
        out.set_item("depth", a.depth)?;
        out.set_item("width", a.width)?;
        let act = match a.activation {
            annealvi::family::realnvp::Activation::Relu => "relu",
            annealvi::family::realnvp::Activation::Tanh => "tanh",
        };
        out.set_item("activation", act)?;
        let mask = match a.mask {
            annealvi::family::realnvp::MaskKind::Halves => "halves",
            annealvi::family::realnvp::MaskKind::Checkerboard => "checkerboard",
        };
        out.set_item("mask", mask)?;
        out.set_item("scale_bound", a.scale_bound)?;
        out.set_item("sigma0", a.sigma0)?;
        let prec = match self.q.precision() {
            Precision::F32 => "f32",
            Precision::F64 => "f64",
        };
        out.set_item("precision", prec)?;
        Ok(out)
    }

    /// The flat parameter vector θ (float64, in the library's layout).
    #[getter]
    fn params<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<f64>> {
        PyArray1::from_slice(py, self.q.params())
    }

    /// The layout of θ: one (coupling, net, layer, offset, n_out, n_in) per linear layer, in
    /// θ's order; W (n_out × n_in, row-major) at θ[offset..], then b (n_out).
    #[getter]
    fn layout(&self) -> Vec<(usize, &'static str, usize, usize, usize, usize)> {
        let a = self.q.arch();
        let mut out = Vec::with_capacity(a.layers * 2 * a.depth);
        for l in 0..a.layers {
            for (net, name) in ["s", "t"].into_iter().enumerate() {
                for j in 0..a.depth {
                    let (off, n_out, n_in) = self.q.linear_offset(l, net, j);
                    out.push((l, name, j, off, n_out, n_in));
                }
            }
        }
        out
    }

    /// `n` samples (n, d) and their ln q (n,), from the stream of `seed`, drawn by the
    /// library's `sample_with_log_q` (the push-forward of base noise).
    fn sample_with_log_prob<'py>(
        &self,
        py: Python<'py>,
        n: usize,
        seed: u64,
    ) -> PyResult<Points<'py>> {
        let d = self.q.dim();
        check_n(n, d)?;
        if n == 0 {
            return Ok((
                PyArray1::from_vec(py, Vec::new()).reshape([0, d])?,
                PyArray1::from_vec(py, Vec::new()),
            ));
        }
        // a copy: the flow's batch buffers (and so its chunks) stay as training left them
        let mut q = self.q.clone();
        let (x, lq) = py.detach(|| q.sample_with_log_q(n, &mut sample_stream(seed)));
        Ok((
            PyArray1::from_vec(py, x).reshape([n, d])?,
            PyArray1::from_vec(py, lq),
        ))
    }

    /// ln q(x) for the rows of `x` (n, d), shape (n,), through the inverse flow.
    fn log_prob<'py>(
        &self,
        py: Python<'py>,
        x: PyReadonlyArray2<'py, f64>,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        let d = self.q.dim();
        let (n, flat) = points(&x, d)?;
        let mut q = self.q.clone();
        let lp = py.detach(|| {
            let mut out = Vec::with_capacity(n);
            let (mut xs, mut z, mut lq) = (
                vec![0.0; FLOW_CHUNK * d],
                vec![0.0; FLOW_CHUNK * d],
                vec![0.0; FLOW_CHUNK],
            );
            for rows in flat.chunks(FLOW_CHUNK * d) {
                xs[..rows.len()].copy_from_slice(rows);
                xs[rows.len()..].iter_mut().for_each(|v| *v = 0.0);
                q.inverse(&xs, &mut z, &mut lq);
                out.extend_from_slice(&lq[..rows.len() / d]);
            }
            out
        });
        Ok(PyArray1::from_vec(py, lp))
    }
}

/// The final student of a statistics-engine run (frame coordinates, p ≤ d) written in R^d.
///
/// The frame's first directions are fixed by the target: μ̂ (the target's axis), then the
/// target means' residual directions, orthonormalised in that order (Gram–Schmidt, twice, with
/// the library's tolerance) exactly as the engine builds them. The remaining p − a directions
/// are the student's own; their law is rotation invariant in the complement of the target's
/// span, so any orthonormal completion gives a student with the run's statistics: this takes
/// the standard basis vectors e_1, e_2, … in order, orthogonalised against the frame, keeping
/// those with a residual norm > 0.1. For the paper's bimodal target along e_1 this is
/// μ_k = (c_k1, c_k2, …, c_kp, 0, …, 0): the frame coordinates padded with zeros.
pub(crate) fn embed_frame_student(q: &GmmStudent, target: &IsotropicMixture) -> GmmStudent {
    let d = target.dim();
    let p = q.dim();
    let mut basis: Vec<Vec<f64>> = vec![target.axis().to_vec()];
    for nu in target.means() {
        if basis.len() < p
            && let Some(b) = residual(&basis, nu, dot(nu, nu).sqrt(), 1e-12)
        {
            basis.push(b);
        }
    }
    let mut e = vec![0.0; d];
    for i in 0..d {
        if basis.len() >= p {
            break;
        }
        e.iter_mut().for_each(|v| *v = 0.0);
        e[i] = 1.0;
        if let Some(b) = residual(&basis, &e, 1.0, 0.1) {
            basis.push(b);
        }
    }
    let k = q.components();
    let means: Vec<Vec<f64>> = (0..k)
        .map(|l| {
            let c = q.mean(l);
            let mut m = vec![0.0; d];
            for (cj, b) in c.iter().zip(&basis) {
                m.iter_mut().zip(b).for_each(|(x, y)| *x += cj * y);
            }
            m
        })
        .collect();
    let sigma: Vec<f64> = (0..k).map(|l| q.sigma(l)).collect();
    let mut out = GmmStudent::new(&means, &sigma, &q.weights(), q.trainable_weights());
    // the logits as the run left them (weights() → ln would round)
    let (off, src) = (out.logit_offset(), q.logit_offset());
    out.params_mut()[off..off + k].copy_from_slice(&q.params()[src..src + k]);
    out
}

/// `v` orthogonalised against the orthonormal `basis` (twice) and normalised; None when its
/// residual is at most `tol` × `norm0`.
fn residual(basis: &[Vec<f64>], v: &[f64], norm0: f64, tol: f64) -> Option<Vec<f64>> {
    let mut r = v.to_vec();
    for _ in 0..2 {
        for b in basis {
            let t = dot(b, &r);
            r.iter_mut().zip(b).for_each(|(x, y)| *x -= t * y);
        }
    }
    let n = dot(&r, &r).sqrt();
    (norm0 > 0.0 && n > tol * norm0).then(|| {
        r.iter_mut().for_each(|x| *x /= n);
        r
    })
}

/// A run's final mixture as a Python object: d-dimensional (the vector engine and user
/// targets) as it is, frame coordinates (the statistics engine) embedded in R^d.
pub(crate) fn gmm_model(cfg: &Config, q: GmmStudent) -> GmmModel {
    match cfg.student.simulation {
        Simulation::Statistics => GmmModel::new(embed_frame_student(&q, &cfg.build_target())),
        Simulation::Vector => GmmModel::new(q),
    }
}
