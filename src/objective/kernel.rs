//! The Monte-Carlo kernel's inner loops: the dot products of a noise vector z with the
//! vectors it is projected on (and with itself), and the accumulation of Σ_j c_j z_j into the
//! gradient's rows, each with an AVX-512, an AVX2 and a baseline path that give the same bits.

use crate::normal::Isa;

/// Partial sums per dot product (lane l takes the elements i ≡ l mod 16): enough independent
/// addition chains to hide the adder's latency with AVX-512 (two registers per product).
const DOT_LANES: usize = 16;

/// Sum of the 16 lanes in a fixed order.
#[inline(always)]
fn sum16(a: &[f64; DOT_LANES]) -> f64 {
    let t: [f64; 8] = std::array::from_fn(|l| a[l] + a[l + 8]);
    ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]))
}

/// (z·v_n for each n, z·z): 16 partial sums per product, each accumulated in element order,
/// added in a fixed order, then the tail. Every instruction-set path computes exactly these
/// operations (however it interleaves the products), so the results agree bit for bit.
#[inline(always)]
fn dots<const N: usize>(isa: Isa, z: &[f64], vs: [&[f64]; N]) -> ([f64; N], f64) {
    let n = z.len();
    let vs: [&[f64]; N] = vs.map(|v| &v[..n]);
    let full = n / DOT_LANES * DOT_LANES;
    let mut acc = [[0.0f64; DOT_LANES]; N];
    let mut accz = [0.0f64; DOT_LANES];
    #[cfg(target_arch = "x86_64")]
    {
        if isa == Isa::Avx512 {
            // SAFETY: `Isa::Avx512` is only ever selected on CPUs with AVX-512 F (see
            // `NormalGen`); all loads are within `full` ≤ the slices' length.
            unsafe {
                use std::arch::x86_64::*;
                let mut va = [[_mm512_setzero_pd(); 2]; N];
                let mut vz = [_mm512_setzero_pd(); 2];
                let zp = z.as_ptr();
                for i in (0..full).step_by(DOT_LANES) {
                    let z0 = _mm512_loadu_pd(zp.add(i));
                    let z1 = _mm512_loadu_pd(zp.add(i + 8));
                    for (a, v) in va.iter_mut().zip(&vs) {
                        let vp = v.as_ptr();
                        a[0] = _mm512_add_pd(a[0], _mm512_mul_pd(z0, _mm512_loadu_pd(vp.add(i))));
                        a[1] =
                            _mm512_add_pd(a[1], _mm512_mul_pd(z1, _mm512_loadu_pd(vp.add(i + 8))));
                    }
                    vz[0] = _mm512_add_pd(vz[0], _mm512_mul_pd(z0, z0));
                    vz[1] = _mm512_add_pd(vz[1], _mm512_mul_pd(z1, z1));
                }
                for (a, v) in acc.iter_mut().zip(&va) {
                    _mm512_storeu_pd(a.as_mut_ptr(), v[0]);
                    _mm512_storeu_pd(a.as_mut_ptr().add(8), v[1]);
                }
                _mm512_storeu_pd(accz.as_mut_ptr(), vz[0]);
                _mm512_storeu_pd(accz.as_mut_ptr().add(8), vz[1]);
            }
        } else if isa == Isa::Avx2 {
            // SAFETY: as above, for AVX2.
            unsafe {
                use std::arch::x86_64::*;
                let mut va = [[_mm256_setzero_pd(); 4]; N];
                let mut vz = [_mm256_setzero_pd(); 4];
                let zp = z.as_ptr();
                for i in (0..full).step_by(DOT_LANES) {
                    let zc: [__m256d; 4] =
                        std::array::from_fn(|q| _mm256_loadu_pd(zp.add(i + 4 * q)));
                    for (a, v) in va.iter_mut().zip(&vs) {
                        let vp = v.as_ptr();
                        for q in 0..4 {
                            let vv = _mm256_loadu_pd(vp.add(i + 4 * q));
                            a[q] = _mm256_add_pd(a[q], _mm256_mul_pd(zc[q], vv));
                        }
                    }
                    for q in 0..4 {
                        vz[q] = _mm256_add_pd(vz[q], _mm256_mul_pd(zc[q], zc[q]));
                    }
                }
                for (a, v) in acc.iter_mut().zip(&va) {
                    for q in 0..4 {
                        _mm256_storeu_pd(a.as_mut_ptr().add(4 * q), v[q]);
                    }
                }
                for q in 0..4 {
                    _mm256_storeu_pd(accz.as_mut_ptr().add(4 * q), vz[q]);
                }
            }
        }
    }
    if isa == Isa::Baseline || cfg!(not(target_arch = "x86_64")) {
        // One product at a time (16 partial sums fit the baseline's registers).
        for (a, v) in acc.iter_mut().zip(&vs) {
            for i in (0..full).step_by(DOT_LANES) {
                let zc: &[f64; DOT_LANES] = z[i..i + DOT_LANES].try_into().unwrap();
                let vc: &[f64; DOT_LANES] = v[i..i + DOT_LANES].try_into().unwrap();
                for l in 0..DOT_LANES {
                    a[l] += zc[l] * vc[l];
                }
            }
        }
        for i in (0..full).step_by(DOT_LANES) {
            let zc: &[f64; DOT_LANES] = z[i..i + DOT_LANES].try_into().unwrap();
            for l in 0..DOT_LANES {
                accz[l] += zc[l] * zc[l];
            }
        }
    }
    let mut out = [0.0; N];
    for (o, (a, v)) in out.iter_mut().zip(acc.iter().zip(&vs)) {
        let mut s = sum16(a);
        for i in full..n {
            s += z[i] * v[i];
        }
        *o = s;
    }
    let mut zz = sum16(&accz);
    for i in full..n {
        zz += z[i] * z[i];
    }
    (out, zz)
}

