"""The learned router's harness on synthetic outcomes with a known answer: the weak model fails
every prompt on one topic and answers every other; the strong one answers all. Learning only the
chosen model's outcome, the router must find the topic."""

import random

import numpy as np
import pytest

from analytics.routing import learned, replay
from analytics.routing.metrics import Outcomes

EASY = ["cats", "rivers", "gardens", "bread", "music", "trains", "snow", "coffee"]
HARD = ["statute", "liability", "indemnity", "tort", "jurisdiction", "appeal", "clause", "tax"]


@pytest.fixture(scope="module")
def synthetic():
    rng = random.Random(7)
    prompts, hard = [], []
    for i in range(600):
        is_hard = i % 2 == 1
        topic = rng.sample(HARD if is_hard else EASY, 2)
        # "Summarize this:" prompts meet the weak model's requirement as configured, so it is tried.
        prompts.append(f"Summarize this: notes {i} on {topic[0]} and {topic[1]}")
        hard.append(is_hard)
    hard = np.array(hard)
    prepared = replay.prepare(prompts)
    outcomes = Outcomes(
        strong=np.ones(len(prompts)),
        weak=(~hard).astype(float),
        strong_cost=np.full(len(prompts), 1.0),
        weak_cost=np.full(len(prompts), 0.01),
    )
    return prepared, learned.text_features(prompts), outcomes, hard


def test_the_configured_policy_tries_the_weak_model_on_these_prompts(synthetic):
    prepared, *_ = synthetic
    assert {replay.decide(item, learned.pair(0)) for item in prepared} == {"weak"}


def test_training_learns_only_the_chosen_models_outcome(synthetic):
    prepared, feats, outcomes, hard = synthetic
    models = learned.train(prepared, feats, outcomes, range(300), exploration=0.05, rating=False, seed=1)
    assert models["weak"].samples + models["strong"].samples == 300
    assert models["weak"].samples >= 100  # it was tried until it had learned enough to be avoided
    assert models["strong"].samples > 0  # then hard prompts went to the strong model
    easy_p = models["weak"].predict(feats[300])
    hard_p = models["weak"].predict(feats[301])
    assert (hard[300], hard[301]) == (False, True)
    assert easy_p > models["weak"].baseline > hard_p and easy_p - hard_p > 0.2


def test_crossfit_finds_the_hard_topic_on_prompts_it_never_learned_from(synthetic):
    prepared, feats, outcomes, _ = synthetic
    found = learned.crossfit(prepared, feats, outcomes, seeds=2, exploration=0.05)
    # A perfect router recovers the whole gap at 50% strong calls: APGR 0.75. Without learning the
    # product sends every one of these prompts the same way: no better than random (0.5).
    assert found["apgr"]["mean"] > 0.7 and found["apgr"]["n"] == 4
    assert found["cpt80"]["mean"] < 0.5
    assert found["below_random"]["mean"] == 0
    assert found["rank_agreement"] > 0.95


def test_online_learning_routes_well_after_the_warm_up(synthetic):
    prepared, feats, outcomes, _ = synthetic
    found = learned.online(
        prepared, feats, outcomes, seeds=2, exploration=0.05, warmup=0.5, first_rebuild=20, rebuild_every=50
    )
    assert found["apgr"]["mean"] > 0.65 and found["apgr"]["n"] == 2


def test_judge_scores_are_reported_as_ratings():
    assert [learned._target(score, True) for score in (1, 5.5, 10)] == [0.0, 0.5, 1.0]
    assert learned._target(1.0, False) == 1.0


def test_the_harness_learns_through_the_production_window(synthetic, settings):
    """The evaluation rebuilds its models with outcome_learning.rebuild: the production setting for
    the window bounds what they learned from."""
    prepared, feats, outcomes, _ = synthetic
    settings.COSTSWITCH_LEARNING_WINDOW = 150
    models = learned.train(prepared, feats, outcomes, range(400), exploration=0.05, rating=False, seed=1)
    # The weak model was reported on more than 150 times (it is tried until learned to be avoided).
    assert models["weak"].samples == 150 and 0 < models["strong"].samples <= 150


def test_models_are_rebuilt_at_growing_intervals_then_every_period():
    due, schedule = 0, []
    while due < 5000:
        due = learned.rebuild_due(due, 100, 1000)
        schedule.append(due)
    assert schedule == [100, 200, 400, 800, 1600, 2600, 3600, 4600, 5600]


def test_the_crossfit_curve_runs_from_always_weak_to_always_strong(synthetic):
    prepared, feats, outcomes, _ = synthetic
    curve = learned.crossfit(prepared, feats, outcomes, seeds=1, exploration=0.05)["curve"]
    assert [row["strong_share"] for row in curve] == pytest.approx([k / 20 for k in range(21)])
    assert curve[0]["pgr"]["mean"] == pytest.approx(0) and curve[-1]["pgr"]["mean"] == pytest.approx(1)
    # The hard half is found: half the strong calls recover (nearly) the whole gap.
    assert curve[10]["pgr"]["mean"] > 0.9
