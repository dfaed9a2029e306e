"""Period rollover (`periods_roll_over`) and carry-over, at a month boundary in Europe/Berlin.

April 1st 2026 00:00 in Berlin (summer time, UTC+2) is 2026-03-31T22:00Z: the March period of a
monthly budget ends there and the April period starts.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from budgets.choices import CarryOver, ReservationState
from budgets.models import BudgetPeriod, UsageCharge
from budgets.principals import principal_for_api_key, principal_for_user
from budgets.services.budgets import budget_update
from budgets.services.ledger import (
    UsageReport,
    reservation_authorize,
    reservation_settle,
    usage_record_many,
)
from budgets.services.periods import period_get_or_open, periods_roll_over
from budgets.tasks import roll_over_periods
from tests.budgets.factories import make_api_key, team_budget

BERLIN = ZoneInfo("Europe/Berlin")
MIDNIGHT = datetime(2026, 4, 1, tzinfo=BERLIN)  # 2026-03-31T22:00Z
MARCH_START = datetime(2026, 3, 1, tzinfo=BERLIN)
AFTER_MIDNIGHT = MIDNIGHT + timedelta(minutes=1)


@pytest.fixture
def berlin(world):
    world.org.timezone = "Europe/Berlin"
    world.org.save()
    return world


@pytest.fixture
def alpha_key(berlin):
    api_key, _ = make_api_key(team=berlin.alpha)
    return principal_for_api_key(api_key)


def monthly(team, **kwargs):
    kwargs.setdefault("limit", Decimal("100"))
    kwargs.setdefault("carry_over", CarryOver.UNUSED)
    return team_budget(team, starts_at=datetime(2026, 1, 1, tzinfo=UTC), thresholds=[], **kwargs)


def period_at(budget, moment) -> BudgetPeriod:
    return BudgetPeriod.objects.get(budget=budget, starts_at__lte=moment, ends_at__gt=moment)


def spend(principal, request_id: str, cost: str, occurred_at: datetime) -> None:
    usage_record_many(
        principal=principal,
        reports=[UsageReport(request_id=request_id, cost=Decimal(cost), model="m", occurred_at=occurred_at)],
    )


def march_with_30_spent_and_10_held(principal, time_machine):
    """March: 30 spent, and a 10 hold taken a minute before midnight, still pending at rollover."""
    time_machine.move_to(MIDNIGHT - timedelta(minutes=1), tick=False)
    spend(principal, "march-usage", "30", MARCH_START + timedelta(days=14))
    return reservation_authorize(
        principal=principal, request_id="late-call", amount=Decimal("10"), ttl_seconds=3600
    ).reservation


def test_it_closes_the_ended_period_and_opens_the_next_with_what_was_left(berlin, alpha_key, time_machine):
    budget = monthly(berlin.alpha)
    march_with_30_spent_and_10_held(alpha_key, time_machine)
    time_machine.move_to(AFTER_MIDNIGHT, tick=False)

    summary = periods_roll_over()

    april = period_at(budget, AFTER_MIDNIGHT)
    march = period_at(budget, MIDNIGHT - timedelta(seconds=1))
    assert (summary.closed, summary.opened, summary.carried) == (1, 1, Decimal("60"))
    assert summary.opened_periods == [april.pk]
    # 100 - 30 spent - 10 still held: the hold may yet be settled in March, so it is not carried.
    assert (april.carried_over, april.limit) == (Decimal("60"), Decimal("160"))
    assert (april.starts_at, april.ends_at) == (MIDNIGHT, datetime(2026, 5, 1, tzinfo=BERLIN))
    assert march.closed_at == AFTER_MIDNIGHT
    assert march.ends_at == MIDNIGHT and april.closed_at is None


def test_a_second_run_changes_nothing(berlin, alpha_key, time_machine):
    budget = monthly(berlin.alpha)
    march_with_30_spent_and_10_held(alpha_key, time_machine)
    first = periods_roll_over(now=AFTER_MIDNIGHT)

    again = periods_roll_over(now=AFTER_MIDNIGHT + timedelta(minutes=5))

    assert (first.closed, first.opened) == (1, 1)
    assert (again.closed, again.opened, again.carried) == (0, 0, Decimal("0"))
    assert BudgetPeriod.objects.filter(budget=budget).count() == 2
    assert period_at(budget, MIDNIGHT - timedelta(seconds=1)).closed_at == AFTER_MIDNIGHT


@pytest.mark.parametrize(
    ("policy", "cap", "carried"),
    [
        (CarryOver.UNUSED, None, Decimal("60")),
        (CarryOver.UNUSED, Decimal("25"), Decimal("25")),
        (CarryOver.UNUSED, Decimal("60"), Decimal("60")),
        (CarryOver.UNUSED, Decimal("0"), Decimal("0")),
        (CarryOver.NONE, None, Decimal("0")),
    ],
)
def test_carry_over_follows_the_policy_and_the_cap(berlin, alpha_key, time_machine, policy, cap, carried):
    budget = monthly(berlin.alpha, carry_over=policy, carry_over_cap=cap)
    march_with_30_spent_and_10_held(alpha_key, time_machine)

    periods_roll_over(now=AFTER_MIDNIGHT)

    april = period_at(budget, AFTER_MIDNIGHT)
    assert (april.carried_over, april.limit) == (carried, Decimal("100") + carried)


def test_what_is_left_of_a_carried_amount_rolls_on_up_to_the_cap(berlin, alpha_key, time_machine):
    budget = monthly(berlin.alpha, carry_over_cap=Decimal("80"))
    march_with_30_spent_and_10_held(alpha_key, time_machine)
    periods_roll_over(now=AFTER_MIDNIGHT)
    may_first = datetime(2026, 5, 1, tzinfo=BERLIN)
    time_machine.move_to(may_first + timedelta(minutes=1), tick=False)
    spend(alpha_key, "april-usage", "50", MIDNIGHT + timedelta(days=10))

    summary = periods_roll_over()

    may = period_at(budget, may_first)
    # April: 100 + 60 carried, 50 spent: 110 left, capped at 80.
    assert (summary.closed, summary.opened) == (1, 1)
    assert (may.carried_over, may.limit) == (Decimal("80"), Decimal("180"))


def test_an_overspent_period_carries_nothing(berlin, alpha_key, time_machine):
    budget = monthly(berlin.alpha)
    time_machine.move_to(MIDNIGHT - timedelta(minutes=1), tick=False)
    spend(alpha_key, "big", "130", MARCH_START + timedelta(days=3))  # reported usage may overspend

    periods_roll_over(now=AFTER_MIDNIGHT)

    assert period_at(budget, AFTER_MIDNIGHT).carried_over == 0


@pytest.mark.parametrize("opened_by", ["rollover", "request"])
def test_the_request_path_opens_the_period_with_the_same_carry_over(
    berlin, alpha_key, time_machine, opened_by
):
    budget = monthly(berlin.alpha, carry_over_cap=Decimal("55"))
    march_with_30_spent_and_10_held(alpha_key, time_machine)
    time_machine.move_to(AFTER_MIDNIGHT, tick=False)

    if opened_by == "rollover":
        periods_roll_over()
    else:  # the first call of the month, before any rollover ran
        reservation_authorize(principal=alpha_key, request_id="april-call", amount=Decimal("150"))

    april = period_at(budget, AFTER_MIDNIGHT)
    assert (april.carried_over, april.limit) == (Decimal("55"), Decimal("155"))
    # And once open, neither path opens another.
    assert periods_roll_over().opened == 0
    assert period_get_or_open(budget=budget, moment=AFTER_MIDNIGHT).pk == april.pk


def test_carry_over_is_fixed_once_the_period_is_open(berlin, alpha_key, time_machine):
    """The hold of 23:59 is settled after midnight: charged to March (where it was held), and April's
    carried amount stays what it was when April opened."""
    budget = monthly(berlin.alpha)
    reservation = march_with_30_spent_and_10_held(alpha_key, time_machine)
    time_machine.move_to(AFTER_MIDNIGHT, tick=False)
    periods_roll_over()

    time_machine.move_to(AFTER_MIDNIGHT + timedelta(minutes=5), tick=False)
    usage = reservation_settle(
        principal=alpha_key,
        reservation_id=reservation.pk,
        report=UsageReport(request_id="late-call", cost=Decimal("2"), model="m"),
    ).usage

    march = period_at(budget, MIDNIGHT - timedelta(seconds=1))
    april = period_at(budget, AFTER_MIDNIGHT)
    assert (march.spent, march.reserved) == (Decimal("32"), Decimal("0"))
    assert [charge.period_id for charge in UsageCharge.objects.filter(usage=usage)] == [march.pk]
    assert (april.spent, april.carried_over, april.limit) == (Decimal("0"), Decimal("60"), Decimal("160"))
    reservation.refresh_from_db()
    assert reservation.state == ReservationState.SETTLED


def test_usage_lands_in_the_period_of_its_occurred_at(berlin, alpha_key, time_machine):
    budget = monthly(berlin.alpha)
    time_machine.move_to(AFTER_MIDNIGHT, tick=False)
    spend(alpha_key, "last-microsecond-of-march", "1", MIDNIGHT - timedelta(microseconds=1))
    spend(alpha_key, "first-moment-of-april", "2", MIDNIGHT)

    march = period_at(budget, MIDNIGHT - timedelta(seconds=1))
    april = period_at(budget, MIDNIGHT)
    assert (march.spent, april.spent) == (Decimal("1"), Decimal("2"))
    # Spend reported for March before April opened still counts against what April inherits.
    assert april.carried_over == Decimal("99")


def test_a_new_limit_keeps_the_carried_amount(berlin, alpha_key, time_machine):
    budget = monthly(berlin.alpha)
    march_with_30_spent_and_10_held(alpha_key, time_machine)
    time_machine.move_to(AFTER_MIDNIGHT, tick=False)
    periods_roll_over()

    budget_update(principal=principal_for_user(berlin.fiona), budget=budget, limit=Decimal("200"))

    april = period_at(budget, AFTER_MIDNIGHT)
    march = period_at(budget, MIDNIGHT - timedelta(seconds=1))
    assert (april.carried_over, april.limit) == (Decimal("60"), Decimal("260"))
    assert march.limit == Decimal("100")  # a closed period keeps its limit


def test_a_period_that_was_never_opened_passes_nothing_on(berlin):
    """No March period (archived then, or unused with no rollover running): April starts afresh."""
    budget = monthly(berlin.alpha, carry_over_cap=Decimal("40"))

    periods_roll_over(now=AFTER_MIDNIGHT)

    april = period_at(budget, AFTER_MIDNIGHT)
    assert (april.carried_over, april.limit) == (Decimal("0"), Decimal("100"))
    assert BudgetPeriod.objects.filter(budget=budget).count() == 1


def test_the_first_period_of_a_budget_inherits_nothing(berlin):
    budget = team_budget(
        berlin.alpha,
        starts_at=MIDNIGHT - timedelta(days=3),
        carry_over=CarryOver.UNUSED,
        limit=Decimal("100"),
        thresholds=[],
    )

    summary = periods_roll_over(now=MIDNIGHT - timedelta(days=1))

    first = period_at(budget, MIDNIGHT - timedelta(days=1))
    assert summary.opened == 1
    assert (first.starts_at, first.carried_over, first.limit) == (budget.starts_at, 0, Decimal("100"))


def test_archived_and_ended_budgets_get_no_new_period_but_their_old_ones_close(
    berlin, alpha_key, time_machine
):
    archived = monthly(berlin.alpha)
    ended = monthly(berlin.beta, carry_over=CarryOver.NONE)
    time_machine.move_to(MIDNIGHT - timedelta(minutes=1), tick=False)
    periods_roll_over()
    archived.is_active = False
    archived.save()
    ended.ends_at = MIDNIGHT
    ended.save()

    summary = periods_roll_over(now=AFTER_MIDNIGHT)

    assert (summary.closed, summary.opened) == (2, 0)
    assert not BudgetPeriod.objects.filter(starts_at__gte=MIDNIGHT).exists()
    assert not BudgetPeriod.objects.filter(closed_at__isnull=True).exists()


def test_the_task_takes_an_iso_moment_and_reports_what_it_did(berlin, alpha_key, time_machine):
    budget = monthly(berlin.alpha)
    march_with_30_spent_and_10_held(alpha_key, time_machine)

    summary = roll_over_periods.delay(now=AFTER_MIDNIGHT.isoformat()).get()

    april = period_at(budget, AFTER_MIDNIGHT)
    assert summary == {
        "now": AFTER_MIDNIGHT.isoformat(),
        "closed": 1,
        "opened": 1,
        "carried": "60.000000000",
        "opened_periods": [april.pk],
    }
    with pytest.raises(ValueError, match="UTC offset"):
        roll_over_periods.delay(now="2026-04-01T00:01:00").get()
