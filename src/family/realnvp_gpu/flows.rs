//! [`GpuFlows`]: F RealNVP flows on one device — the device buffers and the device order of
//! θ, construction on a backend, and the batch API the sweep uses (parameters up and down,
//! noise). The passes are in `passes`.

use super::cuda::CudaBackend;
use super::device::{Arg, Backend, Kernel, int};
use super::emu::EmuBackend;
use super::{GpuError, GpuResult, MAX_COMPONENTS};
use crate::family::realnvp::{FlowArch, MaskKind};
use crate::target::{IsotropicMixture, LogDensity};

/// Shape of linear layer (l, j) (the same for both nets).
#[derive(Clone, Copy, Debug)]
pub(super) struct LinDims {
    pub(super) n_in: usize,
    pub(super) n_out: usize,
    /// n_out·n_in + n_out.
    pub(super) size: usize,
    /// Device offset of block q = 0 (net s, flow 0).
    pub(super) dev: usize,
}

/// F RealNVP flows with their Adam state and batch buffers on one device.
pub struct GpuFlows {
    pub(super) dev: Box<dyn Backend>,
    pub(super) arch: FlowArch,
    pub(super) flows: usize,
    pub(super) batch: usize,
    pub(super) rows: usize,
    pub(super) n_params: usize,
    /// Conditioning / transformed index sets per coupling.
    pub(super) ia: Vec<Vec<usize>>,
    pub(super) ib: Vec<Vec<usize>>,
    /// Per (l, j), index l·depth + j.
    pub(super) dims: Vec<LinDims>,
    /// Host offsets of (l, net, j) in one flow's θ, index (l·2 + net)·depth + j.
    pub(super) host_off: Vec<usize>,
    // device buffers
    pub(super) theta: u64,
    pub(super) grad: u64,
    pub(super) adam_m: u64,
    pub(super) adam_v: u64,
    pub(super) ia_p: Vec<u64>,
    pub(super) ib_p: Vec<u64>,
    pub(super) xs: Vec<u64>,
    pub(super) xa: Vec<u64>,
    pub(super) hid: Vec<u64>,
    pub(super) st: Vec<u64>,
    pub(super) es: Vec<u64>,
    pub(super) out: u64,
    pub(super) dout: u64,
    pub(super) dbuf: [u64; 2],
    pub(super) dxa: u64,
    pub(super) gx: u64,
    pub(super) logdet: u64,
    pub(super) loss_rows: u64,
    pub(super) loss: u64,
    pub(super) means: u64,
    pub(super) cst: u64,
    pub(super) inv_var: u64,
    pub(super) n_comp: usize,
    /// Adam step count.
    pub(super) adam_t: i32,
}

/// Conditioning and transformed index sets of coupling l (as in `RealNvp`).
pub(super) fn mask_sets(a: &FlowArch, l: usize) -> (Vec<usize>, Vec<usize>) {
    let cond = |i: usize| match a.mask {
        MaskKind::Halves => (i < a.d / 2) == l.is_multiple_of(2),
        MaskKind::Checkerboard => i.is_multiple_of(2) == l.is_multiple_of(2),
    };
    (
        (0..a.d).filter(|&i| cond(i)).collect(),
        (0..a.d).filter(|&i| !cond(i)).collect(),
    )
}

impl GpuFlows {
    /// `flows` flows of architecture `arch` with batch `batch` against `target` on CUDA device 0
    /// (parameters zero until [`Self::set_params`]). [`GpuError::NoDevice`] when the driver, NVRTC,
    /// cuBLAS or a device is missing.
    pub fn new(
        arch: &FlowArch,
        target: &IsotropicMixture,
        flows: usize,
        batch: usize,
    ) -> GpuResult<Self> {
        let dev = CudaBackend::new()?;
        Self::with_backend(Box::new(dev), arch, target, flows, batch)
    }

    /// The same engine on the CPU emulator ([`EmuBackend`]; slow, for tests).
    pub fn emulated(
        arch: &FlowArch,
        target: &IsotropicMixture,
        flows: usize,
        batch: usize,
    ) -> GpuResult<Self> {
        Self::with_backend(Box::new(EmuBackend::default()), arch, target, flows, batch)
    }

