"""The theory's results as objects: collapse_probability with its coordinates (grids or schedule
objects, the sharp formula), designs with their schedule (exponential and optimal), points
schedules, progress and threads."""

import math

import numpy as np
import pytest

import annealvi
from annealvi import schedule as S


# --- collapse_probability ----------------------------------------------------------------------

def test_collapse_probability_carries_its_coordinates():
    b = np.array([0.01, 0.1])[:, None]
    t = np.array([0, 8000])[None, :]
    r = annealvi.collapse_probability(b, t, ics=300)
    assert isinstance(r, annealvi.CollapseProbability)
    assert r.shape == (2, 2) and r.p.shape == (2, 2)
    assert r.beta_i.tolist() == [[0.01, 0.01], [0.1, 0.1]]
    assert r.t0.tolist() == [[0, 8000], [0, 8000]]
    assert r.method == "ode" and r.ics == 300 and r.model["d"] == 512
    # the dict of earlier versions
    assert r["p"] is r.p and set(r.keys()) == {"p", "ci_low", "ci_high", "collapsed"}
    assert np.array_equal(np.asarray(r), r.p)
    # ci_low <= p <= ci_high exactly, p = 0 included (no rounding above p)
    assert np.all(r.ci_low <= r.p) and np.all(r.p <= r.ci_high)
    assert r.p[1, 1] == 0.0 and r.ci_low[1, 1] == 0.0
    assert np.all(r.collapsed == np.round(r.p * 300))
    assert "shape=(2, 2)" in repr(r)
    with pytest.raises(TypeError, match="one cell"):
        float(r)
    with pytest.raises(KeyError, match="fields"):
        r["nope"]
    pd = pytest.importorskip("pandas")
    df = r.to_dataframe()
    assert isinstance(df, pd.DataFrame) and len(df) == 4
    assert df["beta_i"].tolist() == [0.01, 0.01, 0.1, 0.1]
    assert df["p"].tolist() == r.p.reshape(-1).tolist()


def test_one_cell_is_a_number():
    one = annealvi.collapse_probability(0.1, 500, ics=300)
    assert one.shape == ()
    assert float(one) == float(one["p"]) == float(one.p)
    assert one.beta_i == 0.1 and one.t0 == 500
    assert "%.3f" % one["p"] == "%.3f" % float(one) == "{:.3f}".format(one)
    assert "beta_i=0.1, t0=500" in repr(one) and "p=" in repr(one)


def test_formula_is_the_sharp_formula():
    # the linearised formula gave 0.435 without annealing and 0.007 at (0.3, 4401), against
    # 0.543 and 0.256 by the ODE, and no value at t0 = 100 (issue 21); the sharp one is within
    # 0.03 of the ODE (here 2000 ICs: ± 0.022 at 95%)
    cells = ([0.3, 0.3], [0, 4401])
    f = annealvi.collapse_probability(*cells, method="formula")
    o = annealvi.collapse_probability(*cells, ics=2000)
    assert np.max(np.abs(np.asarray(f["p"]) - np.asarray(o["p"]))) < 0.05, (f["p"], o["p"])
    short = annealvi.collapse_probability(0.01, 100, method="formula")
    assert abs(float(short) - float(annealvi.collapse_probability(0.01, 100, ics=2000))) < 0.05
    assert np.all(np.isnan(f.ci_low)) and np.all(f.collapsed == -1)
    assert f.ics is None and "formula" in repr(f)


def test_schedule_objects_instead_of_beta_i_and_t0():
    e = annealvi.collapse_probability(0.1, 3000, ics=300)
    s = annealvi.collapse_probability(S.exponential(0.1, 3000), ics=300)
    assert float(s) == float(e) and s.schedule == S.exponential(0.1, 3000)
    assert s.beta_i == pytest.approx(0.1) and s.t0 == 3000
    # geometric interpolation between two points is the exponential schedule
    p = annealvi.collapse_probability(schedule=S.points([(0, 0.1), (3000, 1.0)]), ics=300)
    assert float(p) == float(e)
    many = annealvi.collapse_probability([S.linear(0.1, 3000), S.constant(1.0),
                                          S.linear_temperature(0.1, 3000)], ics=300)
    assert many.shape == (3,) and many.t0.tolist() == [3000, 0, 3000]
    none = annealvi.collapse_probability(1.0, 0, ics=300)
    assert many.p[1] == float(none)
    assert len(many.to_dataframe()["schedule"]) == 3
    fm = annealvi.collapse_probability(S.points([(0, 0.1), (3000, 1.0)]), method="formula")
    assert float(fm) == float(annealvi.collapse_probability(0.1, 3000, method="formula"))
    with pytest.raises(TypeError, match="not both"):
        annealvi.collapse_probability(0.1, 300, schedule=S.constant())
    with pytest.raises(TypeError, match="Schedule"):
        annealvi.collapse_probability(schedule=[S.constant(), 3])


def test_threads_and_progress_of_collapse_probability():
    calls = []
    b = np.geomspace(0.01, 0.3, 4)
    one = annealvi.collapse_probability(b, 1000, ics=200, threads=1,
                                        progress=lambda d, n: calls.append((d, n)))
    assert calls[-1] == (4, 4)
    two = annealvi.collapse_probability(b, 1000, ics=200, threads=2, progress=False)
    assert one.p.tolist() == two.p.tolist()
    with pytest.raises(ValueError, match="threads"):
        annealvi.collapse_probability(0.1, 100, threads=-2)

    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop()

    with pytest.raises(Stop):
        annealvi.collapse_probability(b, 1000, ics=200, progress=stop)


