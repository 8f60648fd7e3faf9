"""Cost per SGD step of a target given in numpy, PyTorch or JAX against the built-in one.

The built-in bimodal target (R = 3, w* = 0.8) in d = 128 is trained with the 2-component
Gaussian-mixture student, B = 256 samples per component (512 target evaluations per step),
through the library's kernel and through user targets of the same density, in one process,
the runs interleaved: the numpy callable with its analytic gradient (annealvi.bimodal),
Target.from_torch (float64, autograd; on one thread and on torch's default number of threads)
and Target.from_jax (jit, float32 by default and float64 with x64), the backends that are not
installed skipped. All runs use the same streams. Prints
the median over --repeats of the wall time per step, its ratio to the built-in target, and the
share of it spent inside the user function (numpy, or the framework's forward and backward).
JAX compiles in the first repeat; the median leaves it out.

    python python/benchmarks/target_cost.py [--d 128] [--samples 256] [--steps 400]
"""

import argparse
import importlib
import platform
import time

import numpy as np

import annealvi

R, W_STAR = 3.0, 0.8


def torch_target(d, modes):
    """The same density as annealvi.bimodal, written in torch (log cosh by logaddexp)."""
    import torch

    h = 0.5 * np.log(W_STAR / (1 - W_STAR))
    const = -0.5 * d * np.log(2 * np.pi) - 0.5 * R * R - np.logaddexp(h, -h) + np.log(2)

    def fn(x):
        a = R * x[:, 0] + h
        return const - 0.5 * (x * x).sum(1) + torch.logaddexp(a, -a) - np.log(2)

    return annealvi.Target.from_torch(fn, d, modes=modes)


def jax_target(d, modes, x64):
    """The same density in JAX; float64 with x64 (taken when the target is built)."""
    import jax
    import jax.numpy as jnp

    h = 0.5 * np.log(W_STAR / (1 - W_STAR))
    const = -0.5 * d * np.log(2 * np.pi) - 0.5 * R * R - np.logaddexp(h, -h) + np.log(2)

    def fn(x):
        a = R * x[:, 0] + h
        return const - 0.5 * (x * x).sum(1) + jnp.logaddexp(a, -a) - np.log(2)

    if not x64:
        return annealvi.Target.from_jax(fn, d, modes=modes)
    ctx = getattr(jax, "enable_x64", None)
    if ctx is None:
        import jax.experimental

        ctx = jax.experimental.enable_x64
    with ctx(True):
        return annealvi.Target.from_jax(fn, d, modes=modes)


def installed(name):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    cfg = {"target": {"d": args.d}, "objective": {"samples": args.samples},
           "optim": {"steps": args.steps}, "record": {"every": 0}}
    reference = annealvi.bimodal(args.d, R, W_STAR)
    targets = [("numpy callable", reference)]
    torch, jax = installed("torch"), installed("jax")
    versions = ["numpy %s" % np.__version__]
    torch_threads = {}
    if torch is not None:
        default = torch.get_num_threads()
        for n in sorted({1, default}):
            name = "from_torch (float64, %d thread%s)" % (n, "s" * (n > 1))
            torch_threads[name] = n
            targets.append((name, torch_target(args.d, reference.modes)))
        versions.append("torch %s" % torch.__version__)
    if jax is not None:
        targets.append(("from_jax (float32)", jax_target(args.d, reference.modes, False)))
        targets.append(("from_jax (float64)", jax_target(args.d, reference.modes, True)))
        versions.append("jax %s" % jax.__version__)
    inner = [0.0]

    def timed(fn):
        def wrapped(x):
            t = time.perf_counter()
            out = fn(x)
            inner[0] += time.perf_counter() - t
            return out
        return wrapped

    timed_targets = [(name, annealvi.Target(timed(t.fn), args.d, t.modes)) for name, t in targets]
    builtin = []
    per_step = {name: [] for name, _ in targets}
    share = {name: [] for name, _ in targets}
    same = {name: 0 for name, _ in targets}
    for _ in range(args.repeats):
        t = time.perf_counter()
        a = annealvi.train(cfg)
        builtin.append((time.perf_counter() - t) / args.steps)
        for name, target in timed_targets:
            if name in torch_threads:
                torch.set_num_threads(torch_threads[name])
            inner[0] = 0.0
            t = time.perf_counter()
            b = annealvi.train(cfg, user_target=target)
            wall = time.perf_counter() - t
            per_step[name].append(wall / args.steps)
            share[name].append(inner[0] / wall)
            same[name] += np.allclose(a["summary"]["m"], b["summary"]["m"], rtol=1e-6)
    mb = np.median(builtin)
    print("d = %d, B = %d per component, 2 components, %d steps, median of %d (%s; %s)"
          % (args.d, args.samples, args.steps, args.repeats,
             platform.processor() or platform.machine(), "; ".join(versions)))
    print("| target | ms/step | vs built-in | inside the function | final m as built-in (1e-6) |")
    print("|---|---|---|---|---|")
    print("| built-in | %.2f | 1 | | |" % (1e3 * mb))
    for name, _ in targets:
        m = np.median(per_step[name])
        print("| %s | %.2f | %.1f× | %.0f%% | %d/%d |" % (name, 1e3 * m, m / mb,
                                                       100 * np.median(share[name]), same[name],
                                                       args.repeats))


if __name__ == "__main__":
    main()
