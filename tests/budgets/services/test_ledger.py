from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from budgets.choices import ReservationState
from budgets.models import BudgetPeriod, UsageCharge, UsageRecord
from budgets.principals import principal_for_api_key, principal_for_user
from budgets.selectors import chain_status
from budgets.services.ledger import (
    UsageReport,
    reservation_authorize,
    reservation_release,
    reservation_settle,
    reservations_expire,
    usage_record_many,
)
from costswitch.errors import BudgetExceeded, Conflict
from tests.budgets.factories import BudgetFactory, team_budget, user_budget


@pytest.fixture
def chain(world):
    """Budgets on bob's whole chain: org 100, team alpha 50, bob 20."""
    return {
        "org": BudgetFactory(organization=world.org, limit=Decimal("100")),
        "team": team_budget(world.alpha, limit=Decimal("50")),
        "user": user_budget(world.bob, limit=Decimal("20")),
    }


def period_of(budget) -> BudgetPeriod:
    return BudgetPeriod.objects.get(budget=budget)


def test_it_holds_the_amount_on_every_budget_of_the_chain(world, chain):
    result = reservation_authorize(
        principal=principal_for_user(world.bob), request_id="r1", amount=Decimal("5")
    )
    assert not result.replayed
    assert {hold.period.budget_id for hold in result.reservation.holds.all()} == {
        b.pk for b in chain.values()
    }
    for budget in chain.values():
        assert period_of(budget).reserved == Decimal("5")


def test_it_refuses_all_or_nothing_when_one_budget_lacks_room(world, chain):
    bob = principal_for_user(world.bob)
    with pytest.raises(BudgetExceeded) as refused:
        reservation_authorize(principal=bob, request_id="big", amount=Decimal("20.000000001"))
    assert refused.value.details["budget_id"] == chain["user"].pk
    assert not BudgetPeriod.objects.filter(reserved__gt=0).exists()


def test_settle_charges_actual_cost_and_releases_the_rest(world, chain):
    bob = principal_for_user(world.bob)
    reservation = reservation_authorize(principal=bob, request_id="r1", amount=Decimal("5")).reservation
    usage = reservation_settle(
        principal=bob,
        reservation_id=reservation.pk,
        report=UsageReport(request_id="r1", cost=Decimal("1.25"), model="m"),
    ).usage
    assert usage.cost == Decimal("1.25")
    for budget in chain.values():
        period = period_of(budget)
        assert (period.spent, period.reserved) == (Decimal("1.25"), Decimal("0"))
    reservation.refresh_from_db()
    assert reservation.state == ReservationState.SETTLED


def test_a_retried_settle_charges_once(world, chain):
    bob = principal_for_user(world.bob)
    reservation = reservation_authorize(principal=bob, request_id="r1", amount=Decimal("5")).reservation
    report = UsageReport(request_id="r1", cost=Decimal("2"), model="m")
    first = reservation_settle(principal=bob, reservation_id=reservation.pk, report=report)
    again = reservation_settle(principal=bob, reservation_id=reservation.pk, report=report)
    assert (first.replayed, again.replayed) == (False, True)
    assert first.usage.pk == again.usage.pk
    assert period_of(chain["org"]).spent == Decimal("2")
    with pytest.raises(Conflict):
        reservation_settle(
            principal=bob,
            reservation_id=reservation.pk,
            report=UsageReport(request_id="r1", cost=Decimal("3")),
        )


def test_a_retried_authorize_returns_the_same_hold(world, chain):
    bob = principal_for_user(world.bob)
    first = reservation_authorize(principal=bob, request_id="r1", amount=Decimal("5"))
    again = reservation_authorize(principal=bob, request_id="r1", amount=Decimal("5"))
    assert again.replayed and again.reservation.pk == first.reservation.pk
    assert period_of(chain["org"]).reserved == Decimal("5")
    with pytest.raises(Conflict):
        reservation_authorize(principal=bob, request_id="r1", amount=Decimal("6"))


def test_it_releases_unused_reservation(world, chain):
    bob = principal_for_user(world.bob)
    reservation = reservation_authorize(principal=bob, request_id="r1", amount=Decimal("5")).reservation
    reservation_release(principal=bob, reservation_id=reservation.pk)
    reservation_release(principal=bob, reservation_id=reservation.pk)
    assert period_of(chain["org"]).reserved == 0
    reservation.refresh_from_db()
    assert reservation.state == ReservationState.RELEASED


def test_expired_reservation_is_released_and_a_late_settle_still_records(world, chain, time_machine):
    bob = principal_for_user(world.bob)
    time_machine.move_to("2026-03-10T12:00:00Z", tick=False)
    reservation = reservation_authorize(
        principal=bob, request_id="r1", amount=Decimal("5"), ttl_seconds=60
    ).reservation
    assert reservations_expire() == 0
    time_machine.move_to("2026-03-10T12:01:01Z", tick=False)
    assert reservations_expire() == 1
    assert reservations_expire() == 0
    assert period_of(chain["team"]).reserved == 0
    reservation_settle(
        principal=bob, reservation_id=reservation.pk, report=UsageReport(request_id="r1", cost=Decimal("4"))
    )
    period = period_of(chain["team"])
    assert (period.spent, period.reserved) == (Decimal("4"), Decimal("0"))


