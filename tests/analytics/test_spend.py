"""Spend selectors: totals, breakdowns and trends, checked against figures computed by hand.

Ledger (Acme, August 2025, UTC):
  r1 alpha/bob   gpt-4o          openai    1000/200 tokens 0.30 summarization [a, b] success Aug 4 10:00
  r2 alpha/alice gpt-4o-mini     openai     500/100 tokens 0.10 summarization [a]    failure Aug 4 23:30
  r3 beta/carol  claude-sonnet-4 anthropic 2000/300 tokens 0.50 code          []     success Aug 12 09:00
  r4 Globex      gpt-4o          openai                    9.99 (never visible to Acme)
"""

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from analytics.spend import SpendQuery, spend_breakdown, spend_summary, spend_trend
from budgets.principals import principal_for_user
from costswitch.errors import NotFound, ValidationFailed
from tests.analytics.cost_factories import usage
from tests.analytics.factories import budgets_for, registry

SINCE = datetime(2025, 8, 1, tzinfo=UTC)
UNTIL = datetime(2025, 9, 1, tzinfo=UTC)
AUGUST = SpendQuery(since=SINCE, until=UNTIL)


@pytest.fixture
def ledger(world):
    registry()
    budgets_for(world.org, world.alpha, world.beta)
    at = datetime(2025, 8, 4, 10, tzinfo=UTC)
    usage(
        world.org,
        "r1",
        "0.30",
        at=at,
        team=world.alpha,
        user=world.bob,
        model="gpt-4o",
        provider="openai",
        input_tokens=1000,
        output_tokens=200,
        task_type="summarization",
        tags=["a", "b"],
        outcome="success",
        project="wiki",
        agent="summarizer",
        conversation_id="c1",
    )
    usage(
        world.org,
        "r2",
        "0.10",
        at=datetime(2025, 8, 4, 23, 30, tzinfo=UTC),
        team=world.alpha,
        user=world.alice,
        model="gpt-4o-mini",
        provider="openai",
        input_tokens=500,
        output_tokens=100,
        task_type="summarization",
        tags=["a"],
        outcome="failure",
        project="wiki",
        conversation_id="c1",
    )
    usage(
        world.org,
        "r3",
        "0.50",
        at=datetime(2025, 8, 12, 9, tzinfo=UTC),
        team=world.beta,
        user=world.carol,
        model="claude-sonnet-4",
        provider="anthropic",
        input_tokens=2000,
        output_tokens=300,
        task_type="code",
        outcome="success",
    )
    usage(world.other_org, "r4", "9.99", at=at, team=world.other_team, model="gpt-4o", provider="openai")
    return world


def test_finance_sees_the_whole_organization(ledger):
    figures = spend_summary(principal=principal_for_user(ledger.fiona), query=AUGUST)
    assert figures == {
        "requests": 3,
        "successes": 2,
        "failures": 1,
        "input_tokens": 3500,
        "output_tokens": 600,
        "cost": Decimal("0.90"),
        "average_cost_per_request": Decimal("0.300000000"),
        "cost_per_successful_request": Decimal("0.450000000"),
    }


def test_a_team_lead_sees_only_her_team(ledger):
    figures = spend_summary(principal=principal_for_user(ledger.alice), query=AUGUST)
    assert (figures["requests"], figures["cost"]) == (2, Decimal("0.40"))
    assert figures["average_cost_per_request"] == Decimal("0.2")
    assert figures["cost_per_successful_request"] == Decimal("0.4")


def test_a_member_of_another_team_sees_only_hers(ledger):
    figures = spend_summary(principal=principal_for_user(ledger.carol), query=AUGUST)
    assert (figures["requests"], figures["cost"]) == (1, Decimal("0.50"))


def test_another_organization_sees_none_of_it(ledger):
    figures = spend_summary(principal=principal_for_user(ledger.omar), query=AUGUST)
    assert (figures["requests"], figures["cost"]) == (1, Decimal("9.99"))


