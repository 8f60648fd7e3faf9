#!/usr/bin/env python3
"""PyTorch baseline for `annealvi bench gmm`.

Runs the same workload as the Rust benchmark so the two can be compared in
run-steps/s (= seeds * steps / elapsed seconds):

Target (dimension d): bimodal Gaussian mixture
    pi(x) = w* N(x; mu*, I_d) + (1 - w*) N(x; -mu*, I_d),
    mu* = R e_1, R = 3, w* = 0.8,
with log pi computed by a logsumexp over the two normalised components.

Student, one per seed (S independent runs, batched in one tensor program):
    q(x) = sum_k w_k N(x; mu_k, sigma_k^2 I_d),  w = (0.5, 0.5) fixed,
    trainable mu [S, 2, d] (init N(0, I_d)) and log sigma [S, 2] (init 0).

Loss per run (reparametrised, "full" estimator: autograd flows through the
sample path and through the parameters inside log q), beta = 1:
    F = sum_k w_k * mean_b [ log q(x_kb) - beta * log pi(x_kb) ],
    x_kb = mu_k + sigma_k z_kb,  z ~ N(0, I_d),  B samples per component.

Update: plain SGD on sum_s F_s (one backward for all runs):
    mu       <- mu       - eta       * dF/dmu,        eta       = 0.05
    logsigma <- logsigma - eta_sigma * dF/dlogsigma,  eta_sigma = 10 * eta / d

The last line printed is exactly `run-steps/s: <number>` (timed steps only;
--warmup steps are run first and not timed).

Example:
    python scripts/bench_torch.py --d 512 --seeds 100 --samples 32 --steps 200 --threads 1
"""

import argparse
import math
import sys
import time
import warnings

# torch warns at import time when numpy is absent; numpy is not needed here.
warnings.filterwarnings("ignore", message=".*Failed to initialize NumPy.*")

import torch  # noqa: E402

