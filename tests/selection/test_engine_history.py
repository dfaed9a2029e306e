"""Reported outcomes move a model's effective quality for the requirement check (selection/engine.py
`effective_quality`), through the same `history_score` production computes from outcome counts."""

from decimal import Decimal

import pytest

from budgets.selectors import OutcomeStats
from selection.choices import Strategy
from selection.engine import HISTORY_QUALITY_SPAN, Candidate, Constraints, effective_quality, rank
from selection.selectors import history_score
from selection.snapshot import ModelSnapshot

TASK = "math"
TOKENS = 1_000


def _model(model_id: str, quality: int, price: str) -> Candidate:
    model = ModelSnapshot(
        id=model_id,
        provider=model_id,
        provider_status="active",
        tokenizer="o200k_base",
        context_window=128_000,
        max_output_tokens=4_000,
        input_price_per_million=Decimal(price),
        output_price_per_million=Decimal(price),
        cached_input_price_per_million=None,
        capabilities=frozenset(),
        quality={TASK: quality},
        mean_quality=float(quality),
        typical_latency_ms=None,
        is_active=True,
        fallbacks=(),
    )
    return Candidate(model, TOKENS, TOKENS, Decimal(price) * 2 * TOKENS / 1_000_000)


def _choose(history: dict[str, float], requirement: int = 70) -> str:
    ranking = rank(
        [_model("strong", 85, "24.7"), _model("weak", 70, "0.24")],
        task_type=TASK,
        requirement=requirement,
        strategy=Strategy.BALANCED,
        budget_factor=0.0,
        constraints=Constraints(),
        request_tokens=2 * TOKENS,
        history=history,
    )
    return ranking.chosen.id


def _score(successes: int, failures: int) -> float:
    return history_score(OutcomeStats(successes + failures, successes, failures, None))


def test_a_cheap_model_that_keeps_failing_a_task_type_stops_meeting_the_requirement():
    assert _choose({}) == "weak"
    assert _choose({"weak": _score(2, 40)}) == "strong"


def test_a_cheap_model_that_keeps_succeeding_starts_to_meet_a_higher_requirement():
    assert _choose({}, requirement=74) == "strong"
    assert _choose({"weak": _score(60, 2)}, requirement=74) == "weak"


def test_a_few_outcomes_barely_move_the_effective_quality():
    # One failure: history_score shrinks it towards 0.5, so the shift rounds to nothing.
    assert effective_quality(70, _score(0, 1)) == 70
    assert _choose({"weak": _score(0, 1)}) == "weak"
    assert effective_quality(70, _score(0, 40)) < effective_quality(70, _score(0, 3)) <= 70


@pytest.mark.parametrize(
    ("history", "expected"),
    [(None, 70), (0.5, 70), (1.0, 70 + HISTORY_QUALITY_SPAN // 2), (0.0, 70 - HISTORY_QUALITY_SPAN // 2)],
)
def test_effective_quality_is_bounded_and_neutral_without_evidence(history, expected):
    assert effective_quality(70, history) == expected


def test_the_ranking_reports_both_the_configured_and_the_effective_quality():
    ranking = rank(
        [_model("weak", 70, "0.24")],
        task_type=TASK,
        requirement=70,
        strategy=Strategy.BALANCED,
        budget_factor=0.0,
        constraints=Constraints(),
        request_tokens=2 * TOKENS,
        history={"weak": _score(0, 40)},
    )
    chosen = ranking.chosen
    assert chosen.quality == 70
    assert chosen.effective_quality < 70
    assert not chosen.meets_requirement and not ranking.requirement_met