def test_direct_usage_is_recorded_even_over_the_limit(world, chain, team_key):
    principal = principal_for_api_key(team_key[0])
    result = usage_record_many(
        principal=principal, reports=[UsageReport(request_id="u1", cost=Decimal("70"), model="m")]
    )
    assert result.created == 1
    team_period = period_of(chain["team"])
    assert team_period.spent == Decimal("70") > team_period.limit


def test_a_retried_usage_report_charges_once(world, chain, team_key):
    principal = principal_for_api_key(team_key[0])
    report = UsageReport(request_id="u1", cost=Decimal("1.5"), model="m", input_tokens=10)
    usage_record_many(principal=principal, reports=[report])
    again = usage_record_many(principal=principal, reports=[report, report])
    assert (again.created, again.replayed) == (0, 2)
    assert UsageRecord.objects.count() == 1
    assert period_of(chain["org"]).spent == Decimal("1.5")


def test_period_aggregates_equal_the_ledger(world, chain, team_key):
    principal = principal_for_api_key(team_key[0])
    usage_record_many(
        principal=principal,
        reports=[UsageReport(request_id=f"u{i}", cost=Decimal("0.333333333"), model="m") for i in range(30)],
    )
    for budget in (chain["org"], chain["team"]):
        period = period_of(budget)
        charged = UsageCharge.objects.filter(period=period).aggregate(total=Sum("amount"))["total"]
        assert period.spent == charged == Decimal("9.99999999")


def test_direct_usage_with_a_reserved_request_id_is_refused(world, chain):
    bob = principal_for_user(world.bob)
    reservation = reservation_authorize(principal=bob, request_id="r1", amount=Decimal("5")).reservation
    report = UsageReport(request_id="r1", cost=Decimal("1"), model="m")
    with pytest.raises(Conflict) as refused:
        usage_record_many(principal=bob, reports=[report])
    assert refused.value.code == "request_id_reserved"
    assert not UsageRecord.objects.exists()
    usage = reservation_settle(principal=bob, reservation_id=reservation.pk, report=report).usage
    replay = usage_record_many(principal=bob, reports=[report])  # after settling, a retry replays it
    assert (replay.replayed, replay.records[0].pk) == (1, usage.pk)


def _chain_as_read(bob):
    return [report.budget for report in chain_status(principal=bob).budgets]


def test_a_chain_read_by_chain_status_is_held_without_reading_it_again(world, chain):
    bob = principal_for_user(world.bob)
    reservation_authorize(principal=bob, request_id="r1", amount=Decimal("1"))  # opens the periods
    read = _chain_as_read(bob)
    with CaptureQueriesContext(connection) as queries:
        reservation_authorize(principal=bob, request_id="r2", amount=Decimal("5"), chain=read)
    assert not any('FROM "budgets_budget"' in q["sql"] for q in queries.captured_queries)
    for budget in chain.values():
        assert period_of(budget).reserved == Decimal("6")


def test_a_chain_read_before_its_periods_rolled_over_holds_on_the_new_periods(world, chain, time_machine):
    bob = principal_for_user(world.bob)
    time_machine.move_to("2026-03-31T23:59:59Z", tick=False)
    reservation_authorize(principal=bob, request_id="r0", amount=Decimal("1"))  # opens March
    read = _chain_as_read(bob)
    time_machine.move_to("2026-04-01T00:00:01Z", tick=False)
    reservation = reservation_authorize(
        principal=bob, request_id="r1", amount=Decimal("5"), chain=read
    ).reservation

    held = BudgetPeriod.objects.filter(holds__reservation=reservation)
    assert {period.budget_id for period in held} == {budget.pk for budget in chain.values()}
    assert all(period.starts_at.month == 4 for period in held)
    assert all(period.reserved == Decimal("1") for period in BudgetPeriod.objects.filter(starts_at__month=3))


def test_an_id_the_caller_made_skips_the_reuse_lookup_but_a_reused_one_is_still_refused(world, chain):
    bob = principal_for_user(world.bob)
    with CaptureQueriesContext(connection) as queries:
        reservation_authorize(principal=bob, request_id="fresh", amount=Decimal("1"), new_request_id=True)
    assert not any('"budgets_usagerecord"' in q["sql"] for q in queries.captured_queries)
    usage_record_many(principal=bob, reports=[UsageReport(request_id="seen", cost=Decimal("1"))])
    with pytest.raises(Conflict) as refused:
        reservation_authorize(principal=bob, request_id="seen", amount=Decimal("1"))
    assert refused.value.code == "request_already_charged"
