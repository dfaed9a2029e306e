"""Reported outcomes move a model's effective quality for the requirement check (selection/engine.py
`effective_quality`), through the same `history_score` production computes from outcome counts."""

import pytest

from budgets.selectors import OutcomeStats
from selection.choices import Strategy
from selection.engine import HISTORY_QUALITY_SPAN, Candidate, Constraints, effective_quality, rank
from selection.selectors import history_score
from tests.selection.conftest import engine_candidate

TASK = "math"
TOKENS = 1_000


def _model(model_id: str, quality: int, price: str) -> Candidate:
    return engine_candidate(model_id, quality, price, task=TASK, tokens=TOKENS)


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
