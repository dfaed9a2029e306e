"""Budget alerts: raised by the ledger as thresholds are crossed, by the sweeps for what it could
not see and for forecasts; once per threshold (or forecast) per period, whatever path raises them."""

from datetime import UTC, datetime
from decimal import Decimal
from itertools import count

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from budgets.models import Alert, AlertKind, BudgetPeriod
from budgets.principals import principal_for_api_key, principal_for_user
from budgets.services.alerts import alerts_forecast, alerts_sweep
from budgets.services.budgets import ThresholdSpec, budget_update
from budgets.services.ledger import (
    UsageReport,
    reservation_authorize,
    reservation_release,
    reservation_settle,
    reservations_expire,
    usage_record_many,
)
from budgets.signals import alert_raised
from tests.budgets.factories import BudgetFactory, make_api_key, team_budget
from tests.conftest import client_for

_ids = count()


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def spend(world, amount, *, at: datetime | None = None, team=None) -> None:
    usage_record_many(
        principal=principal_for_user(world.fiona),
        reports=[
            UsageReport(
                request_id=f"alert-spend-{next(_ids)}",
                cost=Decimal(amount),
                model="m",
                occurred_at=at,
                team_id=(team or world.alpha).pk,
            )
        ],
    )


def thresholds(*percents) -> list[ThresholdSpec]:
    return [ThresholdSpec(Decimal(p), ("notify",)) for p in percents]


@pytest.fixture
def announced():
    """The alerts announced through `budgets.signals.alert_raised`, in order."""
    seen: list[Alert] = []

    def receiver(sender, alert, **kwargs):
        seen.append(alert)

    alert_raised.connect(receiver, dispatch_uid="test-alerts")
    yield seen
    alert_raised.disconnect(dispatch_uid="test-alerts")


def alert_keys(budget) -> list[tuple[str, Decimal | None]]:
    return list(Alert.objects.filter(budget=budget).order_by("pk").values_list("kind", "threshold"))


def test_a_reservation_crossing_a_threshold_raises_one_alert_and_announces_it_on_commit(
    world, announced, django_capture_on_commit_callbacks
):
    budget = team_budget(world.alpha, limit=Decimal("100"), thresholds=thresholds(50, 80))
    principal = principal_for_api_key(make_api_key(team=world.alpha)[0])

    with django_capture_on_commit_callbacks(execute=True):
        reservation_authorize(principal=principal, request_id="r1", amount=Decimal("49.99"))
    assert alert_keys(budget) == []
    with django_capture_on_commit_callbacks(execute=True):
        second = reservation_authorize(principal=principal, request_id="r2", amount=Decimal("0.01"))

    [alert] = Alert.objects.filter(budget=budget)
    assert (alert.kind, alert.threshold, alert.percent_used) == ("threshold", Decimal(50), Decimal(50))
    assert alert.period == BudgetPeriod.objects.get(budget=budget)
    assert "50% of its limit" in alert.message
    assert alert.data["actions"] == ["notify"]
    assert announced == [alert]

    # Falling back below and crossing again in the same period raises nothing new.
    reservation_release(principal=principal, reservation_id=second.reservation.pk)
    with django_capture_on_commit_callbacks(execute=True):
        reservation_authorize(principal=principal, request_id="r3", amount=Decimal("0.02"))
    assert alert_keys(budget) == [("threshold", Decimal(50))]
    assert len(announced) == 1


def test_usage_crossing_several_thresholds_raises_each_once_and_the_limit_is_exhausted(world):
    budget = team_budget(world.alpha, limit=Decimal("100"))  # the default 50/70/85/95/100

    spend(world, "72")
    assert alert_keys(budget) == [("threshold", Decimal(50)), ("threshold", Decimal(70))]
    spend(world, "40")  # past the limit: usage is always recorded

    assert alert_keys(budget) == [
        ("threshold", Decimal(50)),
        ("threshold", Decimal(70)),
        ("threshold", Decimal(85)),
        ("threshold", Decimal(95)),
        ("exhausted", Decimal(100)),  # stands for the 100% threshold: one alert, not two
    ]
    exhausted = Alert.objects.get(budget=budget, kind=AlertKind.EXHAUSTED)
    assert exhausted.percent_used == Decimal(112)
    assert exhausted.data["actions"] == ["notify", "block"]
    assert "exhausted" in exhausted.message


def test_a_settle_above_the_hold_crosses_thresholds_too(world, time_machine):
    budget = team_budget(world.alpha, limit=Decimal("10"), thresholds=thresholds(50))
    principal = principal_for_api_key(make_api_key(team=world.alpha)[0])
    held = reservation_authorize(principal=principal, request_id="s1", amount=Decimal("2")).reservation
    assert alert_keys(budget) == []

    # A late settle after the hold expired still records the spend, and that crosses 50%.
    time_machine.move_to(held.expires_at, tick=False)
    reservations_expire()
    reservation_settle(
        principal=principal, reservation_id=held.pk, report=UsageReport(request_id="", cost=Decimal("6"))
    )
    assert alert_keys(budget) == [("threshold", Decimal(50))]


def test_a_request_that_crosses_nothing_reads_no_thresholds_and_writes_no_alert(world):
    team_budget(world.alpha, limit=Decimal("1000"))
    BudgetFactory(organization=world.org, limit=Decimal("1000"))
    principal = principal_for_api_key(make_api_key(team=world.alpha)[0])
    reservation_authorize(principal=principal, request_id="warm", amount=Decimal("1"))  # opens periods

    with CaptureQueriesContext(connection) as queries:
        reservation_authorize(principal=principal, request_id="cold", amount=Decimal("1"))

    sql = [q["sql"] for q in queries.captured_queries]
    # The next threshold rides along in the period lock (a subquery); nothing else reads thresholds.
    assert not [s for s in sql if s.lstrip().startswith('SELECT "budgets_threshold"')], sql
    assert not [s for s in sql if "budgets_alert" in s], sql
    assert sum("budgets_threshold" in s for s in sql) == 1