    /// The engine on a given backend.
    pub fn with_backend(
        mut dev: Box<dyn Backend>,
        arch: &FlowArch,
        target: &IsotropicMixture,
        flows: usize,
        batch: usize,
    ) -> GpuResult<Self> {
        arch.validate("student.realnvp")
            .map_err(|e| GpuError::Invalid(e.to_string()))?;
        if flows == 0 || batch == 0 {
            return Err(GpuError::Invalid("flows and batch must be ≥ 1".into()));
        }
        if target.dim() != arch.d {
            return Err(GpuError::Invalid(format!(
                "target dimension {} ≠ flow dimension {}",
                target.dim(),
                arch.d
            )));
        }
        let n_comp = target.means().len();
        if n_comp == 0 || n_comp > MAX_COMPONENTS {
            return Err(GpuError::Invalid(format!(
                "the target has {n_comp} components; the GPU engine takes 1 to {MAX_COMPONENTS}"
            )));
        }
        let (d, h, depth, nl) = (arch.d, arch.width, arch.depth, arch.layers);
        let rows = flows * batch;
        let q = 2 * flows;
        let (mut ia, mut ib) = (Vec::new(), Vec::new());
        for l in 0..nl {
            let (a, b) = mask_sets(arch, l);
            ia.push(a);
            ib.push(b);
        }
        // host layout (RealNvp): l, net, j; device layout: l, j, net, flow
        let mut host_off = Vec::new();
        let mut off = 0;
        for l in 0..nl {
            for _net in 0..2 {
                for j in 0..depth {
                    host_off.push(off);
                    let n_in = if j == 0 { ia[l].len() } else { h };
                    let n_out = if j + 1 == depth { ib[l].len() } else { h };
                    off += n_out * n_in + n_out;
                }
            }
        }
        let n_params = off;
        let mut dims = Vec::new();
        let mut dev_off = 0;
        for l in 0..nl {
            for j in 0..depth {
                let n_in = if j == 0 { ia[l].len() } else { h };
                let n_out = if j + 1 == depth { ib[l].len() } else { h };
                let size = n_out * n_in + n_out;
                dims.push(LinDims {
                    n_in,
                    n_out,
                    size,
                    dev: dev_off,
                });
                dev_off += q * size;
            }
        }
        debug_assert_eq!(dev_off, flows * n_params);
        let max_a = ia.iter().map(Vec::len).max().unwrap_or(0);
        let max_b = ib.iter().map(Vec::len).max().unwrap_or(0);
        // every kernel index must fit an int
        int(flows * n_params, "flows × parameters")?;
        int(2 * rows * h.max(d), "2 × flows × batch × width")?;
        let fp = flows * n_params;
        let theta = dev.alloc(fp)?;
        let grad = dev.alloc(fp)?;
        let adam_m = dev.alloc(fp)?;
        let adam_v = dev.alloc(fp)?;
        let (mut ia_p, mut ib_p) = (Vec::new(), Vec::new());
        for l in 0..nl {
            let pa = dev.alloc(ia[l].len().max(1))?;
            let ai: Vec<i32> = ia[l].iter().map(|&i| i as i32).collect();
            dev.upload_i32(pa, &ai)?;
            ia_p.push(pa);
            let pb = dev.alloc(ib[l].len().max(1))?;
            let bi: Vec<i32> = ib[l].iter().map(|&i| i as i32).collect();
            dev.upload_i32(pb, &bi)?;
            ib_p.push(pb);
        }
        let mut xs = Vec::new();
        for _ in 0..=nl {
            xs.push(dev.alloc(rows * d)?);
        }
        let (mut xa, mut hid, mut st, mut es) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for l in 0..nl {
            xa.push(dev.alloc(2 * rows * ia[l].len().max(1))?);
            hid.push(dev.alloc(((depth - 1) * 2 * rows * h).max(1))?);
            st.push(dev.alloc(rows * ib[l].len().max(1))?);
            es.push(dev.alloc(rows * ib[l].len().max(1))?);
        }
        let out = dev.alloc(2 * rows * max_b.max(1))?;
        let dout = dev.alloc(2 * rows * max_b.max(1))?;
        let dbuf = [dev.alloc(2 * rows * h)?, dev.alloc(2 * rows * h)?];
        let dxa = dev.alloc(2 * rows * max_a.max(1))?;
        let gx = dev.alloc(rows * d)?;
        let logdet = dev.alloc(rows)?;
        let loss_rows = dev.alloc(rows)?;
        let loss = dev.alloc(flows)?;
        // target constants: cst_j = ln w_j − (d/2)(ln 2π + ln v_j), 1/v_j, means (J × d)
        let ln2pi = (2.0 * std::f64::consts::PI).ln();
        let (tm, tv, tlw) = (target.means(), target.variances(), target.log_weights());
        let cst_h: Vec<f32> = (0..n_comp)
            .map(|j| (tlw[j] - 0.5 * d as f64 * (ln2pi + tv[j].ln())) as f32)
            .collect();
        let iv_h: Vec<f32> = tv.iter().map(|v| (1.0 / v) as f32).collect();
        let m_h: Vec<f32> = tm.iter().flatten().map(|&v| v as f32).collect();
        let means = dev.alloc(n_comp * d)?;
        dev.upload(means, &m_h)?;
        let cst = dev.alloc(n_comp)?;
        dev.upload(cst, &cst_h)?;
        let inv_var = dev.alloc(n_comp)?;
        dev.upload(inv_var, &iv_h)?;
        Ok(GpuFlows {
            dev,
            arch: arch.clone(),
            flows,
            batch,
            rows,
            n_params,
            ia,
            ib,
            dims,
            host_off,
            theta,
            grad,
            adam_m,
            adam_v,
            ia_p,
            ib_p,
            xs,
            xa,
            hid,
            st,
            es,
            out,
            dout,
            dbuf,
            dxa,
            gx,
            logdet,
            loss_rows,
            loss,
            means,
            cst,
            inv_var,
            n_comp,
            adam_t: 0,
        })
    }

