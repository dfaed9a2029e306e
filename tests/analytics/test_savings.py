"""Measured savings: baseline (requested or default model at list prices, on the tokens really
used) against what the ledger booked, with success rates of switched and other requests.

Registry (tests/analytics/factories.registry): gpt-4o $2.50/$10, gpt-4o-mini $0.15/$0.60,
claude-sonnet-4 $3/$15 per 1M tokens; the default model is gpt-4o.

  d1 alpha/bob   asked gpt-4o, got mini    1M in / 100k out  actual 0.21   baseline 3.50  success
  d2 alpha/bob   asked nothing, got gpt-4o 200k in / 50k out actual 1.00   baseline 1.00  failure
  d3 beta/carol  asked claude, got mini    100k in / 10k out actual 0.021  baseline 0.45  failure, rated 2
  d4 alpha/bob   asked gpt-4o, got mini    released: nothing spent, not compared
"""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from analytics.savings import savings_report
from analytics.spend import SpendQuery
from budgets.principals import principal_for_user
from costswitch.errors import NotFound, ValidationFailed
from tests.analytics.cost_factories import admitted
from tests.analytics.factories import budgets_for, registry

AUGUST = SpendQuery(datetime(2025, 8, 1, tzinfo=UTC), datetime(2025, 9, 1, tzinfo=UTC))


@pytest.fixture
def decisions(world):
    registry()
    budgets_for(world.org, world.alpha, world.beta)
    admitted(
        world.org,
        "d1",
        requested="gpt-4o",
        selected="gpt-4o-mini",
        team=world.alpha,
        user=world.bob,
        at=datetime(2025, 8, 4, tzinfo=UTC),
        estimated="0.25",
        baseline_estimate="4",
        settle={"cost": "0.21", "input_tokens": 1_000_000, "output_tokens": 100_000, "outcome": "success"},
    )
    admitted(
        world.org,
        "d2",
        requested="",
        selected="gpt-4o",
        team=world.alpha,
        user=world.bob,
        at=datetime(2025, 8, 5, tzinfo=UTC),
        estimated="1",
        baseline_estimate="1",
        settle={"cost": "1.00", "input_tokens": 200_000, "output_tokens": 50_000, "outcome": "failure"},
    )
    admitted(
        world.org,
        "d3",
        requested="claude-sonnet-4",
        selected="gpt-4o-mini",
        team=world.beta,
        user=world.carol,
        at=datetime(2025, 8, 20, tzinfo=UTC),
        estimated="0.03",
        baseline_estimate="0.5",
        settle={
            "cost": "0.021",
            "input_tokens": 100_000,
            "output_tokens": 10_000,
            "outcome": "failure",
            "rating": 2,
        },
    )
    admitted(
        world.org,
        "d4",
        requested="gpt-4o",
        selected="gpt-4o-mini",
        team=world.alpha,
        user=world.bob,
        at=datetime(2025, 8, 6, tzinfo=UTC),
        settle=None,
    )
    return world


def test_totals_compare_settled_requests_with_their_baseline(decisions):
    report = savings_report(principal=principal_for_user(decisions.fiona), query=AUGUST)
    assert report["admitted"] == 4
    assert report["compared"] == 3
    assert report["actual_cost"] == Decimal("1.231")
    assert report["baseline_cost"] == Decimal("4.95")
    assert report["savings"] == Decimal("3.719")
    # 3.719 / 4.95 = 75.13%; two of three compared requests switched.
    assert report["savings_percent"] == Decimal("75.13")
    assert report["downgraded_share"] == Decimal("66.66")


def test_quality_is_reported_for_switched_and_other_requests(decisions):
    report = savings_report(principal=principal_for_user(decisions.fiona), query=AUGUST)
    down, kept = report["downgraded"], report["not_downgraded"]
    assert (down["requests"], down["judged"], down["successes"], down["success_rate"]) == (
        2,
        2,
        1,
        Decimal("50.00"),
    )
    assert down["mean_rating"] == Decimal("2.00")
    assert (down["actual_cost"], down["baseline_cost"], down["savings"]) == (
        Decimal("0.231"),
        Decimal("3.95"),
        Decimal("3.719"),
    )
    assert (kept["requests"], kept["successes"], kept["success_rate"], kept["savings"]) == (
        1,
        0,
        Decimal("0.00"),
        Decimal(0),
    )
    assert report["headline"] == (
        "75.13% cheaper than the requested models (66.66% of requests switched to a different model), "
        "at a 50.00% success rate on switched requests vs 0.00% on the others."
    )


def test_the_explainer_estimate_comes_alongside(decisions):
    estimated = savings_report(principal=principal_for_user(decisions.fiona), query=AUGUST)["estimated"]
    # Reservation-time estimates: (4 - 0.25) + (1 - 1) + (0.5 - 0.03) + (0 - 0) over 4 decisions.
    assert estimated["compared"] == 4
    assert estimated["total"] == Decimal("4.22")


def test_savings_per_team_and_per_model(decisions):
    fiona = principal_for_user(decisions.fiona)
    teams = savings_report(principal=fiona, query=AUGUST, group_by="team")["groups"]
    assert [(g["label"], g["compared"], g["savings"]) for g in teams] == [
        ("Alpha", 2, Decimal("3.29")),
        ("Beta", 1, Decimal("0.429")),
    ]
    models = savings_report(principal=fiona, query=AUGUST, group_by="baseline_model")["groups"]
    assert [(g["key"], g["admitted"], g["savings"]) for g in models] == [
        ("gpt-4o", 3, Decimal("3.29")),
        ("claude-sonnet-4", 1, Decimal("0.429")),
    ]


def test_series_per_week(decisions):
    report = savings_report(principal=principal_for_user(decisions.fiona), query=AUGUST, interval="week")
    weeks = {row["period_start"]: (row["admitted"], row["savings"]) for row in report["series"]}
    assert weeks[date(2025, 8, 4)] == (3, Decimal("3.29"))
    assert weeks[date(2025, 8, 18)] == (1, Decimal("0.429"))
    assert weeks[date(2025, 8, 11)] == (0, Decimal(0))


def test_a_team_lead_sees_only_her_team(decisions):
    report = savings_report(principal=principal_for_user(decisions.alice), query=AUGUST)
    assert (report["admitted"], report["compared"], report["savings"]) == (3, 2, Decimal("3.29"))
    with pytest.raises(NotFound):
        savings_report(
            principal=principal_for_user(decisions.alice),
            query=SpendQuery(AUGUST.since, AUGUST.until, "team", decisions.beta.pk),
        )


def test_another_organization_sees_nothing(decisions):
    report = savings_report(principal=principal_for_user(decisions.omar), query=AUGUST)
    assert (report["admitted"], report["compared"], report["savings_percent"]) == (0, 0, None)
    assert report["headline"] == "No settled requests to compare in this range."


def test_bad_grouping_is_refused(decisions):
    with pytest.raises(ValidationFailed):
        savings_report(principal=principal_for_user(decisions.fiona), query=AUGUST, group_by="tag")
