"""Budget extensions: extra money granted to one budget period for a while (an approved override).

The ledger checks `spent + reserved + amount <= period.limit` under a row lock, so an extension is
a change of that limit, made under the same lock: raised when the extension is granted, and taken
back when it ends while the period is still running. Money spent meanwhile stays spent (the ledger
is append-only); after the extension the period may show it as overspend, and new requests need
room under the normal limit again. A period that ended before the extension did keeps the raised
limit (its spend happened under it). Both changes are written to the audit log.
"""

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from budgets.models import Budget, BudgetPeriod
from budgets.services.periods import period_get_or_open
from costswitch.errors import Conflict, ValidationFailed
from costswitch.money import ZERO


def _locked_period(period_id: int) -> BudgetPeriod:
    # NO KEY UPDATE, as the ledger takes it: only amounts change.
    return (
        BudgetPeriod.objects.select_for_update(no_key=True, of=("self",))
        .select_related("budget", "budget__organization")
        .get(pk=period_id)
    )


def _audit(action: str, period: BudgetPeriod, before: Decimal, actor: Any, reason: str) -> None:
    from approvals.audit import record  # a leaf any app may call (imported late: approvals is downstream)

    record(
        action=action,
        obj=period,
        actor=actor,
        before={"limit": before},
        after={"limit": period.limit},
        reason=reason,
        organization=period.budget.organization,
    )


def period_limit_extend(
    *, budget: Budget, amount: Decimal, actor: Any = None, reason: str = "", now: datetime | None = None
) -> BudgetPeriod:
    """Raise the limit of the budget's period in force now by `amount`; returns the period."""
    if amount <= 0:
        raise ValidationFailed("An extension must be a positive amount.", code="invalid_amount")
    now = now or timezone.now()
    period = period_get_or_open(budget=budget, moment=now)  # before any lock (see the ledger)
    if period is None:
        raise Conflict(f"Budget {budget.name!r} has no period in force to extend.", code="no_period")
    with transaction.atomic():
        period = _locked_period(period.pk)
        before = period.limit
        period.limit = before + amount
        period.save(update_fields=["limit"])
        _audit("budget_period.limit_extended", period, before, actor, reason)
    return period


def period_limit_withdraw(
    *, period_id: int, amount: Decimal, actor: Any = None, reason: str = "", now: datetime | None = None
) -> BudgetPeriod:
    """Take an extension back from a running period: its limit drops by `amount`, never below the
    budget's own limit plus what the period carried over (a budget edit may have reset the limit
    meanwhile, and that must not lose the normal money). An ended period is left as it is."""
    now = now or timezone.now()
    with transaction.atomic():
        period = _locked_period(period_id)
        if period.ends_at <= now or period.closed_at is not None:
            return period
        before = period.limit
        floor = period.budget.limit + getattr(period, "carried_over", ZERO)
        period.limit = min(before, max(before - amount, floor))
        if period.limit != before:
            period.save(update_fields=["limit"])
            _audit("budget_period.limit_withdrawn", period, before, actor, reason)
    return period
