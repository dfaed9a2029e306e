"""Ledger checks every gateway test ends with."""

from decimal import Decimal

from django.db.models import Sum

from budgets.choices import ReservationState
from budgets.models import BudgetPeriod, Reservation, UsageRecord


def assert_ledger_exact(organization) -> None:
    """No hold left pending, and every budget period's spent equals its charges (reserved is 0)."""
    assert not Reservation.objects.filter(organization=organization, state=ReservationState.PENDING).exists()
    for period in BudgetPeriod.objects.filter(budget__organization=organization):
        charged = period.charges.aggregate(total=Sum("amount"))["total"] or Decimal(0)
        assert period.reserved == 0
        assert period.spent == charged


def only_usage(organization) -> UsageRecord:
    records = list(UsageRecord.objects.filter(organization=organization))
    assert len(records) == 1, records
    return records[0]