# Fixed problem constants (must match the Rust `bench gmm` workload).
TARGET_R = 3.0
TARGET_W = 0.8
STUDENT_W = (0.5, 0.5)
BETA = 1.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="PyTorch CPU baseline for `annealvi bench gmm`.")
    p.add_argument("--d", type=int, default=512, help="dimension (default 512)")
    p.add_argument("--seeds", type=int, default=100,
                   help="number of independent runs S, batched (default 100)")
    p.add_argument("--samples", type=int, default=32,
                   help="samples B per student component per step (default 32)")
    p.add_argument("--steps", type=int, default=200,
                   help="timed SGD steps (default 200)")
    p.add_argument("--warmup", type=int, default=10,
                   help="untimed SGD steps run before timing (default 10)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads (default 1)")
    p.add_argument("--seed", type=int, default=0, help="RNG seed (default 0)")
    p.add_argument("--lr", type=float, default=0.05,
                   help="eta for the means; log sigma uses 10*eta/d (default 0.05)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                   help="floating point type (default float64, as the Rust side)")
    p.add_argument("--sqdist", choices=("broadcast", "matmul"), default="broadcast",
                   help="squared distances by explicit broadcasting of x - m "
                        "(default) or by the |x|^2 - 2 x.m + |m|^2 expansion")
    p.add_argument("--log-every", type=int, default=0,
                   help="print the mean loss every N steps (0 = never; "
                        "adds a sync per logged step)")
    args = p.parse_args(argv)
    for name in ("d", "seeds", "samples", "steps", "threads"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


def sq_dist(x, m, mode):
    """Squared Euclidean distances between points and centres.

    x: [..., N, d]; m: broadcastable to [..., L, d]. Returns [..., N, L].
    """
    if mode == "broadcast":
        diff = x.unsqueeze(-2) - m.unsqueeze(-3)          # [..., N, L, d]
        return (diff * diff).sum(-1)
    # matmul expansion
    x2 = (x * x).sum(-1, keepdim=True)                     # [..., N, 1]
    m2 = (m * m).sum(-1).unsqueeze(-2)                     # [..., 1, L]
    return x2 - 2.0 * torch.matmul(x, m.transpose(-1, -2)) + m2


class Problem:
    def __init__(self, d, dtype, sqdist):
        self.d = d
        self.dtype = dtype
        self.sqdist = sqdist
        self.half_d_log_2pi = 0.5 * d * math.log(2.0 * math.pi)
        tm = torch.zeros(2, d, dtype=dtype)
        tm[0, 0] = TARGET_R
        tm[1, 0] = -TARGET_R
        self.target_means = tm                                             # [2, d]
        self.target_logw = torch.tensor(
            [math.log(TARGET_W), math.log(1.0 - TARGET_W)], dtype=dtype)    # [2]
        self.student_logw = torch.tensor(
            [math.log(w) for w in STUDENT_W], dtype=dtype)                 # [2]
        self.student_w = torch.tensor(STUDENT_W, dtype=dtype)              # [2]

    def log_target(self, x):
        """x: [S, N, d] -> log pi(x): [S, N] (unit-variance components)."""
        d2 = sq_dist(x, self.target_means, self.sqdist)                    # [S, N, 2]
        comp = self.target_logw - self.half_d_log_2pi - 0.5 * d2
        return torch.logsumexp(comp, dim=-1)

    def log_student(self, x, mu, log_sigma):
        """x: [S, N, d], mu: [S, 2, d], log_sigma: [S, 2] -> log q(x): [S, N]."""
        d2 = sq_dist(x, mu, self.sqdist)                                   # [S, N, 2]
        inv_var = torch.exp(-2.0 * log_sigma).unsqueeze(-2)                # [S, 1, 2]
        comp = (self.student_logw - self.half_d_log_2pi
                - self.d * log_sigma.unsqueeze(-2) - 0.5 * d2 * inv_var)
        return torch.logsumexp(comp, dim=-1)

    def loss(self, mu, log_sigma, n_samples):
        """Per-run free energy estimate F: [S]."""
        S, K, d = mu.shape
        z = torch.randn(S, K, n_samples, d, dtype=self.dtype)              # [S, 2, B, d]
        sigma = torch.exp(log_sigma)                                       # [S, 2]
        x = mu.unsqueeze(2) + sigma[:, :, None, None] * z                  # [S, 2, B, d]
        x = x.reshape(S, K * n_samples, d)                                 # [S, 2B, d]
        integrand = (self.log_student(x, mu, log_sigma)
                     - BETA * self.log_target(x))                          # [S, 2B]
        per_comp = integrand.reshape(S, K, n_samples).mean(-1)             # [S, 2]
        return (per_comp * self.student_w).sum(-1)                         # [S]


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32

    prob = Problem(args.d, dtype, args.sqdist)
    S, d, B = args.seeds, args.d, args.samples
    eta = args.lr
    eta_sigma = 10.0 * eta / d

    mu = torch.randn(S, 2, d, dtype=dtype).requires_grad_(True)
    log_sigma = torch.zeros(S, 2, dtype=dtype).requires_grad_(True)

    def step():
        f = prob.loss(mu, log_sigma, B)
        f.sum().backward()
        with torch.no_grad():
            mu.sub_(mu.grad, alpha=eta)
            log_sigma.sub_(log_sigma.grad, alpha=eta_sigma)
        mu.grad = None
        log_sigma.grad = None
        return f.detach()

    print(f"bench_torch gmm: d={d} seeds={S} samples={B} steps={args.steps} "
          f"warmup={args.warmup} threads={torch.get_num_threads()} "
          f"dtype={args.dtype} sqdist={args.sqdist} seed={args.seed}")
    print(f"target: R={TARGET_R} w*={TARGET_W} beta={BETA}; "
          f"sgd eta={eta} eta_sigma={eta_sigma:.6g}")
    print(f"torch {torch.__version__} (python {sys.version.split()[0]})")

    f = None
    for i in range(args.warmup):
        f = step()
        if args.log_every and (i + 1) % args.log_every == 0:
            print(f"warmup {i + 1:6d}  mean F = {f.mean().item():.6f}")
    if f is not None:
        print(f"after warmup: mean F = {f.mean().item():.6f}")

    t0 = time.perf_counter()
    for i in range(args.steps):
        f = step()
        if args.log_every and (i + 1) % args.log_every == 0:
            print(f"step {i + 1:6d}  mean F = {f.mean().item():.6f}")
    elapsed = time.perf_counter() - t0

    final = f.mean().item()
    sig = torch.exp(log_sigma.detach())
    finite = bool(torch.isfinite(mu).all() and torch.isfinite(log_sigma).all()
                  and torch.isfinite(f).all())
    print(f"final: mean F = {final:.6f}  (min {f.min().item():.6f}, "
          f"max {f.max().item():.6f})  sigma mean = {sig.mean().item():.6f}  "
          f"finite = {finite}")
    print(f"elapsed: {elapsed:.4f} s for {args.steps} steps "
          f"({1e3 * elapsed / args.steps:.3f} ms/step)")
    if not finite:
        print("error: non-finite parameters or loss", file=sys.stderr)
    print(f"run-steps/s: {S * args.steps / elapsed:.6g}")
    return 0 if finite else 1


if __name__ == "__main__":
    sys.exit(main())