    /// The device's description.
    pub fn device_name(&self) -> String {
        self.dev.name()
    }

    /// Parameters per flow (the `RealNvp` count).
    pub fn n_params(&self) -> usize {
        self.n_params
    }

    /// Number of flows F.
    pub fn flows(&self) -> usize {
        self.flows
    }

    /// Batch B.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Device position of host index `i` of flow `f` (see the module docs).
    pub(super) fn dev_index(&self, f: usize, i: usize) -> usize {
        // the (l, net, j) block holding i: host offsets increase with the block index
        let blk = self.host_off.partition_point(|&o| o <= i) - 1;
        let depth = self.arch.depth;
        let (l, net, j) = (blk / (2 * depth), (blk / depth) % 2, blk % depth);
        let dm = self.dims[l * depth + j];
        dm.dev + (net * self.flows + f) * dm.size + (i - self.host_off[blk])
    }

    /// Host-order → device-order map for one flow's θ (index: host position).
    pub(super) fn dev_map(&self, f: usize) -> Vec<usize> {
        (0..self.n_params).map(|i| self.dev_index(f, i)).collect()
    }

    pub(super) fn download_all(&mut self, p: u64) -> GpuResult<Vec<f32>> {
        let mut all = vec![0.0f32; self.flows * self.n_params];
        self.dev.download(p, &mut all)?;
        Ok(all)
    }

