"""annealvi from Python as a notebook would use it, top to bottom: predict P(collapse) on a
grid of exponential schedules and plot it with its intervals, design a schedule, train against a
target written in numpy, sample from the fitted student, and get runs and cells into pandas.

The model is the paper's bimodal target w* N(R e_1, I) + (1 − w*) N(−R e_1, I) (R = 3,
w* = 0.8) in d = 64 (small, so that the SGD parts take seconds), a 2-component Gaussian-mixture
student, SGD with η = 0.05; schedules count SGD steps. Each cell below ("# %%") runs as it
stands in Jupyter (matplotlib's Agg backend writes the figures to --out).

    python examples/notebook.py [--out DIR]
"""

# %% setup
import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import annealvi  # noqa: E402

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("--out", default="out/notebook", help="directory of the figures and tables")
args = ap.parse_args()
os.makedirs(args.out, exist_ok=True)
D, R, W_STAR = 64, 3.0, 0.8

# %% 1. predict P(collapse) on a grid of (beta_i, t0), with the Monte Carlo's intervals
betas = np.array([0.01, 0.03, 0.1, 0.3])
t0s = np.array([100, 300, 1000, 3000])
pred = annealvi.collapse_probability(betas[:, None], t0s[None, :], d=D, r=R, w_star=W_STAR,
                                     ics=500, progress=False)
print(pred)
pred_df = pred.to_dataframe()  # one row per cell: beta_i, t0, p, ci_low, ci_high, collapsed
pred_df.to_csv(os.path.join(args.out, "prediction.csv"), index=False)

fig, ax = plt.subplots(figsize=(5.5, 3.8))
for i, b in enumerate(betas):
    p, lo, hi = pred.p[i], pred.ci_low[i], pred.ci_high[i]
    ax.errorbar(pred.t0[i], p, yerr=[p - lo, hi - p], marker="o", capsize=3,
                label="β_i = %g" % b)
ax.set_xscale("log")
ax.set_xlabel("annealing time t0 (SGD steps)")
ax.set_ylabel("predicted P(collapse)")
ax.set_title("ODE prediction, d = %d (Wilson 95%% intervals)" % D)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(args.out, "prediction.png"), dpi=110)
plt.close(fig)

# %% 2. design: the fastest exponential schedule with predicted P(collapse) <= 0.1
des = annealvi.design(0.1, d=D, r=R, w_star=W_STAR, ics=300, t_range=(100, 5000), progress=False)
print(des)
sched = des.schedule  # an annealvi.schedule.Schedule: beta(t) for any training loop
print("beta(t) at t = 0, t0/2, t0:", np.round(sched([0, des.t0 / 2, des.t0]), 4))


# %% 3. train against a target written in numpy: fn(x (n, d)) -> (log pi (n,), grad (n, d))
def mixture(centres, weights):
    """An isotropic Gaussian mixture sum_j w_j N(c_j, I) in numpy, with its gradient."""
    c = np.asarray(centres, dtype=float)
    logw = np.log(np.asarray(weights, dtype=float))
    d = c.shape[1]

    def fn(x):
        diff = x[:, None, :] - c[None, :, :]                      # (n, J, d)
        comp = logw - 0.5 * np.sum(diff * diff, axis=2) - 0.5 * d * np.log(2 * np.pi)
        top = comp.max(axis=1, keepdims=True)
        resp = np.exp(comp - top)
        lp = top[:, 0] + np.log(resp.sum(axis=1))
        resp /= resp.sum(axis=1, keepdims=True)                    # responsibilities (n, J)
        grad = -np.einsum("nj,njd->nd", resp, diff)
        return lp, grad

    return fn


centres = np.zeros((2, D))
centres[0, 0], centres[1, 0] = R, -R
target = annealvi.Target.from_callable(mixture(centres, [W_STAR, 1 - W_STAR]), dim=D,
                                       modes=centres)
exp = annealvi.Experiment(target=target, schedule=sched, student__sigma0="schedule",
                          optim__steps=int(des.t0) + 500, record__every=100)
print(exp)
run = exp.train(progress=False)
print(run)
traj = run.trajectory.to_dataframe()  # step, beta, loss, kl, neg_elbo, m_1, m_2, q_11, ...
traj.to_csv(os.path.join(args.out, "trajectory.csv"), index=False)
print(traj[["step", "beta", "loss", "m_1", "m_2", "sigma_1", "sigma_2"]].tail(3))

# %% 4. the fitted student: its parameters, samples and density (the paper's student keeps
# its weights fixed at 1/2, so a run that covers both modes puts mass 1/2 on each)
q = run.student  # a GaussianMixture: means (K, d), sigma (K,), weights (K,)
print("means along e_1:", np.round(q.means[:, 0], 3), "sigma:", np.round(q.sigma, 3))
x = q.sample(4000, seed=1)
lq = q.log_prob(x)
lp, _ = target(x)
print("KL(q || pi) from 4000 samples: %.4f nats" % np.mean(lq - lp))
fig, ax = plt.subplots(figsize=(5.5, 3.5))
ax.hist(x[:, 0], bins=80, density=True, alpha=0.5, label="samples of q (first coordinate)")
s = np.linspace(-6, 6, 400)
marg = sum(w * np.exp(-0.5 * (s - m) ** 2) / np.sqrt(2 * np.pi)
           for w, m in ((W_STAR, R), (1 - W_STAR, -R)))
ax.plot(s, marg, "k-", lw=1, label="target marginal")
ax.set_xlabel("x_1")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(os.path.join(args.out, "student.png"), dpi=110)
plt.close(fig)

# %% 5. runs and cells into pandas: the designed schedule against no annealing, 12 seeds each
sweep = exp.sweep(beta_i=[des.beta_i], t0=[des.t0], seeds=12, extra_steps=500,
                  no_annealing=True, progress=False)
cells = sweep.cells.to_dataframe()  # beta_i, t0, n, collapsed, p_collapse, ci_low, ci_high, ...
runs = sweep.runs.to_dataframe()    # one row per run: beta_i, t0, seed, outcome, ...
cells.to_csv(os.path.join(args.out, "cells.csv"), index=False)
runs.to_csv(os.path.join(args.out, "runs.csv"), index=False)
print(cells[["beta_i", "t0", "n", "collapsed", "p_collapse", "ci_low", "ci_high"]])
print(runs.groupby("t0")["outcome"].value_counts().unstack(fill_value=0))
print("wrote", ", ".join(sorted(os.listdir(args.out))), "in", args.out)
