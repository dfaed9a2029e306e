"""Compensating entries: how a correction reaches the append-only ledger.

The ledger is never edited. A correction (reconciliation found the provider billed more or less
than we recorded, or usage we never saw) is a new UsageRecord with source `adjustment`, whose cost
may be negative, booked on budget periods like any charge, so every period's `spent` keeps
equalling the sum of its charges. Idempotent by request id, like every ledger write: the caller
derives the request id from what it corrects, so a repeated or concurrent correction is written once.
"""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from budgets.choices import UsageSource
from budgets.models import BudgetPeriod, Organization, Team, UsageCharge, UsageRecord, User
from budgets.selectors import chain_budgets
from budgets.services.periods import period_get_or_open
from costswitch.errors import Conflict


@dataclass(frozen=True)
class Adjustment:
    """One compensating entry before it is written. `cost` is signed: negative gives money back."""

    request_id: str
    cost: Decimal
    occurred_at: datetime
    model: str = ""
    provider: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    metadata: dict = field(default_factory=dict)


@dataclass
class AdjustmentResult:
    usage: UsageRecord
    created: bool


def chain_period_ids(
    *, organization: Organization, team: Team | None, user: User | None, moment: datetime
) -> list[int]:
    """The periods a charge by (team, user) at `moment` is booked on (opened if needed): what a new
    entry for usage the ledger never saw is charged to. Call it before taking any lock."""
    periods = (
        period_get_or_open(budget=budget, moment=moment)
        for budget in chain_budgets(organization=organization, team=team, user=user)
    )
    return sorted(period.pk for period in periods if period is not None)


def usage_adjust(
    *,
    organization: Organization,
    adjustment: Adjustment,
    period_ids: list[int],
    team: Team | None = None,
    user: User | None = None,
) -> AdjustmentResult:
    """Write `adjustment` to the ledger, charged to `period_ids` (for a corrected charge: the
    periods the original was charged to; for missing usage: `chain_period_ids`).

    Periods are locked in ascending id order, as every ledger writer does, so this never deadlocks
    with traffic. A request id already written answers with that record and charges nothing; one
    that belongs to a different charge is a Conflict."""
    existing = UsageRecord.objects.filter(organization=organization, request_id=adjustment.request_id).first()
    if existing is not None:
        return AdjustmentResult(_replayed(existing, adjustment), created=False)
    try:
        with transaction.atomic():
            locked = list(
                BudgetPeriod.objects.filter(pk__in=set(period_ids))
                .select_for_update(no_key=True, of=("self",))
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            usage = UsageRecord.objects.create(
                organization=organization,
                team=team,
                user=user,
                request_id=adjustment.request_id,
                source=UsageSource.ADJUSTMENT,
                model=adjustment.model,
                provider=adjustment.provider,
                input_tokens=adjustment.input_tokens,
                output_tokens=adjustment.output_tokens,
                cached_input_tokens=adjustment.cached_input_tokens,
                cost=adjustment.cost,
                currency=settings.COSTSWITCH_CURRENCY,
                metadata=adjustment.metadata,
                occurred_at=adjustment.occurred_at,
            )
            UsageCharge.objects.bulk_create(
                UsageCharge(usage=usage, period_id=pk, amount=adjustment.cost) for pk in locked
            )
            BudgetPeriod.objects.filter(pk__in=locked).update(spent=F("spent") + adjustment.cost)
    except IntegrityError:
        # A concurrent writer of the same correction won the insert: answer as its replay.
        existing = UsageRecord.objects.filter(
            organization=organization, request_id=adjustment.request_id
        ).first()
        if existing is None:
            raise
        return AdjustmentResult(_replayed(existing, adjustment), created=False)
    return AdjustmentResult(usage, created=True)


def _replayed(existing: UsageRecord, adjustment: Adjustment) -> UsageRecord:
    if existing.source != UsageSource.ADJUSTMENT or existing.cost != adjustment.cost:
        raise Conflict(
            f"Request id {adjustment.request_id!r} is already used by another charge.",
            code="idempotency_conflict",
        )
    return existing
