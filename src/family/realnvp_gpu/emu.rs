//! The CPU emulator of the device: [`EmuBackend`], GEMMs by `matrixmultiply` and every
//! kernel of `realnvp_gpu.cu` transcribed line by line.
//!
//! # Memory
//! No host address serves as a device pointer and no code here is `unsafe`. A device pointer
//! of the emulator is a handle: buffer b, element e is the address (b + 1)·2³² + 4e, so the host
//! driver's pointer arithmetic (`at`) moves along a buffer as it does on the device. Every
//! access goes through [`Memory`]: copies and GEMM operands resolve a handle to a checked
//! [`Region`] (an unknown buffer or an extent past its end is [`GpuError::Invalid`]); kernels
//! read and write elements through [`Ptr`] / [`IdxPtr`] handles, each access bounds-checked
//! (one past the end is a panic naming the kernel argument: a sizing bug of the host driver,
//! which on the device would fault or corrupt memory). Index buffers (i32) are stored as the
//! bit patterns of f32 elements, as on the device.

use super::device::{Arg, Backend, GemmCall, Kernel, at};
use super::{GpuError, GpuResult, MAX_COMPONENTS};
use crate::family::realnvp::gemm_strided;

/// Bits of an address that hold the element's byte offset in its buffer.
const OFFSET_BITS: u32 = 32;

/// Most elements of one emulator buffer (byte offsets fit in [`OFFSET_BITS`]).
const MAX_ELEMENTS: usize = 1 << (OFFSET_BITS - 2);

/// The device address of element `off` of buffer `buf`.
fn address(buf: usize, off: usize) -> u64 {
    ((buf as u64 + 1) << OFFSET_BITS) + 4 * off as u64
}

/// A kernel's f32 argument: element `off` of buffer `buf` (decoded from an address; checked on
/// every access).
#[derive(Clone, Copy, Debug)]
struct Ptr {
    buf: usize,
    off: usize,
}

impl Ptr {
    /// Decodes a device address of the emulator (`None`: not one of its addresses).
    fn decode(p: u64) -> Option<Ptr> {
        let buf = (p >> OFFSET_BITS).checked_sub(1)?;
        let byte = p & ((1u64 << OFFSET_BITS) - 1);
        byte.is_multiple_of(4).then_some(Ptr {
            buf: usize::try_from(buf).ok()?,
            off: (byte / 4) as usize,
        })
    }
}

/// A kernel's i32 argument (an index set), read with [`Memory::idx`].
#[derive(Clone, Copy, Debug)]
struct IdxPtr(Ptr);

/// A checked range of one buffer: elements [off, off + len) of buffer `buf`.
#[derive(Clone, Copy, Debug)]
struct Region {
    buf: usize,
    off: usize,
    len: usize,
}

impl Region {
    fn range(self) -> std::ops::Range<usize> {
        self.off..self.off + self.len
    }
}

/// The emulator's device memory: every buffer allocated so far (they live as long as the
/// backend).
#[derive(Default)]
struct Memory {
    bufs: Vec<Vec<f32>>,
}

impl Memory {
    /// n zeroed elements (at least one); their address.
    fn alloc(&mut self, n: usize) -> GpuResult<u64> {
        if n > MAX_ELEMENTS {
            return Err(GpuError::Invalid(format!(
                "emulator: a buffer of {n} elements (at most {MAX_ELEMENTS})"
            )));
        }
        self.bufs.push(vec![0.0f32; n.max(1)]);
        Ok(address(self.bufs.len() - 1, 0))
    }

    /// The region [p, p + n) (elements), checked to lie inside one buffer.
    fn region(&self, p: u64, n: usize) -> GpuResult<Region> {
        let bad = || {
            GpuError::Invalid(format!(
                "emulator: access [{p:#x}, +{n}) outside every buffer"
            ))
        };
        let ptr = Ptr::decode(p).ok_or_else(bad)?;
        let len = self.bufs.get(ptr.buf).ok_or_else(bad)?.len();
        if ptr.off.checked_add(n).is_none_or(|end| end > len) {
            return Err(bad());
        }
        Ok(Region {
            buf: ptr.buf,
            off: ptr.off,
            len: n,
        })
    }

