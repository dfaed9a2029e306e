"""Ledger checks every gateway test ends with."""

import time
from decimal import Decimal

from django.db.models import Sum

from budgets.choices import ReservationState
from budgets.models import BudgetPeriod, Reservation, UsageRecord


def wait_for_settlement(organization, timeout: float = 5.0) -> None:
    """The gateway settles once the answer is sent, so a client holding its answer may be a few
    milliseconds ahead of the ledger: wait for the holds to go (a test then fails on the holds)."""
    deadline = time.monotonic() + timeout
    pending = Reservation.objects.filter(organization=organization, state=ReservationState.PENDING)
    while pending.exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def assert_ledger_exact(organization) -> None:
    """No hold left pending, and every budget period's spent equals its charges (reserved is 0)."""
    wait_for_settlement(organization)
    assert not Reservation.objects.filter(organization=organization, state=ReservationState.PENDING).exists()
    for period in BudgetPeriod.objects.filter(budget__organization=organization):
        charged = period.charges.aggregate(total=Sum("amount"))["total"] or Decimal(0)
        assert period.reserved == 0
        assert period.spent == charged


def only_usage(organization) -> UsageRecord:
    wait_for_settlement(organization)
    records = list(UsageRecord.objects.filter(organization=organization))
    assert len(records) == 1, records
    return records[0]
