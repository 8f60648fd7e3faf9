"""The adaptive schedule from Python: its configuration section, its errors, and a run."""

import numpy as np
import pytest

import annealvi
from annealvi import schedule


def test_adaptive_section_and_no_beta_of_t():
    s = schedule.adaptive(beta_i=0.02, t0=300, rho=0.4, every=5, samples=64)
    assert s.to_config() == {"kind": "adaptive", "beta_i": 0.02, "t0": 300.0, "rho": 0.4,
                             "every": 5, "samples": 64}
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
