"""Shared helpers of the Python tests: the CLI binary and small configurations."""

import os
import pathlib
import shutil

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


def cli_binary():
    """The annealvi CLI built from this repository (ANNEALVI_BIN, else target/{release,debug})."""
    env = os.environ.get("ANNEALVI_BIN")
    if env:
        return env
    for profile in ("release", "debug"):
        p = ROOT / "target" / profile / "annealvi"
        if p.exists():
            return str(p)
    found = shutil.which("annealvi")
    return found


@pytest.fixture(scope="session")
def cli():
    """Path of the CLI; in CI (CI set) a missing binary is a failure, locally a skip."""
    b = cli_binary()
    if b is None:
        if os.environ.get("CI"):
            pytest.fail("the annealvi CLI is not built (run `cargo build` or `cargo test` first)")
        pytest.skip("the annealvi CLI is not built")
    return b


SMALL_SWEEP = """
[grid]
beta_i = [0.05, 0.3]
t0 = [300]
no_annealing = true
seeds = 4
extra_steps = 200

[run]
seed = 7

[run.target]
d = 32

[run.student]
sigma0 = "schedule"

[run.objective]
samples = 16
"""

SMALL_RUN = """
seed = 3

[target]
d = 32

[student]
sigma0 = "schedule"

[schedule]
kind = "exponential"
beta_i = 0.05
t0 = 400

[optim]
steps = 600

[record]
every = 50
"""