/// out[n] = z·vecs[n] (up to three products per pass over z); returns z·z.
#[inline(always)]
pub(super) fn multi_dot(isa: Isa, z: &[f64], vecs: &[&[f64]], out: &mut [f64]) -> f64 {
    let mut zz = None;
    let mut i = 0;
    while i < vecs.len() {
        let (len, zi) = match vecs.len() - i {
            1 => {
                let (o, zi) = dots(isa, z, [vecs[i]]);
                out[i] = o[0];
                (1, zi)
            }
            2 => {
                let (o, zi) = dots(isa, z, [vecs[i], vecs[i + 1]]);
                out[i..i + 2].copy_from_slice(&o);
                (2, zi)
            }
            _ => {
                let (o, zi) = dots(isa, z, [vecs[i], vecs[i + 1], vecs[i + 2]]);
                out[i..i + 3].copy_from_slice(&o);
                (3, zi)
            }
        };
        zz.get_or_insert(zi);
        i += len;
    }
    zz.unwrap_or_else(|| dots(isa, z, []).1)
}

/// Samples per block of the kernel's accumulation pass.
pub(super) const BLOCK: usize = 4;

/// acc_l += Σ_j c[j][l] z_j for NB samples z_j (rows of `z`, length d) and their coefficient
/// rows c[j] (length K): one pass over each accumulator row for NB samples, the products added
/// in sample order. Elementwise, so every instruction set gives the same bits.
#[inline(always)]
pub(super) fn accumulate<const NB: usize>(
    isa: Isa,
    acc: &mut [f64],
    d: usize,
    c: &[f64],
    z: &[f64],
) {
    let kc = acc.len() / d;
    let zs: [&[f64]; NB] = std::array::from_fn(|j| &z[j * d..(j + 1) * d]);
    for (l, row) in acc.chunks_exact_mut(d).enumerate() {
        let cl: [f64; NB] = std::array::from_fn(|j| c[j * kc + l]);
        if cl.iter().all(|&v| v == 0.0) {
            continue;
        }
        let full = d / 8 * 8;
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: the instruction set is one the CPU supports (see `NormalGen`); all
            // accesses are below `full` ≤ d, the length of `row` and of every `zs[j]`.
            unsafe {
                use std::arch::x86_64::*;
                if isa == Isa::Avx512 {
                    let cv: [__m512d; NB] = cl.map(|v| _mm512_set1_pd(v));
                    for i in (0..full).step_by(8) {
                        let p = row.as_mut_ptr().add(i);
                        let mut x = _mm512_loadu_pd(p);
                        for j in 0..NB {
                            let zv = _mm512_loadu_pd(zs[j].as_ptr().add(i));
                            x = _mm512_add_pd(x, _mm512_mul_pd(cv[j], zv));
                        }
                        _mm512_storeu_pd(p, x);
                    }
                } else if isa == Isa::Avx2 {
                    let cv: [__m256d; NB] = cl.map(|v| _mm256_set1_pd(v));
                    for i in (0..full).step_by(4) {
                        let p = row.as_mut_ptr().add(i);
                        let mut x = _mm256_loadu_pd(p);
                        for j in 0..NB {
                            let zv = _mm256_loadu_pd(zs[j].as_ptr().add(i));
                            x = _mm256_add_pd(x, _mm256_mul_pd(cv[j], zv));
                        }
                        _mm256_storeu_pd(p, x);
                    }
                } else {
                    let cv: [__m128d; NB] = cl.map(|v| _mm_set1_pd(v));
                    for i in (0..full).step_by(2) {
                        let p = row.as_mut_ptr().add(i);
                        let mut x = _mm_loadu_pd(p);
                        for j in 0..NB {
                            let zv = _mm_loadu_pd(zs[j].as_ptr().add(i));
                            x = _mm_add_pd(x, _mm_mul_pd(cv[j], zv));
                        }
                        _mm_storeu_pd(p, x);
                    }
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let full = {
            let _ = isa;
            0
        };
        for i in full..d {
            let mut x = row[i];
            for j in 0..NB {
                x += cl[j] * zs[j][i];
            }
            row[i] = x;
        }
    }
}
