"""Budget forecasts against synthetic series whose answers are known."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from analytics.forecast import budget_forecast, forecasts_for_principal, project
from budgets.principals import principal_for_user
from budgets.selectors import budget_status
from costswitch.errors import NotFound
from costswitch.money import quantize_money
from tests.analytics.cost_factories import usage
from tests.budgets.factories import BudgetFactory, team_budget

MONDAY = date(2025, 8, 4)


def _series(first: date, days: int, amount) -> dict[date, Decimal]:
    return {first + timedelta(days=n): Decimal(amount(first + timedelta(days=n))) for n in range(days)}


def test_a_constant_series_projects_exactly_and_names_the_day():
    history = _series(MONDAY, 28, lambda d: 10)
    today = MONDAY + timedelta(days=28)
    result = project(
        history=history,
        first_day=MONDAY,
        today=today,
        fraction_left_today=Decimal(1),
        end_day=today + timedelta(days=10),
        spent=Decimal(100),
        limit=Decimal(150),
    )
    assert result.method == "weekday_seasonal"
    assert result.daily_mean == Decimal(10)
    assert result.sigma == 0
    # 10 days at 10 a day on top of 100 spent.
    assert result.projected_total == result.projected_low == result.projected_high == Decimal(200)
    # 50 left = 5 days: today (a whole day left) and the 4 after it.
    assert result.limit_reached_on == today + timedelta(days=4)
    assert result.limit_reached_earliest == result.limit_reached_latest == result.limit_reached_on


def test_weekends_are_not_projected_as_weekdays():
    history = _series(MONDAY, 32, lambda d: 10 if d.weekday() < 5 else 2)
    friday = MONDAY + timedelta(days=32)
    assert friday.weekday() == 4
    result = project(
        history=history,
        first_day=MONDAY,
        today=friday,
        fraction_left_today=Decimal(1),
        end_day=friday + timedelta(days=3),
        spent=Decimal(0),
        limit=Decimal(1000),
    )
    assert result.weekday_expected == [Decimal(10)] * 5 + [Decimal(2)] * 2
    # Friday 10 + Saturday 2 + Sunday 2 (a flat 58/7 a day would say 24.86).
    assert result.projected_total == Decimal(14)
    assert result.limit_reached_on is None
    assert [amount for _, amount in result.daily_expected] == [Decimal(10), Decimal(2), Decimal(2)]


def test_the_interval_widens_with_the_spread_of_the_days():
    # Two weeks; Mondays spent 8 then 12, every other day 5: residuals +-2 on two days, 7 weekday
    # means estimated from 14 days, so sigma = sqrt(8 / 7).
    history = _series(MONDAY, 14, lambda d: 5)
    history[MONDAY] = Decimal(8)
    history[MONDAY + timedelta(days=7)] = Decimal(12)
    today = MONDAY + timedelta(days=14)  # a Monday, with nothing of it left
    result = project(
        history=history,
        first_day=MONDAY,
        today=today,
        fraction_left_today=Decimal(0),
        end_day=today + timedelta(days=5),
        spent=Decimal(20),
        limit=Decimal(1000),
    )
    sigma = (Decimal(8) / Decimal(7)).sqrt()
    assert result.sigma == quantize_money(sigma)
    # Tuesday..Friday: 4 full days of 5.
    assert result.projected_total == Decimal(40)
    spread = Decimal("1.96") * sigma * Decimal(4).sqrt()
    assert result.projected_high == quantize_money(Decimal(40) + spread)
    assert result.projected_low == quantize_money(Decimal(40) - spread)
    assert Decimal("4.19") < spread < Decimal("4.20")


def test_without_a_full_day_seen_it_falls_back_to_the_flat_burn_rate():
    result = project(
        history={},
        first_day=MONDAY,
        today=MONDAY,
        fraction_left_today=Decimal("0.5"),
        end_day=MONDAY + timedelta(days=3),
        spent=Decimal(6),
        limit=Decimal(20),
        flat_rate=Decimal(6),
    )
    assert result.method == "flat"
    # Half of today and two full days at 6 a day.
    assert result.projected_total == Decimal(21)
    assert result.limit_reached_on == MONDAY + timedelta(days=2)


def test_an_exhausted_budget_is_reached_today():
    result = project(
        history=_series(MONDAY, 7, lambda d: 1),
        first_day=MONDAY,
        today=MONDAY + timedelta(days=7),
        fraction_left_today=Decimal(1),
        end_day=MONDAY + timedelta(days=8),
        spent=Decimal(30),
        limit=Decimal(30),
    )
    assert result.limit_reached_on == MONDAY + timedelta(days=7)


@pytest.fixture
def spending_team(world):
    """Team alpha: monthly budget of 100; 5 a day on August 1..14 (Aug 1-14, UTC)."""
    budget = team_budget(world.alpha, limit=Decimal("100"), thresholds=[])
    for n in range(14):
        at = datetime(2025, 8, 1, 12, tzinfo=UTC) + timedelta(days=n)
        usage(world.org, f"f{n}", "5", at=at, team=world.alpha, user=world.bob)
    return budget


def test_budget_forecast_from_the_ledger(spending_team):
    now = datetime(2025, 8, 15, tzinfo=UTC)
    forecast = budget_forecast(budget=spending_team, now=now)
    assert forecast["spent"] == Decimal(70)
    assert forecast["observed_days"] == 14
    assert forecast["daily_mean"] == Decimal(5)
    # 17 days left (15th..31st) at 5 a day.
    assert forecast["projected_total"] == Decimal(155)
    assert forecast["will_exceed"] is True
    # 30 left at 5 a day: the 15th..20th.
    assert forecast["limit_reached_on"] == date(2025, 8, 20)
    # The simple burn rate of budget status agrees on a flat series and keeps working.
    status = budget_status(budget=spending_team, now=now)
    assert status.burn_rate == Decimal(5)
    assert status.projected_total == forecast["projected_total"]


def test_forecasts_are_scoped_to_what_the_caller_sees(spending_team, world):
    BudgetFactory(organization=world.org, limit=Decimal("1000"), thresholds=[])
    now = datetime(2025, 8, 15, tzinfo=UTC)
    alice = principal_for_user(world.alice)
    assert [f["budget_id"] for f in forecasts_for_principal(principal=alice, now=now)] == [spending_team.pk]
    fiona = principal_for_user(world.fiona)
    assert len(forecasts_for_principal(principal=fiona, now=now)) == 2
    carol = principal_for_user(world.carol)
    assert forecasts_for_principal(principal=carol, now=now) == []
    with pytest.raises(NotFound):
        forecasts_for_principal(principal=carol, now=now, budget_id=spending_team.pk)
    omar = principal_for_user(world.omar)
    with pytest.raises(NotFound):
        forecasts_for_principal(principal=omar, now=now, scope_type="team", scope_id=world.alpha.pk)
