//! The CPU emulator of the device: [`EmuBackend`], GEMMs by `matrixmultiply` and every
//! kernel of `realnvp_gpu.cu` transcribed line by line.

use super::device::{Arg, Backend, GemmCall, Kernel, at};
use super::{GpuResult, MAX_COMPONENTS};

/// The [`Backend`] on the CPU: host buffers whose addresses serve as device pointers, GEMMs by
/// `matrixmultiply`, kernels transcribed from `realnvp_gpu.cu` (one loop over the threads).
#[derive(Default)]
pub struct EmuBackend {
    bufs: Vec<Vec<f32>>,
}

impl EmuBackend {
    /// The buffer holding [p, p + 4n) (panics on a pointer outside every buffer: a driver bug).
    fn check(&self, p: u64, n: usize) {
        let ok = self.bufs.iter().any(|b| {
            let lo = b.as_ptr() as u64;
            p >= lo && p + 4 * n as u64 <= lo + 4 * b.len() as u64
        });
        assert!(ok, "emulator: access [{p:#x}, +{n}) outside every buffer");
    }
}

/// Reads kernel arguments in order.
struct Args<'a>(&'a [Arg], usize);
impl Args<'_> {
    fn next(&mut self) -> Arg {
        self.1 += 1;
        self.0[self.1 - 1]
    }
    fn p(&mut self) -> *mut f32 {
        match self.next() {
            Arg::P(p) => p as *mut f32,
            a => panic!("emulator: expected a pointer, got {a:?}"),
        }
    }
    fn pi(&mut self) -> *const i32 {
        self.p() as *const i32
    }
    fn i(&mut self) -> i32 {
        match self.next() {
            Arg::I(v) => v,
            a => panic!("emulator: expected an int, got {a:?}"),
        }
    }
    fn f(&mut self) -> f32 {
        match self.next() {
            Arg::F(v) => v,
            a => panic!("emulator: expected a float, got {a:?}"),
        }
    }
    fn u(&mut self) -> u32 {
        match self.next() {
            Arg::U(v) => v,
            a => panic!("emulator: expected an unsigned, got {a:?}"),
        }
    }
}

fn mix32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846ca68b);
    x ^= x >> 16;
    x
}

impl Backend for EmuBackend {
    fn name(&self) -> String {
        "CPU emulator".into()
    }

    fn alloc(&mut self, n: usize) -> GpuResult<u64> {
        let b = vec![0.0f32; n.max(1)];
        let p = b.as_ptr() as u64;
        self.bufs.push(b);
        Ok(p)
    }

