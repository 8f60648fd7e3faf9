"""The adaptive schedule from Python: its configuration section, its errors, and a run."""

import numpy as np
import pytest

import annealvi
from annealvi import schedule


def test_adaptive_section_and_no_beta_of_t():
    s = schedule.adaptive(beta_i=0.02, t0=300, rho=0.4, every=5, samples=64, hold=2.5)
    assert s.to_config() == {"kind": "adaptive", "beta_i": 0.02, "t0": 300.0, "rho": 0.4,
                             "every": 5, "samples": 64, "hold": 2.5}
    assert s.end == 300.0
    with pytest.raises(TypeError, match="adaptive"):
        s(10)


@pytest.mark.parametrize("kw, field", [
    ({"rho": 1.0}, "schedule.rho"),
    ({"rho": 0.0}, "schedule.rho"),
    ({"every": 0}, "schedule.every"),
    ({"samples": 1}, "schedule.samples"),
    ({"beta_i": 0.0}, "schedule.beta_i"),
    ({"t0": -1.0}, "schedule.t0"),
    ({"hold": -1.0}, "schedule.hold"),
    ({"hold": 1000.0}, "schedule.hold"),
])
def test_adaptive_bad_inputs_name_the_field(kw, field):
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        schedule.adaptive(**kw)


def test_train_with_an_adaptive_schedule():
    s = schedule.adaptive(beta_i=0.02, t0=400, rho=0.5, every=10, samples=64)
    cfg = {
        "seed": 5,
        "target": {"d": 512},
        "student": {"simulation": "statistics", "sigma0": "schedule"},
        "objective": {"samples": 16},
        "optim": {"steps": 500},
        "record": {"every": 10},
        "schedule": s.to_config(),
    }
    out = annealvi.train(cfg)
    beta = np.asarray(out["trajectory"]["beta"])
    assert beta[0] == pytest.approx(0.02)
    assert np.all(np.diff(beta) >= 0)
    step = np.asarray(out["trajectory"]["step"])
    assert np.all(beta[step >= 400] == 1.0)
    # the rule moved β before the budget
    assert np.any((beta > 0.02) & (beta < 1.0))
    # same configuration, same β path
    again = annealvi.train(cfg)
    assert np.array_equal(np.asarray(again["trajectory"]["beta"]), beta)
    # the step at which β reached 1 (as the CLI's summary.json `anneal_steps`): the first
    # recorded β = 1 is at or after it, the last β < 1 before it
    at = out["summary"]["anneal_steps"]
    assert 0 < at <= 400
    assert step[beta < 1.0].max() < at <= step[beta == 1.0].min()
    assert annealvi.Experiment(cfg).train().anneal_steps == at
    # a schedule β(t) has none
    cfg["schedule"] = schedule.exponential(0.02, 400).to_config()
    assert "anneal_steps" not in annealvi.train(cfg)["summary"]


def test_adaptive_steps_with_a_user_target():
    target = annealvi.bimodal(8)
    s = schedule.adaptive(beta_i=0.05, t0=300, rho=0.5, every=10, samples=32)
    for family in ("gmm", "realnvp"):
        cfg = {"student": {"family": family}, "optim": {"steps": 320}, "record": {"every": 20},
               "schedule": s.to_config()}
        if family == "realnvp":
            cfg["optim"].update(kind="adam", lr=1e-3)
            cfg["student"]["realnvp"] = {"layers": 2, "width": 8, "eval_samples": 200}
        run = annealvi.Experiment(cfg, target=target).train()
        assert 0 < run.anneal_steps <= 300, family

