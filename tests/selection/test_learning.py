"""selection.learning: hashed text features and the per-model online logistic model, pure."""

import math
import random
import subprocess
import sys
import time

import pytest

from selection import learning
from selection.choices import Strategy
from selection.engine import LEARNED_QUALITY_SPAN, Candidate, Constraints, learned_shifts, rank
from tests.selection.conftest import engine_candidate

EASY = ["poem", "haiku", "limerick", "sonnet", "rhyme", "verse", "song", "ballad"]
HARD = ["tax", "statute", "liability", "clause", "jurisdiction", "tort", "indemnity", "appeal"]
FILLER = ["please", "write", "about", "the", "a", "short", "one", "for", "my", "friend", "today"]


def _prompt(rng: random.Random, topic: list[str]) -> str:
    words = rng.sample(FILLER, 5) + rng.sample(topic, 2)
    rng.shuffle(words)
    return " ".join(words)


def _synthetic(seed: int, n: int) -> list[tuple[list[int], float]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        hard = rng.random() < 0.5
        rows.append((learning.features(_prompt(rng, HARD if hard else EASY)), 0.0 if hard else 1.0))
    return rows


def test_the_model_learns_a_separable_signal_and_ranks_unseen_prompts():
    model = learning.fit(_synthetic(1, 400), passes=1)

    held_out = _synthetic(2, 200)
    easy = [model.predict(b) for b, t in held_out if t == 1.0]
    hard = [model.predict(b) for b, t in held_out if t == 0.0]
    # Every unseen easy prompt ranks above every unseen hard one, by a wide margin.
    assert min(easy) > 0.75 and max(hard) < 0.4
    assert model.samples == 400 and 0.4 < model.baseline < 0.6


def test_an_untrained_model_predicts_even_odds_and_bias_follows_the_base_rate():
    assert learning.OutcomeModel().predict(learning.features("anything at all")) == pytest.approx(0.5)
    assert learning.fit([([], 1.0)] * 200).predict([]) > 0.9


def _log_loss(model: learning.OutcomeModel, rows) -> float:
    return -sum(
        t * math.log(model.predict(b)) + (1 - t) * math.log(1 - model.predict(b)) for b, t in rows
    ) / len(rows)


def _separation(model: learning.OutcomeModel, rows) -> float:
    easy = [model.predict(b) for b, t in rows if t == 1.0]
    hard = [model.predict(b) for b, t in rows if t == 0.0]
    return sum(easy) / len(easy) - sum(hard) / len(hard)


def test_rebuilding_from_the_same_window_gives_the_same_model():
    window = _synthetic(11, 150)
    first, second = learning.fit(window, passes=3), learning.fit(list(window), passes=3)
    assert first.to_bytes() == second.to_bytes()
    # Each outcome counts once in the usual rate, whatever the passes.
    assert first.samples == 150 and first.successes == sum(t for _, t in window)


def test_more_passes_fit_a_small_noisy_window_better_and_still_generalise():
    rng = random.Random(12)
    # 60 outcomes, 20% of them flipped: one pass cannot take all of it in.
    window = [(b, t if rng.random() > 0.2 else 1 - t) for b, t in _synthetic(13, 60)]
    held_out = _synthetic(14, 200)
    one, three = learning.fit(window, passes=1), learning.fit(window, passes=3)
    assert _log_loss(three, window) < _log_loss(one, window) - 0.02
    # ... and the extra passes learned the topic, not the flips: unseen prompts separate better.
    assert _separation(three, held_out) > _separation(one, held_out) + 0.05 > 0.1


def test_ratings_are_fitted_as_fractions():
    rows = [(learning.features("rate this answer"), 0.75)] * 300
    assert learning.fit(rows).predict(learning.features("rate this answer")) == pytest.approx(0.75, abs=0.03)


def test_serialisation_round_trips_exactly():
    model = learning.fit(_synthetic(3, 100))

    restored = learning.OutcomeModel.from_bytes(model.to_bytes())

    assert (restored.samples, restored.successes, restored.bias) == (
        model.samples,
        model.successes,
        model.bias,
    )
    for buckets, _ in _synthetic(4, 20):
        assert restored.predict(buckets) == model.predict(buckets)
    assert len(model.to_bytes()) < 100_000  # sparse weights compress


def test_garbage_is_not_read_as_a_model():
    with pytest.raises(ValueError):
        learning.OutcomeModel.from_bytes(b"XXXXX" + bytes(40))


def test_hashing_is_deterministic_across_processes():
    text = "Which clause of the statute governs tort liability?"
    code = f"from selection.learning import features; print(features({text!r}))"
    # A fresh interpreter has a different hash() salt: the features must not change.
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == str(learning.features(text))
    assert learning.features(text) == sorted(set(learning.features(text)))
    assert learning.features("Tort LIABILITY") == learning.features("tort liability")


def test_the_request_text_is_the_user_turns_only():
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image_url"}]},
    ]
    assert learning.request_text(messages) == "first question\nsecond"


