"""Invalid arguments are errors that name what failed: a user target's dimension against the
configuration's, and configuration values that JSON cannot carry."""

import numpy as np
import pytest

import annealvi


# --- a user target's dimension -----------------------------------------------------------------

def test_user_target_refuses_a_configured_dimension():
    t = annealvi.bimodal(2)
    for kw in (dict(target__d=64), dict(config={"target": {"d": 64}}),
               dict(config="[target]\nd = 64"), dict(target={"d": 64})):
        with pytest.raises(ValueError, match=r"`target\.d`: 64 .*dim = 2"):
            annealvi.train(user_target=t, optim__steps=10, **kw)
    with pytest.raises(ValueError, match=r"`target\.d`: 1180591620717411303424 .*dim = 2"):
        annealvi.train(user_target=t, target__d=2 ** 70)
    # the same dimension, or none, is accepted
    for kw in (dict(target__d=2), {}):
        r = annealvi.train(user_target=t, optim__steps=10, record__every=5, **kw)
        assert r["summary"]["m"].shape == (2,)


def test_user_target_refuses_a_configured_dimension_in_a_sweep(tmp_path):
    with pytest.raises(ValueError, match=r"`run\.target\.d`: 64 .*dim = 2"):
        annealvi.sweep({"grid": {"beta_i": [0.1], "t0": [10]}}, tmp_path / "s",
                       user_target=annealvi.bimodal(2), run__target__d=64)
    assert not (tmp_path / "s").exists()


# --- configuration values ----------------------------------------------------------------------

@pytest.mark.parametrize("kw,match", [
    (dict(optim__lr=float("nan")), r"`optim\.lr`: NaN \(expected a number > 0\)"),
    (dict(optim__lr=float("inf")), r"`optim\.lr`: inf \(expected a number > 0\)"),
    (dict(config={"optim": {"lr": float("nan")}}), r"`optim\.lr`: NaN"),
    (dict(target__d=2 ** 70), r"`target\.d`: 1180591620717411303424 \(expected an integer ≤ 16777216\)"),
    (dict(config={"target": {"d": 2 ** 70}}), r"`target\.d`: 1180591620717411303424 \(expected an integer ≤ 16777216\)"),
    (dict(target__d=-2 ** 70), r"`target\.d`: -1180591620717411303424 \(expected"),
    (dict(seed=2 ** 70), r"`seed`: 1180591620717411303424 \(expected an integer in \[-9223372036854775808, 9223372036854775807\]\)"),
    (dict(target__d=None), r"`target\.d`: None \(None cannot be written"),
    (dict(target__d=object()), r"`target\.d`: <object .*> \(a value of type object is not a configuration value"),
])
def test_config_values_name_the_field(kw, match):
    with pytest.raises(ValueError, match=match) as e:
        annealvi.resolve_config(**kw)
    assert "line 1 column" not in str(e.value)


def test_config_infinity_and_numpy_values_are_accepted():
    text = annealvi.resolve_config(optim__max_grad_norm=float("inf"), target__d=np.int64(8),
                                   target={"r": np.float64(2.5)}, schedule__beta_i=0.5)
    assert "max_grad_norm = inf" in text
    assert "d = 8" in text and "r = 2.5" in text
    text = annealvi.resolve_config({"optim": {"max_grad_norm": np.inf, "lr": 0.01}})
    assert "max_grad_norm = inf" in text and "lr = 0.01" in text
    with pytest.raises(ValueError, match=r"`optim\.max_grad_norm`: NaN"):
        annealvi.resolve_config(optim__max_grad_norm=float("nan"))
