"""The daily spend rollup: selectors reading whole days from it answer exactly what the ledger alone
answers (time zones, scopes, every grouping, partial days at the edges), builds are idempotent, late
usage is picked up by a rebuild, and the operator command rolls back on --dry-run.

Ledger (Acme in America/New_York, UTC-4 in August 2025), rows spread over Aug 3..Aug 9 local days,
several close to local midnight so a UTC bucketing would put them on the wrong day.
"""

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from analytics.models import DailySpend, DailySpendDay
from analytics.rollup import daily_spend_build
from analytics.spend import GROUP_FIELDS, SpendQuery, spend_breakdown, spend_summary, spend_trend
from analytics.tasks import rollup_spend
from budgets.models import Organization, User
from budgets.principals import Principal, principal_for_api_key, principal_for_user
from budgets.services.ledger import UsageReport, usage_record_many
from tests.analytics.cost_factories import usage
from tests.analytics.factories import budgets_for, registry
from tests.budgets.factories import make_api_key

NY_OFFSET = timedelta(hours=4)
LATER = datetime(2025, 9, 2, tzinfo=UTC)  # "now" for the builds: every August day has ended
MODELS = [("gpt-4o", "openai"), ("gpt-4o-mini", "openai"), ("claude-sonnet-4", "anthropic")]


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A New York wall-clock moment of August 2025, as UTC."""
    return datetime(2025, 8, day, hour, minute, tzinfo=UTC) + NY_OFFSET


@pytest.fixture
def acme(world):
    Organization.objects.filter(pk=world.org.pk).update(timezone="America/New_York")
    world.org.refresh_from_db()
    registry()
    budgets_for(world.org, world.alpha, world.beta)
    key = make_api_key(team=world.beta)
    key = key[0] if isinstance(key, tuple) else key
    people = [(world.alpha, world.bob), (world.alpha, world.alice), (world.beta, world.carol)]
    n = 0
    for day in range(3, 10):
        for hour, minute in ((0, 5), (9, 0), (23, 55)):
            team, user = people[n % 3]
            model, provider = MODELS[n % 3]
            _usage(world, n, team, user, model, provider, day, hour, minute)
            n += 1
    usage(world.other_org, "globex", "9.99", at=local(5, 12), team=world.other_team, model="gpt-4o")
    world.key = key
    return world


def _usage(world, n, team, user, model, provider, day, hour, minute):
    fields = {
        "model": model,
        "provider": provider,
        "input_tokens": 100 + n,
        "output_tokens": 10 + n,
        "task_type": ["code", "chat"][n % 2],
        "project": ["wiki", ""][n % 2],
        "agent": ["", "bot"][n % 2],
        "conversation_id": f"c{n % 4}",
        "tags": [["a"], ["a", "b"], []][n % 3],
        "outcome": ["success", "failure", ""][n % 3],
    }
    return usage(
        world.org, f"r{n}", f"0.{n + 1:02d}", at=local(day, hour, minute), team=team, user=user, **fields
    )


def build(org: Organization, first: int = 1, last: int = 31) -> None:
    daily_spend_build(
        organization=org, first_day=date(2025, 8, first), last_day=date(2025, 8, last), now=LATER
    )


def principals(world) -> dict[str, Principal]:
    return {
        "finance": principal_for_user(world.fiona),
        "lead": principal_for_user(world.alice),
        "member": principal_for_user(world.carol),
        "outsider": principal_for_user(world.omar),
    }


QUERIES = {
    "whole days": SpendQuery(since=local(4, 0), until=local(8, 0)),
    "partial edges": SpendQuery(since=local(3, 9), until=local(8, 23, 56)),
    "utc month": SpendQuery(since=datetime(2025, 8, 1, tzinfo=UTC), until=datetime(2025, 9, 1, tzinfo=UTC)),
    "inside one day": SpendQuery(since=local(5, 1), until=local(5, 23)),
    "team": SpendQuery(since=local(3, 0), until=local(10, 0), scope_type="team", scope_id=None),
}


def both(call, **kwargs):
    return call(**kwargs, rollup=True), call(**kwargs, rollup=False)


def test_rollup_answers_equal_the_ledger_for_every_principal_grouping_and_interval(acme):
    build(acme.org)
    assert DailySpendDay.objects.filter(organization=acme.org).count() == 31
    assert DailySpend.objects.filter(organization=acme.org).exists()
    queries = dict(QUERIES)
    queries["team"] = SpendQuery(
        since=local(3, 0), until=local(10, 0), scope_type="team", scope_id=acme.alpha.pk
    )
    for who, principal in principals(acme).items():
        for name, query in queries.items():
            if name == "team" and who in ("member", "outsider"):
                continue  # not theirs to see: 404 on both paths, covered in test_spend
            with_rollup, ledger = both(spend_summary, principal=principal, query=query)
            assert with_rollup == ledger, (who, name)
            for group_by in GROUP_FIELDS:
                assert both(spend_breakdown, principal=principal, query=query, group_by=group_by)[0] == (
                    spend_breakdown(principal=principal, query=query, group_by=group_by, rollup=False)
                ), (who, name, group_by)
            for interval in ("day", "week", "month"):
                with_rollup, ledger = both(spend_trend, principal=principal, query=query, interval=interval)
                assert with_rollup == ledger, (who, name, interval)


def test_local_days_and_known_figures(acme):
    build(acme.org)
    finance = principal_for_user(acme.fiona)
    # Aug 4 local: rows 3, 4, 5 (00:05, 09:00, 23:55 New York), whatever UTC says.
    day = spend_summary(principal=finance, query=SpendQuery(since=local(4, 0), until=local(5, 0)))
    assert (day["requests"], day["cost"]) == (3, Decimal("0.04") + Decimal("0.05") + Decimal("0.06"))
    row = DailySpendDay.objects.get(organization=acme.org, day=date(2025, 8, 4))
    assert (row.timezone, row.rows) == ("America/New_York", 3)
    assert DailySpend.objects.filter(organization=acme.org, day=date(2025, 8, 4)).count() == 3
    trend = spend_trend(principal=finance, query=QUERIES["whole days"], interval="day")
    assert [(r["period_start"], r["requests"]) for r in trend] == [(date(2025, 8, d), 3) for d in range(4, 8)]
    outsider = spend_summary(principal=principal_for_user(acme.omar), query=QUERIES["utc month"])
    assert (outsider["requests"], outsider["cost"]) == (1, Decimal("9.99"))


def test_an_api_key_sees_only_its_own_rows_from_the_rollup(acme):
    principal = principal_for_api_key(acme.key)
    report = UsageReport(request_id="keyed", cost=Decimal("1.00"), occurred_at=local(6, 12), model="gpt-4o")
    usage_record_many(principal=principal, reports=[report])
    build(acme.org)
    with_rollup, ledger = both(spend_summary, principal=principal, query=QUERIES["utc month"])
    assert with_rollup == ledger
    assert (with_rollup["requests"], with_rollup["cost"]) == (1, Decimal("1.00"))


def test_a_build_is_idempotent_and_late_usage_is_picked_up_by_the_next_rebuild(acme):
    build(acme.org)
    first = sorted(DailySpend.objects.filter(organization=acme.org).values_list("day", "model", "cost"))
    build(acme.org)
    assert (
        sorted(DailySpend.objects.filter(organization=acme.org).values_list("day", "model", "cost")) == first
    )
    finance = principal_for_user(acme.fiona)
    query = QUERIES["whole days"]
    before = spend_summary(principal=finance, query=query)
    # A late settle dated in an already rolled-up day: the rollup lags until the day is rebuilt.
    usage(acme.org, "late", "2.00", at=local(5, 12), team=acme.alpha, model="gpt-4o")
    assert spend_summary(principal=finance, query=query) == before
    assert spend_summary(principal=finance, query=query, rollup=False)["cost"] == before["cost"] + Decimal(
        "2"
    )
    build(acme.org, 5, 5)
    assert spend_summary(principal=finance, query=query) == spend_summary(
        principal=finance, query=query, rollup=False
    )


def test_today_is_never_rolled_up_and_a_changed_time_zone_falls_back_to_the_ledger(acme):
    result = daily_spend_build(
        organization=acme.org, first_day=date(2025, 8, 1), last_day=date(2025, 8, 31), now=local(6, 12)
    )
    assert (result.first_day, result.last_day, result.days) == (date(2025, 8, 1), date(2025, 8, 5), 5)
    assert not DailySpendDay.objects.filter(organization=acme.org, day__gte=date(2025, 8, 6)).exists()
    build(acme.org)
    Organization.objects.filter(pk=acme.org.pk).update(timezone="Asia/Kolkata")
    fiona = principal_for_user(User.objects.get(pk=acme.fiona.pk))
    assert fiona.organization.timezone == "Asia/Kolkata"
    for query in QUERIES.values():
        if query.scope_type:
            continue
        assert spend_summary(principal=fiona, query=query) == spend_summary(
            principal=fiona, query=query, rollup=False
        )
        trend = spend_trend(principal=fiona, query=query, interval="day")
        assert trend == spend_trend(principal=fiona, query=query, interval="day", rollup=False)


def run(*args) -> tuple[str, dict]:
    out = StringIO()
    call_command(*args, stdout=out)
    text = out.getvalue().strip()
    return text, json.loads(text.split(": ", 1)[1] if text.startswith("dry run") else text)


def test_the_command_rebuilds_from_a_date_and_dry_run_changes_nothing(acme):
    text, dry = run("rollup_spend", "--since", "2025-08-01", "--organization", "acme", "--dry-run")
    assert text.startswith("dry run, nothing changed")
    (summary,) = dry["organizations"]
    assert summary["records"] == 21 and summary["firstDay"] == "2025-08-01"
    assert not DailySpendDay.objects.exists()
    _text, done = run("rollup_spend", "--since", "2025-08-01")
    assert {o["organization"]: o["records"] for o in done["organizations"]} == {"acme": 21, "globex": 1}
    assert DailySpend.objects.filter(organization=acme.org).count() == done["organizations"][0]["rows"]
    with pytest.raises(CommandError, match="--since must be a date"):
        run("rollup_spend", "--since", "yesterday")
    with pytest.raises(CommandError, match="Unknown organization"):
        run("rollup_spend", "--organization", "nope")


def test_the_task_rebuilds_the_recent_days(acme):
    rows = rollup_spend.apply(kwargs={"days": 2}).get()
    # The fixture's August days are long over: the last 2 days hold no usage, but are marked.
    assert rows == 0
    assert DailySpendDay.objects.filter(organization=acme.org).count() == 2