    fn slice(&self, r: Region) -> &[f32] {
        &self.bufs[r.buf][r.range()]
    }

    fn slice_mut(&mut self, r: Region) -> &mut [f32] {
        &mut self.bufs[r.buf][r.range()]
    }

    /// Element i past `p`.
    #[inline]
    fn get(&self, p: Ptr, i: usize) -> f32 {
        match self.bufs.get(p.buf).and_then(|b| b.get(p.off + i)) {
            Some(v) => *v,
            None => self.out_of_range(p, i),
        }
    }

    /// Sets element i past `p` to v.
    #[inline]
    fn set(&mut self, p: Ptr, i: usize, v: f32) {
        match self.bufs.get_mut(p.buf).and_then(|b| b.get_mut(p.off + i)) {
            Some(e) => *e = v,
            None => self.out_of_range(p, i),
        }
    }

    /// Index i of the index set at `p` (an i32, converted as the CUDA C does).
    #[inline]
    fn idx(&self, p: IdxPtr, i: usize) -> usize {
        self.get(p.0, i).to_bits() as i32 as usize
    }

    #[cold]
    fn out_of_range(&self, p: Ptr, i: usize) -> ! {
        let len = self.bufs.get(p.buf).map(Vec::len);
        panic!(
            "emulator: a kernel accessed element {i} past element {} of buffer {} \
             (length {len:?}): the host driver sized a buffer or a launch wrong",
            p.off, p.buf
        )
    }
}

/// The [`Backend`] on the CPU: buffers in [`Memory`] addressed by handles, GEMMs by
/// `matrixmultiply`, kernels transcribed from `realnvp_gpu.cu` (one loop over the threads).
#[derive(Default)]
pub struct EmuBackend {
    mem: Memory,
}