def test_a_scope_outside_the_callers_view_does_not_exist(ledger):
    alice = principal_for_user(ledger.alice)
    with pytest.raises(NotFound):
        spend_summary(principal=alice, query=SpendQuery(SINCE, UNTIL, "team", ledger.beta.pk))
    with pytest.raises(NotFound):
        spend_summary(principal=alice, query=SpendQuery(SINCE, UNTIL, "organization", ledger.org.pk))
    omar = principal_for_user(ledger.omar)
    with pytest.raises(NotFound):
        spend_summary(principal=omar, query=SpendQuery(SINCE, UNTIL, "team", ledger.alpha.pk))


def test_finance_narrows_to_a_user(ledger):
    query = SpendQuery(SINCE, UNTIL, "user", ledger.bob.pk)
    figures = spend_summary(principal=principal_for_user(ledger.fiona), query=query)
    assert (figures["requests"], figures["cost"], figures["input_tokens"]) == (1, Decimal("0.30"), 1000)


def test_the_range_is_half_open(ledger):
    query = SpendQuery(SINCE, datetime(2025, 8, 4, 10, tzinfo=UTC))
    assert spend_summary(principal=principal_for_user(ledger.fiona), query=query)["requests"] == 0
    with pytest.raises(ValidationFailed):
        spend_summary(principal=principal_for_user(ledger.fiona), query=SpendQuery(UNTIL, SINCE))


def _rows(rows, *fields):
    return [tuple(row[f] for f in fields) for row in rows]


def test_breakdown_by_model_is_dearest_first(ledger):
    rows = spend_breakdown(principal=principal_for_user(ledger.fiona), query=AUGUST, group_by="model")
    assert _rows(rows, "key", "requests", "cost", "input_tokens", "output_tokens") == [
        ("claude-sonnet-4", 1, Decimal("0.50"), 2000, 300),
        ("gpt-4o", 1, Decimal("0.30"), 1000, 200),
        ("gpt-4o-mini", 1, Decimal("0.10"), 500, 100),
    ]


def test_breakdown_by_provider(ledger):
    rows = spend_breakdown(principal=principal_for_user(ledger.fiona), query=AUGUST, group_by="provider")
    assert _rows(rows, "key", "requests", "successes", "cost", "average_cost_per_request") == [
        ("anthropic", 1, 1, Decimal("0.50"), Decimal("0.5")),
        ("openai", 2, 1, Decimal("0.40"), Decimal("0.2")),
    ]


def test_breakdown_by_team_and_user_names_them(ledger):
    fiona = principal_for_user(ledger.fiona)
    teams = spend_breakdown(principal=fiona, query=AUGUST, group_by="team")
    assert _rows(teams, "key", "label", "cost") == [
        (ledger.beta.pk, "Beta", Decimal("0.50")),
        (ledger.alpha.pk, "Alpha", Decimal("0.40")),
    ]
    users = spend_breakdown(principal=fiona, query=AUGUST, group_by="user")
    assert _rows(users, "label", "cost") == [
        ("carol", Decimal("0.50")),
        ("bob", Decimal("0.30")),
        ("alice", Decimal("0.10")),
    ]


def test_breakdown_by_tag_counts_a_record_under_each_tag(ledger):
    rows = spend_breakdown(principal=principal_for_user(ledger.fiona), query=AUGUST, group_by="tag")
    assert _rows(rows, "key", "requests", "successes", "failures", "cost", "input_tokens") == [
        ("a", 2, 1, 1, Decimal("0.40"), 1500),
        ("b", 1, 1, 0, Decimal("0.30"), 1000),
    ]


