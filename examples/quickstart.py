"""annealvi from Python in one page: the collapse probability of a schedule, a designed
schedule, and the phase diagram of P(collapse) over (β_i, t0) — as a figure when matplotlib is
installed, as text otherwise.

The model is the paper's (Fogliani, Loureiro, Gabrié 2026): a bimodal target in d = 512
(R = 3, w* = 0.8), a 2-component Gaussian-mixture student, SGD with η = 0.05; t0 counts SGD
steps. Predictions come from the summary statistics' ODE (no SGD is run, except the design's
optional check).

    python examples/quickstart.py [--out DIR] [--check-seeds N]
"""

import argparse
import os

import numpy as np

import annealvi


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/quickstart", help="directory of the figure")
    ap.add_argument("--check-seeds", type=int, default=0,
                    help="SGD runs checking the designed schedule (0 = none)")
    args = ap.parse_args()

    # 1. one schedule: beta(t) for one's own training loop, and its predicted P(collapse)
    sched = annealvi.schedule.exponential(beta_i=0.05, t0=4000)
    print("beta(t) at t = 0, 1000, 4000:", np.round(sched(np.array([0, 1000, 4000])), 4))
    ode = annealvi.collapse_probability(0.05, 4000, ics=4000)
    formula = annealvi.collapse_probability(0.05, 4000, method="formula")
    none = annealvi.collapse_probability(0.05, 0, ics=4000)
    print("P(collapse), beta_i = 0.05, t0 = 4000: ODE %.3f [%.3f, %.3f], formula %.3f"
          % (ode["p"], ode["ci_low"], ode["ci_high"], formula["p"]))
    print("P(collapse) without annealing:          ODE %.3f [%.3f, %.3f]"
          % (none["p"], none["ci_low"], none["ci_high"]))

    # 2. the fastest exponential schedule with P(collapse) <= 5%
    d = annealvi.design(0.05, ics=1000, check_seeds=args.check_seeds)
    print("design for P <= 0.05: beta_i = %.4f, t0 = %.0f steps, predicted P = %.3f [%.3f, %.3f]"
          % (d["beta_i"], d["t0"], d["p_predicted"], d["ci_low"], d["ci_high"]))
    if d["check"] is not None:
        c = d["check"]
        print("  SGD check: %d/%d collapsed, P = %.3f [%.3f, %.3f]"
              % (c["collapsed"], c["n"], c["p_collapse"], c["ci_low"], c["ci_high"]))

    # 3. a phase diagram in one call (a grid of beta_i x t0)
    betas = np.geomspace(0.003, 0.3, 6)
    t0s = np.geomspace(300, 10000, 7)
    grid = annealvi.collapse_probability(betas[:, None], t0s[None, :], ics=1000)["p"]
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
    if plt is None:
        print("\nP(collapse) (rows beta_i, columns t0; matplotlib not installed, so as text)")
        print("beta_i \\ t0 " + " ".join("%7.0f" % t for t in t0s))
        for b, row in zip(betas, grid):
            print("%11.4f " % b + " ".join("%7.3f" % p for p in row))
    else:
        os.makedirs(args.out, exist_ok=True)
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for b, row in zip(betas, grid):
            ax.plot(t0s, row, marker="o", label="beta_i = %.3g" % b)
        ax.set_xscale("log")
        ax.set_xlabel("t0 (SGD steps)")
        ax.set_ylabel("P(collapse), ODE prediction")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = os.path.join(args.out, "p_collapse.png")
        fig.savefig(path, dpi=120)
        print("wrote", path)


if __name__ == "__main__":
    main()
