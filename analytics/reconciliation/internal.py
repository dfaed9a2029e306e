"""Internal reconciliation: every open budget period's cached `spent` and `reserved` against the
ledger rows behind them (the sum of its UsageCharges, and of the holds of pending reservations).

Those two columns are caches, so drift is fixed in place, and recorded as a `drift` discrepancy
(resolved at once) so it is seen. Safe while traffic flows: each period is recomputed in its own
transaction holding that period's row lock, the lock every ledger writer takes before it adds a
charge or a hold, so no concurrent charge is half-seen or lost; and safe to run twice or
concurrently: the second run finds nothing left to fix.
"""

import logging

from django.db import IntegrityError, transaction
from django.db.models import Count, Sum
from django.utils import timezone

from analytics.models import (
    Discrepancy,
    DiscrepancyKind,
    DiscrepancyStatus,
    ReconciliationRun,
    RunKind,
    RunStatus,
)
from analytics.reconciliation.formats import line_fingerprint
from budgets.choices import ReservationState
from budgets.models import BudgetPeriod, Organization, ReservationHold, UsageCharge
from costswitch.money import ZERO

logger = logging.getLogger(__name__)


def ledger_reconcile(
    *, organization: Organization, task_key: str = "", dry_run: bool = False
) -> ReconciliationRun:
    """Recompute every open period of `organization`. `task_key` (the Celery task id) makes a
    redelivered task continue its own run instead of starting another. With `dry_run` drift is
    recorded but the periods are left as they are (the command rolls everything back anyway)."""
    if task_key:
        run, _ = ReconciliationRun.objects.get_or_create(
            organization=organization,
            task_key=task_key,
            defaults={"kind": RunKind.INTERNAL, "source": "ledger"},
        )
    else:
        run = ReconciliationRun.objects.create(
            organization=organization, kind=RunKind.INTERNAL, source="ledger"
        )
    if run.status == RunStatus.SUCCEEDED:
        return run
    ReconciliationRun.objects.filter(pk=run.pk, started_at__isnull=True).update(started_at=timezone.now())
    ReconciliationRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    period_ids = list(
        BudgetPeriod.objects.filter(budget__organization=organization, closed_at__isnull=True)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    for period_id in period_ids:
        with transaction.atomic():
            _reconcile_period(run, organization, period_id, fix=not dry_run)
    return _finish(run, checked=len(period_ids))


def ledger_reconcile_all(*, task_key: str = "", dry_run: bool = False) -> list[ReconciliationRun]:
    """One internal run per organization that has open periods."""
    organizations = Organization.objects.filter(
        pk__in=BudgetPeriod.objects.filter(closed_at__isnull=True).values("budget__organization_id")
    ).order_by("pk")
    return [ledger_reconcile(organization=org, task_key=task_key, dry_run=dry_run) for org in organizations]


def _reconcile_period(
    run: ReconciliationRun, organization: Organization, period_id: int, *, fix: bool
) -> None:
    period = (
        BudgetPeriod.objects.select_for_update(no_key=True, of=("self",))
        .filter(pk=period_id, closed_at__isnull=True)
        .first()
    )
    if period is None:
        return
    # Read after the lock is held: every charge and hold committed before it is counted, and none
    # can be added until this transaction ends.
    charged = UsageCharge.objects.filter(period=period).aggregate(total=Sum("amount"))["total"] or ZERO
    held = (
        ReservationHold.objects.filter(period=period, reservation__state=ReservationState.PENDING).aggregate(
            total=Sum("amount")
        )["total"]
        or ZERO
    )
    drifted = {
        name: (cached, ledger)
        for name, cached, ledger in (
            ("spent", period.spent, charged),
            ("reserved", period.reserved, held),
        )
        if cached != ledger
    }
    if not drifted:
        return
    now = timezone.now()
    for name, (cached, ledger) in drifted.items():
        try:
            with transaction.atomic():
                Discrepancy.objects.create(
                    organization=organization,
                    run=run,
                    kind=DiscrepancyKind.DRIFT,
                    status=DiscrepancyStatus.RESOLVED if fix else DiscrepancyStatus.OPEN,
                    fingerprint=line_fingerprint(
                        DiscrepancyKind.DRIFT, run.pk, period.pk, name, cached, ledger
                    ),
                    external_key=f"period:{period.pk}:{name}",
                    period=period,
                    ours=cached,
                    theirs=ledger,
                    difference=ledger - cached,
                    details={"field": name, "budget": period.budget_id},
                    resolved_at=now if fix else None,
                    resolution=f"{name} set to the ledger's sum" if fix else "",
                )
        except IntegrityError:
            continue
    if fix:
        BudgetPeriod.objects.filter(pk=period.pk).update(
            **{name: ledger for name, (_, ledger) in drifted.items()}
        )
    logger.warning(
        "period %s drifted from the ledger: %s",
        period.pk,
        ", ".join(f"{name} {cached} -> {ledger}" for name, (cached, ledger) in drifted.items()),
        extra={"run_id": run.pk, "period_id": period.pk},
    )


def _finish(run: ReconciliationRun, *, checked: int) -> ReconciliationRun:
    totals = run.discrepancies.aggregate(n=Count("pk"), ours=Sum("ours"), theirs=Sum("theirs"))
    with transaction.atomic():
        run = ReconciliationRun.objects.select_for_update().get(pk=run.pk)
        run.lines_seen = checked
        run.discrepancy_count = totals["n"] or 0
        run.lines_matched = checked - run.discrepancies.values("period_id").distinct().count()
        run.ours_total = totals["ours"] or ZERO
        run.theirs_total = totals["theirs"] or ZERO
        run.status = RunStatus.SUCCEEDED
        run.finished_at = timezone.now()
        run.save()
    logger.info(
        "reconciled %d open period(s) of %s: %d drifted",
        checked,
        run.organization_id,
        run.discrepancy_count,
        extra={"run_id": run.pk},
    )
    return run
