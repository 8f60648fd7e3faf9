// Elementwise and per-row kernels of the RealNVP GPU engine (src/family/realnvp_gpu/), compiled
// at run time by NVRTC. Plain C: one thread per element or per batch row, no shared memory, no
// atomics, no headers. Every matrix is row-major; a "row" is one sample of one flow (rows = F·B);
// net-batched buffers hold 2F blocks of B rows, the F blocks of the s-nets first, then the F
// blocks of the t-nets. The Rust emulator (`EmuBackend` in realnvp_gpu/emu.rs) mirrors each
// kernel line by line; keep the two in step.

#define GID (blockIdx.x * blockDim.x + threadIdx.x)

// One thread per (r, i), i < d: y ← x and, for i < na, xa[q·rows + r, i] ← x[r, ia[i]] for
// q = 0, 1 (one copy per net).
extern "C" __global__ void split_fwd(const float* x, float* y, float* xa, const int* ia,
                                     int rows, int d, int na) {
  int t = GID;
  if (t >= rows * d) return;
  int r = t / d;
  int i = t % d;
  y[t] = x[t];
  if (i < na) {
    float v = x[(long long)r * d + ia[i]];
    xa[(long long)r * na + i] = v;
    xa[((long long)rows + r) * na + i] = v;
  }
}

// y[i] ← act(y[i] + bias[q·q_stride + o]), o = i mod n, q = i / (n·rows_per_q);
// act: 0 identity, 1 ReLU, 2 tanh.
extern "C" __global__ void bias_act(float* y, const float* bias, int n, int rows_per_q,
                                    int q_stride, int total, int act) {
  int i = GID;
  if (i >= total) return;
  int o = i % n;
  int q = i / (n * rows_per_q);
  float v = y[i] + bias[(long long)q * q_stride + o];
  if (act == 1) {
    v = v > 0.0f ? v : 0.0f;
  } else if (act == 2) {
    v = tanhf(v);
  }
  y[i] = v;
}

// Affine coupling, forward: u = tanh(S), s = c·u, e = exp(s), y_B = x_B·e + T (y_A = x_A was
// copied by split_fwd); caches u and e; logdet[r] += Σ_k s_k.
extern "C" __global__ void couple_fwd(const float* x, float* y, float* st, float* es,
                                      const float* so, const float* to, const int* ib,
                                      float* logdet, int rows, int d, int nb, float c) {
  int r = GID;
  if (r >= rows) return;
  float sum = 0.0f;
  for (int k = 0; k < nb; ++k) {
    long long j = (long long)r * nb + k;
    long long xi = (long long)r * d + ib[k];
    float u = tanhf(so[j]);
    float s = c * u;
    float e = expf(s);
    st[j] = u;
    es[j] = e;
    y[xi] = x[xi] * e + to[j];
    sum += s;
  }
  logdet[r] += sum;
}

// Isotropic mixture target, per row: ln π(x) = logsumexp_j (cst_j − ½‖x − m_j‖²/v_j),
// ∇ ln π(x) = Σ_j r_j (m_j − x)/v_j with r_j the responsibilities (nj ≤ 16).
// loss[r] = base − ½‖x0‖²·inv_var0 − logdet[r] − β ln π(x)   (= ln q(x) − β ln π(x));
// gx[r, :] ← (gx[r, :] if stl else 0) − β ∇ ln π(x), all times `scale` (= 1/B).
extern "C" __global__ void target_grad(const float* x, const float* x0, const float* logdet,
                                       const float* means, const float* cst,
                                       const float* inv_var, float* gx, float* loss, int rows,
                                       int d, int nj, float beta, float scale, float inv_var0,
                                       float base, int stl) {
  int r = GID;
  if (r >= rows) return;
  const float* xr = x + (long long)r * d;
  const float* zr = x0 + (long long)r * d;
  float* gr = gx + (long long)r * d;
  float comp[16];
  float mx = -3.0e38f;
  for (int j = 0; j < nj; ++j) {
    float s = 0.0f;
    for (int i = 0; i < d; ++i) {
      float t = xr[i] - means[j * d + i];
      s += t * t;
    }
    comp[j] = cst[j] - 0.5f * s * inv_var[j];
    mx = comp[j] > mx ? comp[j] : mx;
  }
  float tot = 0.0f;
  for (int j = 0; j < nj; ++j) {
    comp[j] = expf(comp[j] - mx);
    tot += comp[j];
  }
  float lse = mx + logf(tot);
  for (int j = 0; j < nj; ++j) comp[j] = comp[j] / tot * inv_var[j];
  float z2 = 0.0f;
  for (int i = 0; i < d; ++i) {
    float g = 0.0f;
    for (int j = 0; j < nj; ++j) g += comp[j] * (means[j * d + i] - xr[i]);
    float prev = stl ? gr[i] : 0.0f;
    gr[i] = (prev - beta * g) * scale;
    z2 += zr[i] * zr[i];
  }
  loss[r] = base - 0.5f * z2 * inv_var0 - logdet[r] - beta * lse;
}

// out[g] ← scale · Σ_{b<n} v[g·n + b] (double accumulator).
extern "C" __global__ void row_sum(const float* v, float* out, int groups, int n, float scale) {
  int g = GID;
  if (g >= groups) return;
  double s = 0.0;
  for (int b = 0; b < n; ++b) s += (double)v[(long long)g * n + b];
  out[g] = (float)(s * (double)scale);
}