@pytest.mark.parametrize(
    ("outcome", "rating", "target"),
    [
        ("success", None, 1.0),
        ("failure", None, 0.0),
        ("", 5, 1.0),
        ("", 1, 0.0),
        ("success", 3, 0.75),
        ("", None, None),
    ],
)
def test_reported_outcomes_become_targets(outcome, rating, target):
    assert learning.target_for(outcome, rating) == target


def test_estimates_need_enough_outcomes():
    trained, fresh = learning.fit(_synthetic(5, learning.MIN_SAMPLES)), learning.OutcomeModel()
    found = learning.estimates({"a": trained, "b": fresh}, learning.features("a tax statute"))
    assert set(found) == {"a"} and found["a"] < -0.1


def test_exploration_draw_is_fixed_by_the_request_id_and_uniform_enough():
    assert learning.exploration_draw("req-1") == learning.exploration_draw("req-1")
    draws = [learning.exploration_draw(f"req-{i}") for i in range(4000)]
    assert 0.03 < sum(d < 0.05 for d in draws) / len(draws) < 0.07


def test_prediction_is_fast():
    model = learning.OutcomeModel()
    buckets = learning.features(" ".join(f"word{i}" for i in range(60)))
    started = time.perf_counter()
    for _ in range(2000):
        model.predict(buckets)
    assert (time.perf_counter() - started) / 2000 < 50e-6


# --- the engine: a learned estimate moves effective quality per request ---------------------------


def _candidate(model_id: str, quality: int, price: str) -> Candidate:
    return engine_candidate(model_id, quality, price)


def _rank(learned: dict[str, float] | None, requirement: int = 70):
    return rank(
        [_candidate("strong", 90, "24.7"), _candidate("cheap", 75, "0.24")],
        task_type="chat",
        requirement=requirement,
        strategy=Strategy.BALANCED,
        budget_factor=0.0,
        constraints=Constraints(),
        request_tokens=2000,
        learned=learned,
    )


def test_a_prompt_the_cheap_model_is_predicted_to_fail_goes_to_the_strong_one():
    assert _rank(None).chosen.id == "cheap"
    ranking = _rank({"strong": 0.0, "cheap": -0.1})
    assert ranking.chosen.id == "strong"
    cheap = next(s for s in ranking.ranked if s.id == "cheap")
    assert cheap.learned_shift == round(-0.1 * LEARNED_QUALITY_SPAN)
    assert cheap.effective_quality == 75 + cheap.learned_shift and cheap.learned == -0.1


def test_the_shift_is_relative_to_the_strongest_learned_model():
    both_hard = learned_shifts(
        [_candidate("strong", 90, "24.7"), _candidate("cheap", 75, "0.24")],
        "chat",
        {"strong": -0.2, "cheap": -0.2},
    )
    assert both_hard == {"strong": 0, "cheap": 0}
    # Only the cheap model has an estimate: it is judged against its own usual rate.
    alone = learned_shifts(
        [_candidate("strong", 90, "24.7"), _candidate("cheap", 75, "0.24")], "chat", {"cheap": 0.01}
    )
    assert alone == {"cheap": round(0.01 * LEARNED_QUALITY_SPAN)}
    assert _rank({"strong": -0.2, "cheap": -0.2}).chosen.id == "cheap"


def test_a_lone_estimate_for_the_strongest_model_does_not_send_hard_prompts_down():
    """Only the strong model has enough outcomes yet (the cheap one is rarely chosen): a prompt it
    finds harder than usual must not lower it under the cheap one."""
    pair = [_candidate("strong", 90, "24.7"), _candidate("cheap", 75, "0.24")]
    assert learned_shifts(pair, "chat", {"strong": -0.3}) == {"strong": 0}
    for requirement in (70, 80, 95):
        without, alone = _rank(None, requirement), _rank({"strong": -0.3}, requirement)
        assert alone.chosen.id == without.chosen.id
