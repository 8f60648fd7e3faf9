#!/usr/bin/env python3
"""Paired comparison of two sweeps' cells: McNemar's exact test on the seeds where exactly one
of the two runs collapsed.

    python3 scripts/paired.py A_DIR B_DIR --beta-i 0.1 [--t0 2000]

Reads A_DIR/runs.jsonl and B_DIR/runs.jsonl, keeps the runs of the cell (β_i, and t0 if given)
in each, pairs them by `seed` and prints n (pairs), the collapses of each, b (collapsed in A
only), c (collapsed in B only) and the two-sided exact p = min(1, 2 P(X ≤ min(b, c))),
X ~ Bin(b + c, 1/2) (the same test as the library's `metrics::mcnemar_exact`). Runs of one
cell of two sweeps of the same configuration and seed share their initial state and noise,
so they are paired. Standard library only.
"""

import argparse
import json
import math
import sys
from pathlib import Path


def cell_runs(sweep: Path, beta_i: float, t0):
    """{seed: collapsed} for the runs of the cell (β_i, t0) of a sweep directory."""
    out = {}
    with open(sweep / "runs.jsonl", encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            if not math.isclose(float(r["beta_i"]), beta_i, rel_tol=1e-9):
                continue
            if t0 is not None and not math.isclose(float(r["t0"]), t0, rel_tol=1e-9):
                continue
            out[int(r["seed"])] = r["outcome"] == "collapsed"
    return out


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p: min(1, 2 P(X ≤ min(b, c))), X ~ Bin(b + c, 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2.0 * tail)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path, help="first sweep directory (runs.jsonl)")
    ap.add_argument("b", type=Path, help="second sweep directory (runs.jsonl)")
    ap.add_argument("--beta-i", type=float, required=True, help="the cell's β_i")
    ap.add_argument("--t0", type=float, default=None, help="the cell's t0 (default: any)")
    args = ap.parse_args()
    a = cell_runs(args.a, args.beta_i, args.t0)
    b = cell_runs(args.b, args.beta_i, args.t0)
    seeds = sorted(set(a) & set(b))
    if not seeds:
        print("no common seeds in that cell", file=sys.stderr)
        return 2
    only_a = sum(1 for s in seeds if a[s] and not b[s])
    only_b = sum(1 for s in seeds if b[s] and not a[s])
    print(
        f"pairs {len(seeds)}: collapsed A {sum(a[s] for s in seeds)}, "
        f"B {sum(b[s] for s in seeds)}; A only {only_a}, B only {only_b}; "
        f"McNemar exact p = {mcnemar_exact(only_a, only_b):.3g}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