// Affine coupling, backward (g = ∂L/∂y on entry, ∂L/∂x on exit for the B coordinates):
// ∂T = g_B, ∂S = (g_B·x_B·e + ld_coef)·c·(1 − u²), g_B ← g_B·e.
// One thread per (r, k), k < nb.
extern "C" __global__ void couple_bwd(float* g, const float* x, const float* st,
                                      const float* es, const int* ib, float* ds_out,
                                      float* dt_out, int rows, int d, int nb, float c,
                                      float ld_coef) {
  int j = GID;
  if (j >= rows * nb) return;
  int r = j / nb;
  int k = j % nb;
  long long xi = (long long)r * d + ib[k];
  float gb = g[xi];
  float e = es[j];
  float u = st[j];
  dt_out[j] = gb;
  float ds = gb * x[xi] * e + ld_coef;
  ds_out[j] = ds * c * (1.0f - u * u);
  g[xi] = gb * e;
}

// Inverse coupling x_B = (y_B − T)·e^{−s}, ln|det| = −Σ s, backpropagated from u = ∂/∂x to
// ∂/∂y: ∂T = −u_B/e, ∂S = (−u_B·x_B − 1)·c·(1 − st²), u_B ← u_B/e.
// One thread per (r, k), k < nb.
extern "C" __global__ void couple_inv_bwd(float* u, const float* x, const float* st,
                                          const float* es, const int* ib, float* ds_out,
                                          float* dt_out, int rows, int d, int nb, float c) {
  int j = GID;
  if (j >= rows * nb) return;
  int r = j / nb;
  int k = j % nb;
  long long xi = (long long)r * d + ib[k];
  float ub = u[xi];
  float e = es[j];
  float w = st[j];
  float ue = ub / e;
  dt_out[j] = -ue;
  float ds = -ub * x[xi] - 1.0f;
  ds_out[j] = ds * c * (1.0f - w * w);
  u[xi] = ue;
}

// Bias gradient: grad[q·q_stride + o] ← Σ_{b<rows_per_q} cur[(q·rows_per_q + b)·n + o].
extern "C" __global__ void bias_grad(const float* cur, float* grad, int n, int rows_per_q,
                                     int q_stride, int nq) {
  int t = GID;
  if (t >= nq * n) return;
  int q = t / n;
  int o = t % n;
  float s = 0.0f;
  for (int b = 0; b < rows_per_q; ++b) s += cur[((long long)q * rows_per_q + b) * n + o];
  grad[(long long)q * q_stride + o] = s;
}

// Activation backward from the post-activation h: ReLU dx·[h > 0], tanh dx·(1 − h²).
extern "C" __global__ void act_bwd(float* dx, const float* h, int total, int act) {
  int i = GID;
  if (i >= total) return;
  if (act == 1) {
    dx[i] = h[i] > 0.0f ? dx[i] : 0.0f;
  } else if (act == 2) {
    dx[i] = dx[i] * (1.0f - h[i] * h[i]);
  }
}

// One thread per (r, k), k < na: g[r, ia[k]] += dxa[r, k] + dxa[rows + r, k] (input gradients
// of the s- and t-nets; ia has distinct entries, so no two threads write the same g).
extern "C" __global__ void scatter_add(float* g, const float* dxa, const int* ia, int rows,
                                       int d, int na) {
  int j = GID;
  if (j >= rows * na) return;
  int r = j / na;
  int k = j % na;
  g[(long long)r * d + ia[k]] += dxa[j] + dxa[(long long)rows * na + j];
}

// y ← a·x.
extern "C" __global__ void scale_copy(float* y, const float* x, int n, float a) {
  int i = GID;
  if (i >= n) return;
  y[i] = a * x[i];
}

// y ← v.
extern "C" __global__ void fill(float* y, int n, float v) {
  int i = GID;
  if (i >= n) return;
  y[i] = v;
}

// Adam: m ← b1·m + (1 − b1)·g, v ← b2·v + (1 − b2)·g², θ ← θ − lr·(m/bc1)/(√(v/bc2) + eps).
extern "C" __global__ void adam(float* th, const float* g, float* m, float* v, int n, float lr,
                                float b1, float b2, float eps, float bc1, float bc2) {
  int i = GID;
  if (i >= n) return;
  float gi = g[i];
  float mi = b1 * m[i] + (1.0f - b1) * gi;
  float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
  m[i] = mi;
  v[i] = vi;
  th[i] = th[i] - lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
}

__device__ unsigned int mix32(unsigned int x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

// z[i] ← sigma·N(0, 1) by Box–Muller from a counter-based hash of (seed, step, i).
extern "C" __global__ void normal_noise(float* z, int n, unsigned int seed, unsigned int step,
                                        float sigma) {
  int i = GID;
  if (i >= n) return;
  unsigned int key = mix32(seed ^ mix32(step + 0x9e3779b9U));
  unsigned int a = mix32(key ^ mix32(2U * (unsigned int)i));
  unsigned int b = mix32(key ^ mix32(2U * (unsigned int)i + 1U));
  float u1 = ((float)(a >> 8) + 1.0f) * (1.0f / 16777216.0f);
  float u2 = (float)(b >> 8) * (1.0f / 16777216.0f);
  z[i] = sigma * sqrtf(-2.0f * logf(u1)) * cosf(6.2831853f * u2);
}
