#!/usr/bin/env python3
"""PyTorch CPU baseline for `annealvi bench flow`.

The same model and workload as the Rust benchmark, step for step:

Target (dimension d): pi(x) = w* N(x; mu*, I_d) + (1 - w*) N(x; -mu*, I_d), mu* = R e_1,
R = 3, w* = 0.8; log pi by a logsumexp over the two normalised components; beta = 1.

Flow: RealNVP, base N(0, I_d); L = 8 affine coupling layers with alternating halves masks
(even layers condition on x[:d//2] and transform x[d//2:], odd layers the reverse);
y_B = x_B * exp(s) + t, s = tanh(S(x_A)) (scale bound 1); S and T are MLPs
|A| -> h -> h -> h -> |B| (depth 4, ReLU), PyTorch's default nn.Linear initialisation
(uniform +-1/sqrt(fan_in)) for every layer (annealvi: last_init = 1).

Loss: mean_b [log q(x_b) - beta log pi(x_b)] with x_b = f(z_b), z_b ~ N(0, I) (full
reparametrised estimator; log q(x_b) = log N(z_b) - sum of s). Adam, lr 1e-3, batch 256.

The last line printed is exactly `steps/s: <number>` (timed steps only; --warmup steps run
first and are not timed).

Example:
    python scripts/bench_flow_torch.py --d 16 --width 64 --batch 256 --steps 200 --threads 1
"""

import argparse
import math
import sys
import time
import warnings

warnings.filterwarnings("ignore", message=".*Failed to initialize NumPy.*")

import torch  # noqa: E402
from torch import nn  # noqa: E402

R, W_STAR, BETA, LAYERS, DEPTH = 3.0, 0.8, 1.0, 8, 4


def mlp(n_in, h, n_out, depth):
    dims = [n_in] + [h] * (depth - 1) + [n_out]
    mods = []
    for j in range(depth):
        mods.append(nn.Linear(dims[j], dims[j + 1]))
        if j + 1 < depth:
            mods.append(nn.ReLU())
    return nn.Sequential(*mods)


class Flow(nn.Module):
    def __init__(self, d, h):
        super().__init__()
        self.d = d
        self.splits = []
        for l in range(LAYERS):
            first = list(range(d // 2))
            rest = list(range(d // 2, d))
            self.splits.append((first, rest) if l % 2 == 0 else (rest, first))
        self.s = nn.ModuleList()
        self.t = nn.ModuleList()
        for a, b in self.splits:
            self.s.append(mlp(len(a), h, len(b), DEPTH))
            self.t.append(mlp(len(a), h, len(b), DEPTH))

    def forward(self, z):
        x = z
        logdet = torch.zeros(z.shape[0], dtype=z.dtype)
        h = self.d // 2
        for l in range(LAYERS):
            if l % 2 == 0:
                xa, xb = x[:, :h], x[:, h:]
            else:
                xb, xa = x[:, :h], x[:, h:]
            s = torch.tanh(self.s[l](xa))
            t = self.t[l](xa)
            yb = xb * torch.exp(s) + t
            logdet = logdet + s.sum(1)
            x = torch.cat([xa, yb], 1) if l % 2 == 0 else torch.cat([yb, xa], 1)
        return x, logdet


def log_pi(x):
    d = x.shape[1]
    norm = -0.5 * d * math.log(2 * math.pi)
    n2 = (x * x).sum(1)
    a = norm - 0.5 * (n2 - 2 * R * x[:, 0] + R * R) + math.log(W_STAR)
    b = norm - 0.5 * (n2 + 2 * R * x[:, 0] + R * R) + math.log(1 - W_STAR)
    return torch.logsumexp(torch.stack([a, b], 1), 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--d", type=int, default=16)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    if a.d < 2 or a.width < 1 or a.batch < 1 or a.steps < 1 or a.threads < 1:
        p.error("need d >= 2 and positive width, batch, steps, threads")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    flow = Flow(a.d, a.width)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    d = a.d
    const = -0.5 * d * math.log(2 * math.pi)

    def step():
        z = torch.randn(a.batch, d)
        x, logdet = flow(z)
        log_q = const - 0.5 * (z * z).sum(1) - logdet
        loss = (log_q - BETA * log_pi(x)).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss.item()

    first = None
    for _ in range(a.warmup):
        first = step() if first is None else first
        step()
    t0 = time.perf_counter()
    for i in range(a.steps):
        loss = step()
        if first is None:
            first = loss
    dt = time.perf_counter() - t0
    print(f"bench_flow_torch: d={d} width={a.width} batch={a.batch} steps={a.steps} "
          f"threads={a.threads} torch {torch.__version__}; loss {first:.3f} -> {loss:.3f}; "
          f"{dt:.2f} s")
    print(f"steps/s: {a.steps / dt:.3f}")


if __name__ == "__main__":
    sys.exit(main())
