import re
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Sum

from budgets.choices import BudgetStatus, ReservationState
from budgets.models import (
    ApiKey,
    Budget,
    BudgetPeriod,
    Organization,
    Reservation,
    ReservationHold,
    Team,
    UsageCharge,
    UsageRecord,
    User,
)
from budgets.selectors import budget_status
from costswitch.keys import hash_api_key
from tests.conftest import client_with_key

pytestmark = pytest.mark.django_db


def seed() -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


@pytest.fixture
def seeded_twice() -> tuple[str, str]:
    return seed(), seed()


def test_it_seeds_once_and_a_second_run_changes_nothing_but_the_demo_key(seeded_twice):
    _, second = seeded_twice
    assert Organization.objects.count() == 1
    assert Team.objects.count() == 3
    assert User.objects.count() >= 12
    assert UsageRecord.objects.count() >= 2500
    assert "already exists" in second
    assert ApiKey.objects.filter(name="demo key").count() == 2
    admin = User.objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser and admin.check_password("admin")


def test_the_period_aggregates_equal_the_ledger(seeded_twice):
    spent = dict(
        UsageCharge.objects.values("period").annotate(total=Sum("amount")).values_list("period", "total")
    )
    reserved = dict(
        ReservationHold.objects.filter(reservation__state=ReservationState.PENDING)
        .values("period")
        .annotate(total=Sum("amount"))
        .values_list("period", "total")
    )
    periods = list(BudgetPeriod.objects.all())
    assert periods
    for period in periods:
        assert period.spent == spent.get(period.pk, 0), period
        assert period.reserved == reserved.get(period.pk, 0), period
    assert Reservation.objects.filter(state=ReservationState.PENDING).count() >= 3


def test_the_current_periods_show_every_status(seeded_twice):
    budgets = Budget.objects.select_related("organization", "team", "user").prefetch_related("thresholds")
    statuses = {budget_status(budget=budget).status for budget in budgets}
    assert BudgetStatus.NORMAL in statuses
    assert statuses & {BudgetStatus.WARNING, BudgetStatus.CRITICAL}
    assert BudgetStatus.EXHAUSTED in statuses


def test_the_printed_demo_key_works_for_the_printed_curl(seeded_twice):
    _, second = seeded_twice
    secret = re.search(r"API key:\s+(cs_\S+)", second).group(1)
    url = re.search(r"(/api/v1/budgets/status/team/\d+)", second).group(1)
    assert ApiKey.objects.get(name="demo key", key_hash=hash_api_key(secret))
    assert client_with_key(secret).get(url).status_code == 200