def test_the_sweep_raises_thresholds_the_ledger_could_not_see_once(
    world, announced, django_capture_on_commit_callbacks
):
    budget = team_budget(world.alpha, limit=Decimal("100"), thresholds=thresholds(90))
    spend(world, "60")
    assert alert_keys(budget) == []
    # The owners add a 50% threshold afterwards: no spend crosses it, the sweep sees it.
    budget_update(principal=principal_for_user(world.fiona), budget=budget, thresholds=thresholds(50, 90))

    with django_capture_on_commit_callbacks(execute=True):
        first = alerts_sweep()
        second = alerts_sweep()

    assert (first.threshold, second.threshold) == (1, 0)
    assert alert_keys(budget) == [("threshold", Decimal(50))]
    assert [a.threshold for a in announced] == [Decimal(50)]


def test_the_raise_alerts_command_dry_run_changes_nothing_and_a_real_run_raises_once(world, capsys):
    budget = team_budget(world.alpha, limit=Decimal("100"), thresholds=thresholds(90))
    spend(world, "95")
    Alert.objects.filter(budget=budget).delete()  # as if the request path had missed it

    call_command("raise_alerts", "--dry-run")
    out = capsys.readouterr().out
    assert out.startswith("dry run, nothing changed") and '"threshold_alerts": 1' in out
    assert alert_keys(budget) == []

    call_command("raise_alerts", "--only", "thresholds")
    assert '"threshold_alerts": 1' in capsys.readouterr().out
    call_command("raise_alerts", "--only", "thresholds")
    assert '"threshold_alerts": 0' in capsys.readouterr().out
    assert alert_keys(budget) == [("threshold", Decimal(90))]


def test_a_forecast_alert_names_the_day_the_limit_is_reached_once_per_period(world, time_machine):
    # Monthly budget; 60 spent in the first 10 days of June: 6 a day reaches 100 on day 16.67.
    budget = team_budget(world.alpha, limit=Decimal("100"), thresholds=thresholds(90))
    spend(world, "60", at=utc(2026, 6, 3))
    now = utc(2026, 6, 11)

    first = alerts_forecast(now=now)
    second = alerts_forecast(now=now)

    assert (first.forecast, second.forecast) == (1, 0)
    [alert] = Alert.objects.filter(budget=budget, kind=AlertKind.FORECAST)
    assert alert.threshold is None
    assert alert.data["burn_rate"] == "6.000000000"
    assert alert.data["limit_reached_at"].startswith("2026-06-17T16:00")
    assert "on 2026-06-17" in alert.message


def test_a_budget_on_track_gets_no_forecast_alert(world):
    budget = team_budget(world.alpha, limit=Decimal("100"), thresholds=[])
    spend(world, "20", at=utc(2026, 6, 3))  # 2 a day: 60 by the end of June

    assert alerts_forecast(now=utc(2026, 6, 11)).forecast == 0
    assert not Alert.objects.filter(budget=budget).exists()


def test_the_alerts_api_lists_visible_alerts_and_lets_owners_acknowledge(world):
    alpha = team_budget(world.alpha, limit=Decimal("100"), thresholds=thresholds(50))
    beta = team_budget(world.beta, limit=Decimal("100"), thresholds=thresholds(50))
    spend(world, "60")
    spend(world, "60", team=world.beta)
    alpha_alert = Alert.objects.get(budget=alpha)

    listed = client_for(world.alice).get("/api/v1/alerts").json()
    assert [a["budgetId"] for a in listed["results"]] == [alpha.pk]
    assert listed["results"][0]["kind"] == "threshold"
    assert listed["results"][0]["threshold"] == 50
    assert listed["results"][0]["acknowledged"] is False
    assert {a["budgetId"] for a in client_for(world.fiona).get("/api/v1/alerts").json()["results"]} == {
        alpha.pk,
        beta.pk,
    }

    # A read-only member sees it but may not acknowledge it; another organization does not see it.
    assert client_for(world.bob).post(f"/api/v1/alerts/{alpha_alert.pk}/acknowledge").status_code == 403
    assert client_for(world.carol).post(f"/api/v1/alerts/{alpha_alert.pk}/acknowledge").status_code == 404
    assert client_for(world.omar).post(f"/api/v1/alerts/{alpha_alert.pk}/acknowledge").status_code == 404

    response = client_for(world.alice).post(f"/api/v1/alerts/{alpha_alert.pk}/acknowledge")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["acknowledged"], body["acknowledgedBy"]) == (True, "alice")
    again = client_for(world.fiona).post(f"/api/v1/alerts/{alpha_alert.pk}/acknowledge").json()
    assert (again["acknowledgedBy"], again["acknowledgedAt"]) == ("alice", body["acknowledgedAt"])

    fiona = client_for(world.fiona)
    assert [a["id"] for a in fiona.get("/api/v1/alerts?acknowledged=false").json()["results"]] == [
        Alert.objects.get(budget=beta).pk
    ]
    assert [a["id"] for a in fiona.get(f"/api/v1/alerts?budget={alpha.pk}").json()["results"]] == [
        alpha_alert.pk
    ]
    bad = fiona.get("/api/v1/alerts?kind=nonsense")
    assert bad.status_code == 400 and bad.json()["code"] == "validation_error"
