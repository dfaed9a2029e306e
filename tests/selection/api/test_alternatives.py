"""Why an alternative was not chosen, as the select answer and the explainer say it."""

from selection.api.serializers import alternatives
from selection.models import Decision


def _candidate(model: str, quality: int, effective: int, *, meets: bool, cost: str) -> dict:
    return {
        "model": model,
        "quality": quality,
        "effective_quality": effective,
        "meets_requirement": meets,
        "estimated_cost": cost,
        "score": 0.5,
    }


def test_a_model_below_the_requirement_after_reported_outcomes_says_so():
    decision = Decision(
        task_type="math",
        quality_requirement=70,
        strategy="balanced",
        candidates=[
            _candidate("strong", 90, 90, meets=True, cost="0.01"),
            _candidate("weak", 72, 64, meets=False, cost="0.001"),
            _candidate("plain", 60, 60, meets=False, cost="0.002"),
        ],
        rejections=[],
    )
    reasons = {a["model_id"]: a["reason"] for a in alternatives(decision)}
    assert reasons["weak"] == (
        "Scores 64 (72 configured, after reported outcomes) on math, below the requirement of 70."
    )
    assert reasons["plain"] == "Scores 60 on math, below the requirement of 70."