# --- schedules ---------------------------------------------------------------------------------

def test_points_schedule():
    p = S.points([0, 100, 300], [0.01, 0.1, 1.0])
    assert p.kind == "points" and p.end == 300 and p.beta_i == 0.01
    assert p(50) == pytest.approx(math.sqrt(0.01 * 0.1), rel=1e-14)
    assert p(np.array([0, 100, 300, 1000])) == pytest.approx([0.01, 0.1, 1.0, 1.0], rel=1e-15)
    assert p == S.points(np.array([[0, 0.01], [100, 0.1], [300, 1.0]]))
    assert p.to_config() == {"kind": "points", "points": [[0.0, 0.01], [100.0, 0.1],
                                                          [300.0, 1.0]]}
    assert "points([(0, 0.01)" in repr(p)
    # a configuration value: the run's schedule
    toml = annealvi.resolve_config(schedule=p.to_config())
    assert 'kind = "points"' in toml
    with pytest.raises(ValueError, match=r"schedule.points\[1\]"):
        S.points([0, 0], [0.1, 1.0])
    with pytest.raises(ValueError, match=r"schedule.points\[0\]"):
        S.points([(0, 1.5)])
    with pytest.raises(ValueError, match="betas"):
        S.points([0, 1], [0.5])
    with pytest.raises(AttributeError, match="exponential"):
        p.rate


# --- design ------------------------------------------------------------------------------------

def test_design_is_an_object_with_a_schedule():
    calls = []
    d = annealvi.design(0.1, ics=200, seed=4, t_range=(1000, 1e4),
                        progress=lambda a, b: calls.append((a, b)))
    assert isinstance(d, annealvi.Design) and d.found and d.shape == "exponential"
    assert d.schedule == S.exponential(d.beta_i, d.t0)
    assert d["found"] and d["t0"] == d.t0 and d["check"] is None
    assert d.p_predicted <= 0.1 and d.ci_low <= d.p_predicted <= d.ci_high
    assert d.t0 == np.nanmin(d.candidates["t0"]) and d.candidates.rows == 16
    assert calls[-1] == (16, 16)
    # the prediction of the designed schedule object is the design's
    p = annealvi.collapse_probability(d.schedule, ics=200, seed=4)
    assert float(p) == d.p_predicted
    assert "exponential(beta_i=" in repr(d)
    assert d.to_dataframe()["t0"].tolist()[:3] == d.candidates["t0"].tolist()[:3]


def test_design_optimal_returns_a_points_schedule():
    calls = []
    o = annealvi.design(shape="optimal", budget=1000, segments=4, ics=300, check_seeds=2,
                        d=64, progress=lambda a, b: calls.append((a, b)))
    assert o.found and o.shape == "optimal" and o.schedule.kind == "points"
    k = o.schedule.points
    assert len(k) == 5 and k[-1] == (1000.0, 1.0) and k[0][0] == 0
    assert all(a[0] < b[0] and a[1] <= b[1] for a, b in zip(k, k[1:]))
    assert o.budget == o.t0 == 1000 and o.beta_i == k[0][1]
    # the optimiser starts from the best exponential: it does no worse on its objective
    c = o.candidates
    assert c["shape"].tolist() == ["optimal", "exponential", "linear_temperature"]
    assert c["p_formula"][0] <= c["p_formula"][1] + 1e-12
    assert c["p_predicted"][0] == o.p_predicted
    # its prediction, recomputed from the schedule object alone
    p = annealvi.collapse_probability(o.schedule, ics=300, d=64)
    assert float(p) == o.p_predicted
    # the SGD check of the schedule, and the progress over the stages and the check's runs
    assert o.check["n"] == 2 and 0 <= o.check["collapsed"] <= 2
    assert calls[-1] == (3, 3)
    assert "points([(0, " in repr(o)


def test_an_exception_in_the_progress_callback_stops_a_design():
    import time

    class Stop(Exception):
        pass

    seen = []

    def stop(done, total):
        seen.append((done, total))
        raise Stop()

    start = time.monotonic()
    with pytest.raises(Stop):
        annealvi.design(0.05, ics=100000, check_seeds=1000, progress=stop)
    # the whole design takes minutes; it stops at its next check after the first report
    assert time.monotonic() - start < 20 and len(seen) == 1


@pytest.mark.parametrize("kw,field", [
    (dict(shape="optimal"), "budget"),
    (dict(shape="optimal", budget=3, segments=4), "budget"),
    (dict(shape="optimal", budget=1000, segments=1), "segments"),
    (dict(shape="optimal", budget=1000, max_collapse=0.1), "not both"),
    (dict(shape="spline", max_collapse=0.1), "shape"),
    (dict(max_collapse=0.1, budget=100), "budget"),
    (dict(), "max_collapse"),
    (dict(max_collapse=0.1, threads=-1), "threads"),
])
def test_design_bad_inputs(kw, field):
    with pytest.raises(ValueError, match=field):
        annealvi.design(**kw)


# --- ODE trajectory ----------------------------------------------------------------------------

def test_ode_trajectory_table_and_progress():
    calls = []
    tr = annealvi.ode_trajectory(0.05, 400, steps=600, every=50, d=32, quasi_static=True,
                                 progress=lambda a, b: calls.append((a, b)))
    assert isinstance(tr, annealvi.Table) and tr.rows == 13
    assert calls[-1] == (600, 600)
    pd = pytest.importorskip("pandas")
    assert list(tr.to_dataframe().columns[:3]) == ["step", "beta", "m_1"]
    assert isinstance(tr.to_dataframe(), pd.DataFrame)
