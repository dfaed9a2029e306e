"""RouteLLM's metrics on small synthetic outcomes whose answers are worked out by hand."""

import numpy as np
import pytest

from analytics.routing import metrics
from analytics.routing.metrics import Outcomes


def outcomes(strong, weak, strong_cost=1.0, weak_cost=0.01) -> Outcomes:
    n = len(strong)
    return Outcomes(
        strong=np.array(strong, dtype=float),
        weak=np.array(weak, dtype=float),
        strong_cost=np.full(n, strong_cost),
        weak_cost=np.full(n, weak_cost),
    )


def test_random_router_has_apgr_one_half_and_cpt_equal_to_the_target():
    data = outcomes([1, 1, 0, 1, 1, 0, 1, 1], [0, 1, 0, 0, 1, 1, 0, 1])
    curve = metrics.random_curve(data)
    summary = metrics.summary(curve, data)
    assert summary["apgr"] == pytest.approx(0.5)
    assert summary["cpt50"] == pytest.approx(0.5)
    assert summary["cpt80"] == pytest.approx(0.8)
    assert metrics.below_random(curve, data) == pytest.approx(0.0, abs=1e-12)


def test_oracle_recovers_the_gap_with_only_the_prompts_the_weak_model_fails():
    # 10 prompts: the strong model is always right, the weak one misses 4 -> oracle needs 40% for PGR 1.
    data = outcomes([1] * 10, [1, 0, 1, 0, 1, 1, 0, 1, 0, 1])
    curve = metrics.with_ends(metrics.score_curve(data, metrics.oracle_scores(data)), data)
    summary = metrics.summary(curve, data)
    assert summary["cpt50"] == pytest.approx(0.2)
    assert summary["cpt80"] == pytest.approx(0.32)
    # PGR rises linearly to 1 at 40% and stays there: 0.4 / 2 + 0.6.
    assert summary["apgr"] == pytest.approx(0.8)
    # 97% of the strong model's quality (0.97) is PGR 0.925 -> 37% of calls.
    assert summary["at97"]["strong_share"] == pytest.approx(0.37)
    assert summary["at97"]["cost"] == pytest.approx(0.01 + 0.37 * 0.99)
    assert summary["at97"]["cost_vs_strong"] == pytest.approx(0.01 + 0.37 * 0.99)


def test_a_hand_computed_curve():
    # Scores send prompts to the strong model in the order 0, 1, 2, 3. Gains strong - weak: +1, 0, -1, +1.
    data = outcomes([1, 1, 0, 1], [0, 1, 1, 0])
    curve = metrics.with_ends(metrics.score_curve(data, np.array([3, 2, 1, 0])), data)
    pgrs = sorted({(p.strong_share, metrics.pgr(p.quality, 0.5, 0.75)) for p in curve})
    assert pgrs == [(0.0, 0.0), (0.25, 1.0), (0.5, 1.0), (0.75, 0.0), (1.0, 1.0)]
    summary = metrics.summary(curve, data)
    assert summary["apgr"] == pytest.approx(0.125 + 0.25 + 0.125 + 0.125)
    assert summary["cpt50"] == pytest.approx(0.125)
    # At 75% of calls the curve is 0.75 below the random router's PGR.
    assert metrics.below_random(curve, data) == pytest.approx(0.75)


def test_tied_scores_move_together_and_the_curve_interpolates_between_them():
    data = outcomes([1, 1, 1, 0], [0, 0, 1, 0])
    curve = metrics.score_curve(data, np.array([1, 1, 0, 0]))
    assert [p.strong_share for p in curve] == [0.0, 0.5, 1.0]
    assert metrics.cpt(metrics.with_ends(curve, data), 0.5, 0.25, 0.75) == pytest.approx(0.25)


def test_operating_point_of_a_routing_and_its_cost():
    data = outcomes([1, 0, 1, 1], [0, 0, 1, 1], strong_cost=2.0, weak_cost=0.5)
    p = metrics.point(data, np.array([True, False, False, True]))
    assert (p.strong_share, p.quality, p.cost) == (0.5, 0.75, 1.25)


def test_pgr_when_the_models_are_equal():
    assert metrics.pgr(0.8, 0.8, 0.8) == 1.0
    assert metrics.pgr(0.7, 0.8, 0.8) == 0.0


def test_weak_model_already_good_enough_needs_no_strong_calls():
    data = outcomes([1, 1, 1, 0], [1, 1, 1, 1])  # the weak model is the better one here
    summary = metrics.summary(metrics.random_curve(data), data)
    assert summary["at95"]["strong_share"] == 0.0


def test_a_curve_that_never_reaches_the_target_has_no_cpt():
    data = outcomes([1, 1], [0, 0])
    flat = [metrics.Point(0.0, 0.0, 0.0), metrics.Point(0.5, 0.2, 0.5)]
    assert metrics.cpt(flat, 0.5, data.weak_quality, data.strong_quality) is None
