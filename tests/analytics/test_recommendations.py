"""Recommendations, ranked: budgets that will run out first, then cheaper comparable models.

Alpha sent summarization to gpt-4o 4 times out of 5 (1M in / 100k out each, 3.50 a request = 14.00);
gpt-4o-mini scores 78 on summarization against gpt-4o's 80 and would have charged
4M x 0.15 + 400k x 0.60 per 1M = 0.84: 13.16 saved over the 30-day window, so 13.16 a month.
Beta's monthly budget of 100 spends 5 a day from August 1: on the 15th it has 70 spent and reaches
100 on the 20th."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from analytics.recommendations import recommendations_for_principal
from budgets.principals import principal_for_user
from models_registry.models import ModelProfile
from tests.analytics.cost_factories import usage
from tests.analytics.factories import registry
from tests.budgets.factories import team_budget

NOW = datetime(2025, 8, 15, tzinfo=UTC)


@pytest.fixture
def history(world):
    registry()
    ModelProfile.objects.filter(pk="gpt-4o-mini").update(
        quality_scores={"summarization": 78, "code": 60, "chat": 80}
    )
    team_budget(world.beta, name="Beta monthly", limit=Decimal("100"), thresholds=[])
    for n in range(4):
        usage(
            world.org,
            f"s{n}",
            "3.50",
            at=NOW - timedelta(days=n + 1),
            team=world.alpha,
            user=world.bob,
            model="gpt-4o",
            input_tokens=1_000_000,
            output_tokens=100_000,
            task_type="summarization",
            outcome="success",
        )
    usage(
        world.org,
        "s-mini",
        "0.21",
        at=NOW - timedelta(days=2),
        team=world.alpha,
        user=world.bob,
        model="gpt-4o-mini",
        input_tokens=1_000_000,
        output_tokens=100_000,
        task_type="summarization",
        outcome="failure",
    )
    for n in range(14):
        usage(
            world.org,
            f"b{n}",
            "5",
            at=datetime(2025, 8, 1, 12, tzinfo=UTC) + timedelta(days=n),
            team=world.beta,
            user=world.carol,
        )
    return world


def test_finance_gets_both_ranked(history):
    items = recommendations_for_principal(principal=principal_for_user(history.fiona), now=NOW)
    assert [(i["rank"], i["kind"]) for i in items] == [(1, "budget_exhaustion"), (2, "switch_model")]
    budget, switch = items
    assert budget["limit_reached_on"] == date(2025, 8, 20)
    assert budget["projected_overrun"] == Decimal(55)
    assert budget["title"] == (
        "Budget 'Beta monthly' will be exhausted on the 20th (2025-08-20) at the current rate; "
        "projected 155 of 100 USD."
    )
    assert switch["expected_monthly_savings"] == Decimal("13.16")
    assert (switch["current_model"], switch["suggested_model"], switch["share_percent"]) == (
        "gpt-4o",
        "gpt-4o-mini",
        Decimal("80.00"),
    )
    assert switch["quality_impact"] == {
        "current_score": 80,
        "suggested_score": 78,
        "score_difference": -2,
        "current_success_rate": Decimal("100.00"),
        "suggested_success_rate": Decimal("0.00"),
    }
    assert switch["title"] == (
        "Team Alpha sends summarization to gpt-4o 80% of the time; gpt-4o-mini scores within 2 points "
        "(78 vs 80) on summarization: ~$13/month saved"
    )


def test_a_model_too_far_below_is_not_suggested(history):
    ModelProfile.objects.filter(pk="gpt-4o-mini").update(quality_scores={"summarization": 77})
    items = recommendations_for_principal(principal=principal_for_user(history.fiona), now=NOW)
    assert [i["kind"] for i in items] == ["budget_exhaustion"]


def test_each_caller_sees_only_her_scope(history):
    alice = recommendations_for_principal(principal=principal_for_user(history.alice), now=NOW)
    assert [i["kind"] for i in alice] == ["switch_model"]
    carol = recommendations_for_principal(principal=principal_for_user(history.carol), now=NOW)
    assert [i["kind"] for i in carol] == ["budget_exhaustion"]
    assert recommendations_for_principal(principal=principal_for_user(history.omar), now=NOW) == []