    /// Sets flow f's θ (`RealNvp` layout, f64 cast to f32) and resets its Adam moments (the Adam
    /// step count is shared by all flows and reset too).
    pub fn set_params(&mut self, f: usize, theta: &[f64]) -> GpuResult<()> {
        self.check_flow(f)?;
        if theta.len() != self.n_params {
            return Err(GpuError::Invalid(format!(
                "θ has {} entries, the flow {}",
                theta.len(),
                self.n_params
            )));
        }
        let map = self.dev_map(f);
        let mut all = self.download_all(self.theta)?;
        for (i, &v) in theta.iter().enumerate() {
            all[map[i]] = v as f32;
        }
        self.dev.upload(self.theta, &all)?;
        let mut m = self.download_all(self.adam_m)?;
        let mut v = self.download_all(self.adam_v)?;
        for &k in &map {
            m[k] = 0.0;
            v[k] = 0.0;
        }
        self.dev.upload(self.adam_m, &m)?;
        self.dev.upload(self.adam_v, &v)?;
        self.adam_t = 0;
        Ok(())
    }

    /// Sets every flow's θ at once (`thetas[f]` in `RealNvp` layout; one upload) and resets
    /// the Adam state.
    pub fn set_all_params(&mut self, thetas: &[Vec<f64>]) -> GpuResult<()> {
        if thetas.len() != self.flows || thetas.iter().any(|t| t.len() != self.n_params) {
            return Err(GpuError::Invalid(format!(
                "expected {} parameter vectors of length {}",
                self.flows, self.n_params
            )));
        }
        let mut all = vec![0.0f32; self.flows * self.n_params];
        for (f, th) in thetas.iter().enumerate() {
            for (i, k) in self.dev_map(f).into_iter().enumerate() {
                all[k] = th[i] as f32;
            }
        }
        self.dev.upload(self.theta, &all)?;
        all.iter_mut().for_each(|v| *v = 0.0);
        self.dev.upload(self.adam_m, &all)?;
        self.dev.upload(self.adam_v, &all)?;
        self.adam_t = 0;
        Ok(())
    }

    pub(super) fn check_flow(&self, f: usize) -> GpuResult<()> {
        if f >= self.flows {
            return Err(GpuError::Invalid(format!(
                "flow {f} out of range (F = {})",
                self.flows
            )));
        }
        Ok(())
    }

    pub(super) fn gather(&mut self, p: u64, f: usize) -> GpuResult<Vec<f64>> {
        self.check_flow(f)?;
        let all = self.download_all(p)?;
        Ok(self.dev_map(f).iter().map(|&k| all[k] as f64).collect())
    }

    /// Flow f's θ (`RealNvp` layout).
    pub fn params(&mut self, f: usize) -> GpuResult<Vec<f64>> {
        self.gather(self.theta, f)
    }

    /// Every flow's θ (`RealNvp` layout), from one download.
    pub fn all_params(&mut self) -> GpuResult<Vec<Vec<f64>>> {
        let all = self.download_all(self.theta)?;
        Ok((0..self.flows)
            .map(|f| self.dev_map(f).iter().map(|&k| all[k] as f64).collect())
            .collect())
    }

    /// Flow f's last gradient ∇_θ L_f (`RealNvp` layout).
    pub fn grad(&mut self, f: usize) -> GpuResult<Vec<f64>> {
        self.gather(self.grad, f)
    }

    /// Sets the base noise from standard-normal ε (F × B × d, flow-major): x0 = σ0 ε.
    pub fn set_noise(&mut self, eps: &[f64]) -> GpuResult<()> {
        let n = self.rows * self.arch.d;
        if eps.len() != n {
            return Err(GpuError::Invalid(format!(
                "noise has {} entries, expected F·B·d = {n}",
                eps.len()
            )));
        }
        let s0 = self.arch.sigma0;
        let h: Vec<f32> = eps.iter().map(|&e| (s0 * e) as f32).collect();
        self.dev.upload(self.xs[0], &h)
    }

    /// Draws the base noise on the device: x0 = σ0 ε with ε from the hash generator keyed by
    /// (seed, step).
    pub fn sample_noise(&mut self, seed: u32, step: u32) -> GpuResult<()> {
        let n = self.rows * self.arch.d;
        let args = [
            Arg::P(self.xs[0]),
            Arg::I(int(n, "F·B·d")?),
            Arg::U(seed),
            Arg::U(step),
            Arg::F(self.arch.sigma0 as f32),
        ];
        self.dev.launch(Kernel::NormalNoise, n, &args)
    }
}
