"""Budget periods: opening them (lazily on first use, or by the rollover job), with carry-over, and
closing the ones that have ended.

Carry-over, policy `unused`: a new period inherits what the period just before it left unused,

    carried_over = min(cap, max(0, previous.limit - previous.spent - previous.reserved))

and its limit is `budget.limit + carried_over`. Reservations still pending on the previous period
count as used: they may yet be settled there (a late settle charges the period its hold is on), so
the money they hold is never available twice. If such a reservation later settles for less, or
expires, the difference stays with the ended period. The amount is computed once, when the period
row is created, by whichever path gets there first (the request path or the rollover job, both
through `_period_open`), and never changes afterwards; spend reported late for an ended period is
charged to that period (it shows as its overspend) and does not reduce what was already carried.
Only money of a period that was open is carried: a previous period that was never opened (the
budget was archived then, or nobody used it and no rollover ran) passes nothing on, so a budget
never accumulates limit while it is not in use. The first period of a budget inherits nothing.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from budgets.choices import CarryOver, PeriodKind
from budgets.models import Budget, BudgetPeriod
from costswitch.errors import ValidationFailed
from costswitch.money import ZERO

# Ended periods closed per transaction: short row locks, whatever the backlog.
CLOSE_BATCH = 500


def carry_over_check(*, period: str, carry_over: str, carry_over_cap: Decimal | None) -> None:
    """Refuse a carry-over setting that cannot mean anything (used by budget create and update)."""
    if carry_over not in CarryOver.values:
        raise ValidationFailed(
            f"carryOver must be one of {', '.join(CarryOver.values)}, not {carry_over!r}.",
            code="invalid_carry_over",
        )
    if carry_over_cap is not None and carry_over_cap < 0:
        raise ValidationFailed("carryOverCap must not be negative.", code="negative_amount")
    if carry_over_cap is not None and carry_over != CarryOver.UNUSED:
        raise ValidationFailed(
            "carryOverCap needs carryOver 'unused'; send carryOverCap null to drop the cap.",
            code="carry_over_cap_without_policy",
        )
    if carry_over != CarryOver.NONE and period == PeriodKind.CUSTOM:
        raise ValidationFailed(
            "A custom period has no next period to carry into; use carryOver 'none'.",
            code="carry_over_needs_recurring_period",
        )


def period_carry_over(*, budget: Budget, starts_at: datetime) -> Decimal:
    """What the period of `budget` starting at `starts_at` inherits from the period just before it."""
    if budget.carry_over != CarryOver.UNUSED:
        return ZERO
    before = budget.period_bounds_at(starts_at - timedelta(microseconds=1))
    if before is None:
        return ZERO  # the budget's first period
    previous = (
        BudgetPeriod.objects.filter(budget=budget, starts_at=before[0])
        .only("limit", "spent", "reserved")
        .first()
    )
    if previous is None:
        return ZERO  # never opened: see the module docstring
    amount = max(previous.limit - previous.spent - previous.reserved, ZERO)
    if budget.carry_over_cap is not None:
        amount = min(amount, budget.carry_over_cap)
    return amount


def _period_open(budget: Budget, starts_at: datetime, ends_at: datetime) -> tuple[BudgetPeriod, bool]:
    """The period row (budget, starts_at), created with its carry-over if missing; (period, created).
    The unique (budget, starts_at) constraint decides between concurrent openers: the loser reads
    the winner's row, so the carried amount is the one computed first, for good."""
    existing = BudgetPeriod.objects.filter(budget=budget, starts_at=starts_at).first()
    if existing is not None:
        return existing, False
    carried = period_carry_over(budget=budget, starts_at=starts_at)
    try:
        with transaction.atomic():
            period = BudgetPeriod.objects.create(
                budget=budget,
                starts_at=starts_at,
                ends_at=ends_at,
                limit=budget.limit + carried,
                carried_over=carried,
            )
        return period, True
    except IntegrityError:
        period = BudgetPeriod.objects.filter(budget=budget, starts_at=starts_at).first()
        if period is None:
            raise
        return period, False


def period_get_or_open(*, budget: Budget, moment: datetime) -> BudgetPeriod | None:
    """The period of `budget` that contains `moment`, opened (with carry-over) on first use; None if
    the budget is not in force then. Safe under concurrency: the unique (budget, starts_at) decides."""
    bounds = budget.period_bounds_at(moment)
    if bounds is None:
        return None
    period, _ = _period_open(budget, *bounds)
    return period


@dataclass
class RolloverSummary:
    """What one rollover run did: periods closed, periods opened, and the total carried into them."""

    now: datetime
    closed: int = 0
    opened: int = 0
    carried: Decimal = ZERO
    opened_periods: list[int] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "now": self.now.isoformat(),
            "closed": self.closed,
            "opened": self.opened,
            "carried": str(self.carried),
            "opened_periods": self.opened_periods,
        }


def periods_close_ended(*, now: datetime) -> int:
    """Set `closed_at` on every period that has ended, once. Rows another transaction holds (a ledger
    writer, a concurrent rollover) are skipped and closed by a later run, never twice."""
    closed = 0
    while True:
        with transaction.atomic():
            due = list(
                BudgetPeriod.objects.filter(closed_at__isnull=True, ends_at__lte=now)
                .select_for_update(skip_locked=True, no_key=True)
                .order_by("pk")
                .values_list("pk", flat=True)[:CLOSE_BATCH]
            )
            if due:
                closed += BudgetPeriod.objects.filter(pk__in=due, closed_at__isnull=True).update(
                    closed_at=now
                )
        if len(due) < CLOSE_BATCH:
            return closed


def _budgets_without_current_period(now: datetime):
    in_force = BudgetPeriod.objects.filter(budget=OuterRef("pk"), starts_at__lte=now, ends_at__gt=now)
    return (
        Budget.objects.filter(
            Q(ends_at__isnull=True) | Q(ends_at__gt=now), is_active=True, starts_at__lte=now
        )
        .exclude(Exists(in_force))
        .select_related("organization")
        .order_by("pk")
    )


def periods_roll_over(*, now: datetime | None = None) -> RolloverSummary:
    """Close every ended period and open the current period (with carry-over) of every active budget
    that has none. Idempotent, and safe when two runs overlap: each budget is taken with SKIP LOCKED
    (a budget another run holds is that run's), and the unique (budget, starts_at) constraint stops
    a second period even if the locks were bypassed. Runs every few minutes (CELERY_BEAT_SCHEDULE);
    the request path opens a missing period itself, with the same carry-over, so nothing waits on it."""
    now = now or timezone.now()
    summary = RolloverSummary(now=now, closed=periods_close_ended(now=now))
    for budget in _budgets_without_current_period(now):
        bounds = budget.period_bounds_at(now)
        if bounds is None:
            continue
        with transaction.atomic():
            locked = (
                Budget.objects.select_for_update(skip_locked=True, no_key=True)
                .filter(pk=budget.pk, is_active=True)
                .values_list("pk", flat=True)
                .first()
            )
            if locked is None:
                continue
            period, created = _period_open(budget, *bounds)
        if created:
            summary.opened += 1
            summary.carried += period.carried_over
            summary.opened_periods.append(period.pk)
    return summary