def test_breakdown_by_task_project_agent_and_conversation(ledger):
    fiona = principal_for_user(ledger.fiona)
    by = {
        g: spend_breakdown(principal=fiona, query=AUGUST, group_by=g)
        for g in ("task_type", "project", "agent", "conversation")
    }
    assert _rows(by["task_type"], "key", "requests", "cost", "cost_per_successful_request") == [
        ("code", 1, Decimal("0.50"), Decimal("0.5")),
        ("summarization", 2, Decimal("0.40"), Decimal("0.4")),
    ]
    assert _rows(by["project"], "key", "cost") == [("", Decimal("0.50")), ("wiki", Decimal("0.40"))]
    assert _rows(by["agent"], "key", "cost") == [("", Decimal("0.60")), ("summarizer", Decimal("0.30"))]
    assert _rows(by["conversation"], "key", "requests", "cost") == [
        ("", 1, Decimal("0.50")),
        ("c1", 2, Decimal("0.40")),
    ]


def test_a_lead_breakdown_lists_only_her_team(ledger):
    rows = spend_breakdown(principal=principal_for_user(ledger.alice), query=AUGUST, group_by="team")
    assert _rows(rows, "label", "cost") == [("Alpha", Decimal("0.40"))]


def test_unknown_grouping_is_refused(ledger):
    with pytest.raises(ValidationFailed):
        spend_breakdown(principal=principal_for_user(ledger.fiona), query=AUGUST, group_by="colour")


def test_daily_trend_has_every_day_with_zeros(ledger):
    query = SpendQuery(datetime(2025, 8, 3, tzinfo=UTC), datetime(2025, 8, 13, tzinfo=UTC))
    rows = spend_trend(principal=principal_for_user(ledger.fiona), query=query, interval="day")
    assert [row["period_start"] for row in rows] == [date(2025, 8, d) for d in range(3, 13)]
    costs = {row["period_start"].day: (row["requests"], row["cost"]) for row in rows}
    assert costs[4] == (2, Decimal("0.40"))
    assert costs[12] == (1, Decimal("0.50"))
    assert sum(count for count, _ in costs.values()) == 3
    assert costs[5] == (0, Decimal(0))


def test_weekly_and_monthly_trends(ledger):
    fiona = principal_for_user(ledger.fiona)
    weeks = spend_trend(principal=fiona, query=AUGUST, interval="week")
    # 2025-08-01 is a Friday: the first bucket is the ISO week starting Monday July 28.
    assert _rows(weeks, "period_start", "cost") == [
        (date(2025, 7, 28), Decimal(0)),
        (date(2025, 8, 4), Decimal("0.40")),
        (date(2025, 8, 11), Decimal("0.50")),
        (date(2025, 8, 18), Decimal(0)),
        (date(2025, 8, 25), Decimal(0)),
    ]
    months = spend_trend(
        principal=fiona, query=SpendQuery(SINCE, datetime(2025, 10, 1, tzinfo=UTC)), interval="month"
    )
    assert _rows(months, "period_start", "requests", "cost") == [
        (date(2025, 8, 1), 3, Decimal("0.90")),
        (date(2025, 9, 1), 0, Decimal(0)),
    ]


def test_trend_buckets_follow_the_organization_time_zone(ledger):
    ledger.org.timezone = "Europe/Berlin"
    ledger.org.save()
    fiona = principal_for_user(ledger.fiona)
    query = SpendQuery(datetime(2025, 8, 4, tzinfo=UTC), datetime(2025, 8, 6, tzinfo=UTC))
    rows = spend_trend(principal=fiona, query=query, interval="day")
    # r2 at 23:30 UTC is 01:30 on the 5th in Berlin.
    by_day = {row["period_start"]: (row["requests"], row["cost"]) for row in rows}
    assert by_day[date(2025, 8, 4)] == (1, Decimal("0.30"))
    assert by_day[date(2025, 8, 5)] == (1, Decimal("0.10"))
    assert rows[0]["starts_at"] == datetime(2025, 8, 4, tzinfo=fiona.organization.tzinfo)