/// Reads kernel arguments in order (a wrong kind or count is a host-driver bug: panics).
struct Args<'a>(&'a [Arg], usize);
impl Args<'_> {
    fn next(&mut self) -> Arg {
        self.1 += 1;
        self.0[self.1 - 1]
    }
    fn p(&mut self) -> Ptr {
        match self.next() {
            Arg::P(p) => Ptr::decode(p)
                .unwrap_or_else(|| panic!("emulator: {p:#x} is not an emulator address")),
            a => panic!("emulator: expected a pointer, got {a:?}"),
        }
    }
    fn pi(&mut self) -> IdxPtr {
        IdxPtr(self.p())
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
        self.mem.alloc(n)
    }

    fn upload(&mut self, dst: u64, src: &[f32]) -> GpuResult<()> {
        let r = self.mem.region(dst, src.len())?;
        self.mem.slice_mut(r).copy_from_slice(src);
        Ok(())
    }

    fn upload_i32(&mut self, dst: u64, src: &[i32]) -> GpuResult<()> {
        let r = self.mem.region(dst, src.len())?;
        for (d, s) in self.mem.slice_mut(r).iter_mut().zip(src) {
            *d = f32::from_bits(*s as u32);
        }
        Ok(())
    }

    fn download(&mut self, src: u64, dst: &mut [f32]) -> GpuResult<()> {
        let r = self.mem.region(src, dst.len())?;
        dst.copy_from_slice(self.mem.slice(r));
        Ok(())
    }

    fn gemm(&mut self, g: &GemmCall) -> GpuResult<()> {
        // column-major: element (r, c) of a stored matrix at r + c·ld
        let (rsa, csa) = if g.trans_a { (g.lda, 1) } else { (1, g.lda) };
        let (rsb, csb) = if g.trans_b { (g.ldb, 1) } else { (1, g.ldb) };
        // extents: one past the last element each operand touches
        let ext = |rs: usize, cs: usize, r: usize, cc: usize| (r - 1) * rs + (cc - 1) * cs + 1;
        for q in 0..g.batch {
            let a = self
                .mem
                .region(at(g.a, q * g.stride_a), ext(rsa, csa, g.m, g.k))?;
            let b = self
                .mem
                .region(at(g.b, q * g.stride_b), ext(rsb, csb, g.k, g.n))?;
            let c = self
                .mem
                .region(at(g.c, q * g.stride_c), ext(1, g.ldc, g.m, g.n))?;
            // C is taken out of memory while A and B are read; an operand in C's buffer is
            // copied first (disjoint regions: the same numbers)
            let mut cbuf = std::mem::take(&mut self.mem.bufs[c.buf]);
            let copy = |r: Region, cbuf: &[f32]| (r.buf == c.buf).then(|| cbuf[r.range()].to_vec());
            let (a_own, b_own) = (copy(a, &cbuf), copy(b, &cbuf));
            let av = a_own.as_deref().unwrap_or_else(|| self.mem.slice(a));
            let bv = b_own.as_deref().unwrap_or_else(|| self.mem.slice(b));
            gemm_strided(
                g.m,
                g.k,
                g.n,
                1.0f32,
                av,
                (rsa, csa),
                bv,
                (rsb, csb),
                0.0,
                &mut cbuf[c.range()],
                (1, g.ldc),
            );
            self.mem.bufs[c.buf] = cbuf;
        }
        Ok(())
    }

    #[allow(clippy::too_many_lines)]
    fn launch(&mut self, k: Kernel, threads: usize, args: &[Arg]) -> GpuResult<()> {
        let mut a = Args(args, 0);
        let mem = &mut self.mem;
        match k {
            Kernel::SplitFwd => {
                let (x, y, xa, ia) = (a.p(), a.p(), a.p(), a.pi());
                let (rows, d, na) = (a.i() as usize, a.i() as usize, a.i() as usize);
                for t in 0..threads.min(rows * d) {
                    let (r, i) = (t / d, t % d);
                    mem.set(y, t, mem.get(x, t));
                    if i < na {
                        let v = mem.get(x, r * d + mem.idx(ia, i));
                        mem.set(xa, r * na + i, v);
                        mem.set(xa, (rows + r) * na + i, v);
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
                    let mut v = mem.get(y, i) + mem.get(bias, q * qs + o);
                    if act == 1 {
                        v = if v > 0.0 { v } else { 0.0 };
                    } else if act == 2 {
                        v = v.tanh();
                    }
                    mem.set(y, i, v);
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
                        let xi = r * d + mem.idx(ib, kk);
                        let u = (mem.get(so, j)).tanh();
                        let s = c * u;
                        let e = s.exp();
                        mem.set(st, j, u);
                        mem.set(es, j, e);
                        mem.set(y, xi, mem.get(x, xi) * e + mem.get(to, j));
                        sum += s;
                    }
                    mem.set(logdet, r, mem.get(logdet, r) + sum);
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
                            let t = mem.get(x, r * d + i) - mem.get(means, j * d + i);
                            s += t * t;
                        }
                        comp[j] = mem.get(cst, j) - 0.5 * s * mem.get(inv_var, j);
                        mx = if comp[j] > mx { comp[j] } else { mx };
                    }
                    let mut tot = 0.0f32;
                    for j in 0..nj {
                        comp[j] = (comp[j] - mx).exp();
                        tot += comp[j];
                    }
                    let lse = mx + tot.ln();
                    for j in 0..nj {
                        comp[j] = comp[j] / tot * mem.get(inv_var, j);
                    }
                    let mut z2 = 0.0f32;
                    for i in 0..d {
                        let xi = mem.get(x, r * d + i);
                        let mut g = 0.0f32;
                        for j in 0..nj {
                            g += comp[j] * (mem.get(means, j * d + i) - xi);
                        }
                        let prev = if stl != 0 {
                            mem.get(gx, r * d + i)
                        } else {
                            0.0
                        };
                        mem.set(gx, r * d + i, (prev - beta * g) * scale);
                        let z = mem.get(x0, r * d + i);
                        z2 += z * z;
                    }
                    mem.set(
                        loss,
                        r,
                        base - 0.5 * z2 * inv_var0 - mem.get(logdet, r) - beta * lse,
                    );
                }
            }
            Kernel::RowSum => {
                let (v, out) = (a.p(), a.p());
                let (groups, n, scale) = (a.i() as usize, a.i() as usize, a.f());
                for g in 0..threads.min(groups) {
                    let mut s = 0.0f64;
                    for b in 0..n {
                        s += mem.get(v, g * n + b) as f64;
                    }
                    mem.set(out, g, (s * scale as f64) as f32);
                }
            }
            Kernel::CoupleBwd => {
                let (g, x, st, es, ib, ds_out, dt_out) =
                    (a.p(), a.p(), a.p(), a.p(), a.pi(), a.p(), a.p());
                let (rows, d, nb) = (a.i() as usize, a.i() as usize, a.i() as usize);
                let (c, ld_coef) = (a.f(), a.f());
                for j in 0..threads.min(rows * nb) {
                    let (r, kk) = (j / nb, j % nb);
                    let xi = r * d + mem.idx(ib, kk);
                    let gb = mem.get(g, xi);
                    let e = mem.get(es, j);
                    let u = mem.get(st, j);
                    mem.set(dt_out, j, gb);
                    let ds = gb * mem.get(x, xi) * e + ld_coef;
                    mem.set(ds_out, j, ds * c * (1.0 - u * u));
                    mem.set(g, xi, gb * e);
                }
            }
            Kernel::CoupleInvBwd => {
                let (u, x, st, es, ib, ds_out, dt_out) =
                    (a.p(), a.p(), a.p(), a.p(), a.pi(), a.p(), a.p());
                let (rows, d, nb, c) = (a.i() as usize, a.i() as usize, a.i() as usize, a.f());
                for j in 0..threads.min(rows * nb) {
                    let (r, kk) = (j / nb, j % nb);
                    let xi = r * d + mem.idx(ib, kk);
                    let ub = mem.get(u, xi);
                    let e = mem.get(es, j);
                    let w = mem.get(st, j);
                    let ue = ub / e;
                    mem.set(dt_out, j, -ue);
                    let ds = -ub * mem.get(x, xi) - 1.0;
                    mem.set(ds_out, j, ds * c * (1.0 - w * w));
                    mem.set(u, xi, ue);
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
                        s += mem.get(cur, (q * rpq + b) * n + o);
                    }
                    mem.set(grad, q * qs + o, s);
                }
            }
            Kernel::ActBwd => {
                let (dx, h) = (a.p(), a.p());
                let (total, act) = (a.i() as usize, a.i());
                for i in 0..threads.min(total) {
                    if act == 1 {
                        if mem.get(h, i) <= 0.0 {
                            mem.set(dx, i, 0.0);
                        }
                    } else if act == 2 {
                        mem.set(
                            dx,
                            i,
                            mem.get(dx, i) * (1.0 - mem.get(h, i) * mem.get(h, i)),
                        );
                    }
                }
            }
            Kernel::ScatterAdd => {
                let (g, dxa, ia) = (a.p(), a.p(), a.pi());
                let (rows, d, na) = (a.i() as usize, a.i() as usize, a.i() as usize);
                for j in 0..threads.min(rows * na) {
                    let (r, kk) = (j / na, j % na);
                    mem.set(
                        g,
                        r * d + mem.idx(ia, kk),
                        mem.get(g, r * d + mem.idx(ia, kk))
                            + (mem.get(dxa, j) + mem.get(dxa, rows * na + j)),
                    );
                }
            }
            Kernel::ScaleCopy => {
                let (y, x) = (a.p(), a.p());
                let (n, s) = (a.i() as usize, a.f());
                for i in 0..threads.min(n) {
                    mem.set(y, i, s * mem.get(x, i));
                }
            }
            Kernel::Fill => {
                let y = a.p();
                let (n, v) = (a.i() as usize, a.f());
                for i in 0..threads.min(n) {
                    mem.set(y, i, v);
                }
            }
            Kernel::Adam => {
                let (th, g, m, v) = (a.p(), a.p(), a.p(), a.p());
                let n = a.i() as usize;
                let (lr, b1, b2, eps, bc1, bc2) = (a.f(), a.f(), a.f(), a.f(), a.f(), a.f());
                for i in 0..threads.min(n) {
                    let gi = mem.get(g, i);
                    let mi = b1 * mem.get(m, i) + (1.0 - b1) * gi;
                    let vi = b2 * mem.get(v, i) + (1.0 - b2) * gi * gi;
                    mem.set(m, i, mi);
                    mem.set(v, i, vi);
                    mem.set(
                        th,
                        i,
                        mem.get(th, i) - (lr * (mi / bc1) / ((vi / bc2).sqrt() + eps)),
                    );
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
                    mem.set(
                        z,
                        i,
                        sigma * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos(),
                    );
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
