#!/usr/bin/env python3
"""PyTorch baseline for `annealvi bench flow` (CPU) and `annealvi bench flow-gpu` (--device cuda).

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

--device cuda runs on the GPU (noise drawn there too, no host synchronisation inside the timed
loop except at its end). --flows F > 1 trains F independent flows at once (parameters stacked
with torch.func.stack_module_state, the loss vmapped over flows, one Adam over the stacked
tensors, which is F independent Adams); steps/s then counts steps of all F flows together.

The last line printed is exactly `steps/s: <number>` (timed steps only; --warmup steps run
first and are not timed).

Example:
    python scripts/bench_flow_torch.py --d 16 --width 64 --batch 256 --steps 200 --threads 1
    python3 scripts/bench_flow_torch.py --device cuda --d 128 --width 512 --steps 500
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
        logdet = torch.zeros(z.shape[0], dtype=z.dtype, device=z.device)
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
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--flows", type=int, default=1, help="independent flows trained at once")
    a = p.parse_args(argv)
    if a.d < 2 or a.width < 1 or a.batch < 1 or a.steps < 1 or a.threads < 1 or a.flows < 1:
        p.error("need d >= 2 and positive width, batch, steps, threads, flows")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False")
    dev = torch.device(a.device)
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    d = a.d
    const = -0.5 * d * math.log(2 * math.pi)

    def loss_of(flow_fn, z):
        x, logdet = flow_fn(z)
        log_q = const - 0.5 * (z * z).sum(-1) - logdet
        return (log_q - BETA * log_pi(x)).mean()

    if a.flows == 1:
        flow = Flow(a.d, a.width).to(dev)
        opt = torch.optim.Adam(flow.parameters(), lr=1e-3)

        def step():
            z = torch.randn(a.batch, d, device=dev)
            loss = loss_of(flow, z)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.detach()
    else:
        import copy
        from torch.func import functional_call, stack_module_state, vmap

        models = [Flow(a.d, a.width).to(dev) for _ in range(a.flows)]
        params, buffers = stack_module_state(models)
        base = copy.deepcopy(models[0]).to("meta")
        opt = torch.optim.Adam(list(params.values()), lr=1e-3)

        def one(p_, b_, z):
            return loss_of(lambda zz: functional_call(base, (p_, b_), (zz,)), z)

        batched = vmap(one)

        def step():
            z = torch.randn(a.flows, a.batch, d, device=dev)
            losses = batched(params, buffers, z)
            opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            opt.step()
            return losses[0].detach()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(a.warmup):
        step()
    sync()
    first = step().item()
    t0 = time.perf_counter()
    for i in range(a.steps):
        loss = step()
    sync()
    dt = time.perf_counter() - t0
    loss = loss.item()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    print(f"bench_flow_torch: d={d} width={a.width} batch={a.batch} steps={a.steps} "
          f"flows={a.flows} threads={a.threads} device={name} torch {torch.__version__}; "
          f"loss (flow 0) {first:.3f} -> {loss:.3f}; {dt:.2f} s; "
          f"run-steps/s (all flows): {a.flows * a.steps / dt:.2f}")
    print(f"steps/s: {a.steps / dt:.3f}")


if __name__ == "__main__":
    sys.exit(main())
