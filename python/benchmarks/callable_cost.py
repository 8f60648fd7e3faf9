"""Cost per SGD step of a user-defined (Python callable) target against the built-in one.

The built-in bimodal target (R = 3, w* = 0.8) in d = 128 is trained with the 2-component
Gaussian-mixture student, B = 256 samples per component (512 target evaluations per step),
once through the library's kernel and once written in numpy (annealvi.bimodal) through the
callable path; both runs use the same streams. Prints the median over --repeats of the wall
time per step, and the share of the callable path spent inside the numpy function.

    python python/benchmarks/callable_cost.py [--d 128] [--samples 256] [--steps 400]
"""

import argparse
import platform
import time

import numpy as np

import annealvi


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    cfg = {"target": {"d": args.d}, "objective": {"samples": args.samples},
           "optim": {"steps": args.steps}, "record": {"every": 0}}
    target = annealvi.bimodal(args.d)
    inner = [0.0]
    fn = target.fn

    def timed(x):
        t = time.perf_counter()
        out = fn(x)
        inner[0] += time.perf_counter() - t
        return out

    timed_target = annealvi.Target.from_callable(timed, args.d, modes=target.modes)
    builtin, callable_, share = [], [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        a = annealvi.train(cfg)
        builtin.append((time.perf_counter() - t) / args.steps)
        inner[0] = 0.0
        t = time.perf_counter()
        b = annealvi.train(cfg, user_target=timed_target)
        wall = time.perf_counter() - t
        callable_.append(wall / args.steps)
        share.append(inner[0] / wall)
        assert a["summary"]["outcome"] == b["summary"]["outcome"]
    mb, mc = np.median(builtin), np.median(callable_)
    print("d = %d, B = %d per component, %d steps, median of %d (%s, numpy %s)"
          % (args.d, args.samples, args.steps, args.repeats, platform.processor() or
             platform.machine(), np.__version__))
    print("built-in target:  %.3f ms/step" % (1e3 * mb))
    print("Python callable:  %.3f ms/step (%.1fx; %.0f%% of it inside the numpy function)"
          % (1e3 * mc, mc / mb, 100 * np.median(share)))


if __name__ == "__main__":
    main()
