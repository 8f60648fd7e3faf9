//! The frame's linear algebra: Gram–Schmidt residual directions, the Cholesky factor of the
//! orthogonal parts' Gram matrix (general K and unrolled K = 2), and the short dot products and
//! axpys of frame coordinates.

use crate::family::gmm::dot;

/// Relative size below which a Gram–Schmidt residual counts as zero (the direction is
/// already in the span).
pub(super) const GS_TOL: f64 = 1e-12;

/// Gram–Schmidt step: orthogonalises `v` against the orthonormal `basis` (twice, for
/// stability); returns the unit residual if it is not negligible against `norm0`.
pub(super) fn residual_direction(basis: &[Vec<f64>], v: &[f64], norm0: f64) -> Option<Vec<f64>> {
    let mut r = v.to_vec();
    let flat: Vec<f64> = basis.concat();
    residual_direction_flat(&flat, &mut r, norm0).then_some(r)
}

/// [`residual_direction`] in place: orthogonalises `r` against the orthonormal directions of `basis`
/// (flat, `r.len()` entries each; twice, for stability) and normalises it; returns false
/// (leaving `r` unnormalised) when the residual is negligible against `norm0`.
pub(super) fn residual_direction_flat(basis: &[f64], r: &mut [f64], norm0: f64) -> bool {
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
pub(super) fn cholesky(gram: &[f64], k: usize, chol: &mut [f64], active: &mut [bool]) -> usize {
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
pub(super) fn cholesky2(gram: &[f64], chol: &mut [f64], active: &mut [bool]) -> usize {
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

/// g += Σ_i c_il ξ_i: the frame part of the noise in ∇_{μ_l} (`cz` n × K, `xi` n × p;
/// `P` = p when known at compile time, 0: read it from `g`).
#[inline(always)]
pub(super) fn add_noise_part<const P: usize>(
    g: &mut [f64],
    cz: &[f64],
    xi: &[f64],
    k: usize,
    l: usize,
) {
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
pub(super) fn sdot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
