//! The scalar type of the batched passes (f32 or f64) and the GEMMs they run on: [`Scalar`]
//! and bounds-checked wrappers around the `matrixmultiply` kernels.

use std::fmt::Debug;
use std::ops::{Add, AddAssign, Div, Mul, Neg, Sub};

/// Floating-point scalar of the batched passes (f32 or f64).
pub trait Scalar:
    Copy
    + Default
    + Send
    + Sync
    + Debug
    + PartialOrd
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
{
    /// 0.
    const ZERO: Self;
    /// 1.
    const ONE: Self;
    /// Conversion from f64 (rounding).
    fn from_f64(v: f64) -> Self;
    /// Conversion to f64 (exact).
    fn to_f64(self) -> f64;
    /// eˣ.
    fn exp(self) -> Self;
    /// tanh x.
    fn tanh(self) -> Self;
    /// max(x, 0) (branch-free).
    fn relu(self) -> Self;
    /// x if h > 0 else 0 (branch-free; the ReLU derivative mask).
    fn mask_positive(self, h: Self) -> Self;
    /// C ← α A B + β C for row/column strides (see `matrixmultiply::sgemm`).
    ///
    /// # Safety
    /// The strided extents must lie inside the buffers.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

macro_rules! impl_scalar {
    ($t:ty, $gemm:path) => {
        impl Scalar for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn tanh(self) -> Self {
                <$t>::tanh(self)
            }
            #[inline]
            fn relu(self) -> Self {
                self.max(0.0)
            }
            #[inline]
            fn mask_positive(self, h: Self) -> Self {
                if h > 0.0 { self } else { 0.0 }
            }
            unsafe fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                // SAFETY: forwarded; the caller checked the extents
                unsafe { $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
            }
        }
    };
}
impl_scalar!(f32, matrixmultiply::sgemm);
impl_scalar!(f64, matrixmultiply::dgemm);

/// How an operand of [`gemm`] is laid out.
#[derive(Clone, Copy)]
pub(super) enum Op {
    /// Row-major as stored (rows × cols, row stride = cols).
    N,
    /// The transpose of a row-major matrix stored as cols × rows.
    T,
}

/// C (m × n, row-major) ← α op(A) op(B) + β C, with op(A) m × k and op(B) k × n; checks the
/// extents (so the call is safe) and forwards to the GEMM kernel.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &[T],
    opa: Op,
    b: &[T],
    opb: Op,
    beta: T,
    c: &mut [T],
) {
    if m == 0 || n == 0 {
        return;
    }
    let (rsa, csa) = match opa {
        Op::N => (k, 1),
        Op::T => (1, m),
    };
    let (rsb, csb) = match opb {
        Op::N => (n, 1),
        Op::T => (1, k),
    };
    assert!(k == 0 || (m - 1) * rsa + (k - 1) * csa < a.len());
    assert!(k == 0 || (k - 1) * rsb + (n - 1) * csb < b.len());
    assert!(m * n <= c.len());
    // SAFETY: the asserts above bound every index the kernel touches
    unsafe {
        T::gemm_raw(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        )
    }
}

/// C ← α A B + β C for arbitrary row and column strides (elements): A is m × k with element
/// (r, c) at `a[r·rsa + c·csa]`, B k × n, C m × n likewise. Checks that every element the
/// kernel touches lies inside its slice (so the call is safe) and forwards to the GEMM kernel.
/// Panics on an extent outside a slice (a caller's bug). Used by the GPU engine's emulator.
#[cfg(feature = "gpu")]
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_strided<T: Scalar>(
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: &[T],
    (rsa, csa): (usize, usize),
    b: &[T],
    (rsb, csb): (usize, usize),
    beta: T,
    c: &mut [T],
    (rsc, csc): (usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    // one past the last element an operand of r × cc touches
    let ext = |rs: usize, cs: usize, r: usize, cc: usize| (r - 1) * rs + (cc - 1) * cs + 1;
    assert!(
        k == 0 || ext(rsa, csa, m, k) <= a.len(),
        "gemm: A outside its slice"
    );
    assert!(
        k == 0 || ext(rsb, csb, k, n) <= b.len(),
        "gemm: B outside its slice"
    );
    assert!(ext(rsc, csc, m, n) <= c.len(), "gemm: C outside its slice");
    // SAFETY: the asserts above bound every index the kernel touches
    unsafe {
        T::gemm_raw(
            m,
            k,
            n,
            alpha,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            beta,
            c.as_mut_ptr(),
            rsc as isize,
            csc as isize,
        )
    }
}