    fn upload(&mut self, dst: u64, src: &[f32]) -> GpuResult<()> {
        self.check(dst, src.len());
        // SAFETY: checked to lie inside a live buffer
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut f32, src.len()) };
        Ok(())
    }

    fn upload_i32(&mut self, dst: u64, src: &[i32]) -> GpuResult<()> {
        self.check(dst, src.len());
        // SAFETY: as above (i32 and f32 have the same size and alignment)
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst as *mut i32, src.len()) };
        Ok(())
    }

    fn download(&mut self, src: u64, dst: &mut [f32]) -> GpuResult<()> {
        self.check(src, dst.len());
        // SAFETY: as above
        unsafe { std::ptr::copy_nonoverlapping(src as *const f32, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    fn gemm(&mut self, g: &GemmCall) -> GpuResult<()> {
        // column-major: element (r, c) of a stored matrix at r + c·ld
        let (rsa, csa) = if g.trans_a { (g.lda, 1) } else { (1, g.lda) };
        let (rsb, csb) = if g.trans_b { (g.ldb, 1) } else { (1, g.ldb) };
        for q in 0..g.batch {
            let (a, b, c) = (
                at(g.a, q * g.stride_a),
                at(g.b, q * g.stride_b),
                at(g.c, q * g.stride_c),
            );
            // extents: the last element each operand touches
            let ext = |rs: usize, cs: usize, r: usize, cc: usize| (r - 1) * rs + (cc - 1) * cs + 1;
            self.check(a, ext(rsa, csa, g.m, g.k));
            self.check(b, ext(rsb, csb, g.k, g.n));
            self.check(c, ext(1, g.ldc, g.m, g.n));
            // SAFETY: extents checked above
            unsafe {
                matrixmultiply::sgemm(
                    g.m,
                    g.k,
                    g.n,
                    1.0,
                    a as *const f32,
                    rsa as isize,
                    csa as isize,
                    b as *const f32,
                    rsb as isize,
                    csb as isize,
                    0.0,
                    c as *mut f32,
                    1,
                    g.ldc as isize,
                )
            };
        }
        Ok(())
    }

    #[allow(clippy::too_many_lines)]
    fn launch(&mut self, k: Kernel, threads: usize, args: &[Arg]) -> GpuResult<()> {
        let mut a = Args(args, 0);
        // SAFETY (whole body): raw accesses at the indices the CUDA kernels use; the host driver
        // sizes the buffers, and an out-of-range access here is a driver bug the tests catch
        // through wrong numbers (the CUDA kernels would fault or corrupt memory the same way)
        unsafe {
            match k {
                Kernel::SplitFwd => {
                    let (x, y, xa, ia) = (a.p(), a.p(), a.p(), a.pi());
                    let (rows, d, na) = (a.i() as usize, a.i() as usize, a.i() as usize);
                    for t in 0..threads.min(rows * d) {
                        let (r, i) = (t / d, t % d);
                        *y.add(t) = *x.add(t);
                        if i < na {
                            let v = *x.add(r * d + *ia.add(i) as usize);
                            *xa.add(r * na + i) = v;
                            *xa.add((rows + r) * na + i) = v;
                        }
                    }
                }
                Kernel::BiasAct => {
                    let (y, bias) = (a.p(), a.p());
                    let (n, rpq, qs, total, act) = (
                        a.i() as usize,
                        a.i() as usize,
                        a.i() as usize,
                        a.i() as usize,
                        a.i(),
                    );
                    for i in 0..threads.min(total) {
                        let o = i % n;
                        let q = i / (n * rpq);
                        let mut v = *y.add(i) + *bias.add(q * qs + o);
                        if act == 1 {
                            v = if v > 0.0 { v } else { 0.0 };
                        } else if act == 2 {
                            v = v.tanh();
                        }
                        *y.add(i) = v;
                    }
                }
                Kernel::CoupleFwd => {
                    let (x, y, st, es, so, to) = (a.p(), a.p(), a.p(), a.p(), a.p(), a.p());
                    let (ib, logdet) = (a.pi(), a.p());
                    let (rows, d, nb, c) = (a.i() as usize, a.i() as usize, a.i() as usize, a.f());
                    for r in 0..threads.min(rows) {
                        let mut sum = 0.0f32;
                        for kk in 0..nb {
                            let j = r * nb + kk;
                            let xi = r * d + *ib.add(kk) as usize;
                            let u = (*so.add(j)).tanh();
                            let s = c * u;
                            let e = s.exp();
                            *st.add(j) = u;
                            *es.add(j) = e;
                            *y.add(xi) = *x.add(xi) * e + *to.add(j);
                            sum += s;
                        }
                        *logdet.add(r) += sum;
                    }
                }
                Kernel::TargetGrad => {
                    let (x, x0, logdet, means, cst, inv_var, gx, loss) =
                        (a.p(), a.p(), a.p(), a.p(), a.p(), a.p(), a.p(), a.p());
                    let (rows, d, nj) = (a.i() as usize, a.i() as usize, a.i() as usize);
                    let (beta, scale, inv_var0, base, stl) = (a.f(), a.f(), a.f(), a.f(), a.i());
                    for r in 0..threads.min(rows) {
                        let mut comp = [0.0f32; MAX_COMPONENTS];
                        let mut mx = -3.0e38f32;
                        for j in 0..nj {
                            let mut s = 0.0f32;
                            for i in 0..d {
                                let t = *x.add(r * d + i) - *means.add(j * d + i);
                                s += t * t;
                            }
                            comp[j] = *cst.add(j) - 0.5 * s * *inv_var.add(j);
                            mx = if comp[j] > mx { comp[j] } else { mx };
                        }
                        let mut tot = 0.0f32;
                        for j in 0..nj {
                            comp[j] = (comp[j] - mx).exp();
                            tot += comp[j];
                        }
                        let lse = mx + tot.ln();
                        for j in 0..nj {
                            comp[j] = comp[j] / tot * *inv_var.add(j);
                        }
                        let mut z2 = 0.0f32;
                        for i in 0..d {
                            let xi = *x.add(r * d + i);
                            let mut g = 0.0f32;
                            for j in 0..nj {
                                g += comp[j] * (*means.add(j * d + i) - xi);
                            }
                            let prev = if stl != 0 { *gx.add(r * d + i) } else { 0.0 };
                            *gx.add(r * d + i) = (prev - beta * g) * scale;
                            let z = *x0.add(r * d + i);
                            z2 += z * z;
                        }
                        *loss.add(r) = base - 0.5 * z2 * inv_var0 - *logdet.add(r) - beta * lse;
                    }
                }
                Kernel::RowSum => {
                    let (v, out) = (a.p(), a.p());
                    let (groups, n, scale) = (a.i() as usize, a.i() as usize, a.f());
                    for g in 0..threads.min(groups) {
                        let mut s = 0.0f64;
                        for b in 0..n {
                            s += *v.add(g * n + b) as f64;
                        }
                        *out.add(g) = (s * scale as f64) as f32;
                    }
                }
                Kernel::CoupleBwd => {
                    let (g, x, st, es, ib, ds_out, dt_out) =
                        (a.p(), a.p(), a.p(), a.p(), a.pi(), a.p(), a.p());
                    let (rows, d, nb) = (a.i() as usize, a.i() as usize, a.i() as usize);
                    let (c, ld_coef) = (a.f(), a.f());
                    for j in 0..threads.min(rows * nb) {
                        let (r, kk) = (j / nb, j % nb);
                        let xi = r * d + *ib.add(kk) as usize;
                        let gb = *g.add(xi);
                        let e = *es.add(j);
                        let u = *st.add(j);
                        *dt_out.add(j) = gb;
                        let ds = gb * *x.add(xi) * e + ld_coef;
                        *ds_out.add(j) = ds * c * (1.0 - u * u);
                        *g.add(xi) = gb * e;
                    }
                }
                Kernel::CoupleInvBwd => {
                    let (u, x, st, es, ib, ds_out, dt_out) =
                        (a.p(), a.p(), a.p(), a.p(), a.pi(), a.p(), a.p());
                    let (rows, d, nb, c) = (a.i() as usize, a.i() as usize, a.i() as usize, a.f());
                    for j in 0..threads.min(rows * nb) {
                        let (r, kk) = (j / nb, j % nb);
                        let xi = r * d + *ib.add(kk) as usize;
                        let ub = *u.add(xi);
                        let e = *es.add(j);
                        let w = *st.add(j);
                        let ue = ub / e;
                        *dt_out.add(j) = -ue;
                        let ds = -ub * *x.add(xi) - 1.0;
                        *ds_out.add(j) = ds * c * (1.0 - w * w);
                        *u.add(xi) = ue;
                    }
                }
                Kernel::BiasGrad => {
                    let (cur, grad) = (a.p(), a.p());
                    let (n, rpq, qs, nq) = (
                        a.i() as usize,
                        a.i() as usize,
                        a.i() as usize,
                        a.i() as usize,
                    );
                    for t in 0..threads.min(nq * n) {
                        let (q, o) = (t / n, t % n);
                        let mut s = 0.0f32;
                        for b in 0..rpq {
                            s += *cur.add((q * rpq + b) * n + o);
                        }
                        *grad.add(q * qs + o) = s;
                    }
                }
                Kernel::ActBwd => {
                    let (dx, h) = (a.p(), a.p());
                    let (total, act) = (a.i() as usize, a.i());
                    for i in 0..threads.min(total) {
                        if act == 1 {
                            if *h.add(i) <= 0.0 {
                                *dx.add(i) = 0.0;
                            }
                        } else if act == 2 {
                            *dx.add(i) *= 1.0 - *h.add(i) * *h.add(i);
                        }
                    }
                }
                Kernel::ScatterAdd => {
                    let (g, dxa, ia) = (a.p(), a.p(), a.pi());
                    let (rows, d, na) = (a.i() as usize, a.i() as usize, a.i() as usize);
                    for j in 0..threads.min(rows * na) {
                        let (r, kk) = (j / na, j % na);
                        *g.add(r * d + *ia.add(kk) as usize) +=
                            *dxa.add(j) + *dxa.add(rows * na + j);
                    }
                }
                Kernel::ScaleCopy => {
                    let (y, x) = (a.p(), a.p());
                    let (n, s) = (a.i() as usize, a.f());
                    for i in 0..threads.min(n) {
                        *y.add(i) = s * *x.add(i);
                    }
                }
                Kernel::Fill => {
                    let y = a.p();
                    let (n, v) = (a.i() as usize, a.f());
                    for i in 0..threads.min(n) {
                        *y.add(i) = v;
                    }
                }
                Kernel::Adam => {
                    let (th, g, m, v) = (a.p(), a.p(), a.p(), a.p());
                    let n = a.i() as usize;
                    let (lr, b1, b2, eps, bc1, bc2) = (a.f(), a.f(), a.f(), a.f(), a.f(), a.f());
                    for i in 0..threads.min(n) {
                        let gi = *g.add(i);
                        let mi = b1 * *m.add(i) + (1.0 - b1) * gi;
                        let vi = b2 * *v.add(i) + (1.0 - b2) * gi * gi;
                        *m.add(i) = mi;
                        *v.add(i) = vi;
                        *th.add(i) -= lr * (mi / bc1) / ((vi / bc2).sqrt() + eps);
                    }
                }
                Kernel::NormalNoise => {
                    let z = a.p();
                    let n = a.i() as usize;
                    let (seed, step, sigma) = (a.u(), a.u(), a.f());
                    for i in 0..threads.min(n) {
                        let key = mix32(seed ^ mix32(step.wrapping_add(0x9e3779b9)));
                        let ha = mix32(key ^ mix32(2u32.wrapping_mul(i as u32)));
                        let hb = mix32(key ^ mix32(2u32.wrapping_mul(i as u32).wrapping_add(1)));
                        let u1 = ((ha >> 8) as f32 + 1.0) * (1.0 / 16777216.0);
                        let u2 = (hb >> 8) as f32 * (1.0 / 16777216.0);
                        *z.add(i) =
                            sigma * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
                    }
                }
            }
        }
        assert_eq!(
            a.1,
            args.len(),
            "emulator: {} got extra arguments",
            k.name()
        );
        Ok(())
    }

    fn sync(&mut self) -> GpuResult<()> {
        Ok(())
    }
}
