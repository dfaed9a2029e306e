"""Budget alerts: raised once per threshold (and once per forecast) per period, then announced.

Three paths raise them, and the partial unique constraints on `Alert` make them agree:
- the ledger, while it holds a period row locked, knows the committed amount (spent + reserved)
  before and after a change and raises the thresholds that lie in (before, after];
- `alerts_sweep` raises what the ledger could not see (thresholds changed afterwards, a period
  opened with spend already over a threshold, a path that does not go through the ledger);
- `alerts_forecast` raises a forecast alert when the burn rate reaches the limit before the end.

An alert is announced with the `budgets.signals.alert_raised` signal once its transaction has
committed; approvals turns it into notifications.
"""

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial

from django.db import IntegrityError, transaction
from django.db.models import DecimalField, ExpressionWrapper, F, OuterRef, Prefetch, QuerySet, Subquery, Value
from django.utils import timezone

from budgets.choices import ScopeType
from budgets.models import Alert, AlertKind, Budget, BudgetPeriod, Threshold
from budgets.principals import Principal
from budgets.selectors import HUNDRED, budget_status, budgets_for_principal, percent_of
from budgets.signals import alert_raised
from costswitch.errors import NotFound, PermissionDenied
from costswitch.money import display_decimal

logger = logging.getLogger(__name__)

_MISSING = object()
_PERCENT = DecimalField(max_digits=30, decimal_places=9)


def with_next_threshold(periods: QuerySet[BudgetPeriod]) -> QuerySet[BudgetPeriod]:
    """Annotate each period with `next_threshold`: the lowest threshold of its budget above what it
    has committed now (None when none is left). With it the ledger tells, without another query,
    whether a change can cross anything; the threshold list is read only when one is crossed."""
    reach = ExpressionWrapper(F("percent") * OuterRef("limit"), output_field=_PERCENT)
    committed = ExpressionWrapper(
        (OuterRef("spent") + OuterRef("reserved")) * Value(HUNDRED), output_field=_PERCENT
    )
    # percent * limit > 100 * committed: the threshold is above the committed share (no division,
    # so a zero limit is no error); thresholds have two decimals, so this agrees with percent_of.
    above = (
        Threshold.objects.filter(budget_id=OuterRef("budget_id"))
        .annotate(reach=reach)
        .filter(reach__gt=committed)
        .order_by("percent")
        .values("percent")[:1]
    )
    return periods.annotate(next_threshold=Subquery(above))


@dataclass(frozen=True)
class _Crossing:
    period: BudgetPeriod
    before: Decimal  # percent committed before the change
    after: Decimal


def alerts_for_changes(changes: Iterable[tuple[BudgetPeriod, Decimal]]) -> list[Alert]:
    """Raise the alerts crossed by the given committed increases. Each period must be the locked
    row as it was before the change (from `with_next_threshold`); call this inside the ledger's
    transaction. Costs no query unless something is crossed."""
    crossings = []
    for period, increase in changes:
        if increase <= 0:
            continue
        committed = period.spent + period.reserved
        before = percent_of(committed, period.limit)
        after = percent_of(committed + increase, period.limit)
        next_threshold = getattr(period, "next_threshold", _MISSING)
        maybe = next_threshold is _MISSING or (next_threshold is not None and after >= next_threshold)
        if maybe or before < HUNDRED <= after:
            crossings.append(_Crossing(period, before, after))
    if not crossings:
        return []
    return _raise_crossings(crossings)


def _raise_crossings(crossings: list[_Crossing]) -> list[Alert]:
    budget_ids = {crossing.period.budget_id for crossing in crossings}
    budgets = {b.pk: b for b in Budget.objects.filter(pk__in=budget_ids).prefetch_related("thresholds")}
    raised = []
    for crossing in crossings:
        budget = budgets[crossing.period.budget_id]
        for alert in _crossed_alerts(budget, crossing.period, crossing.before, crossing.after):
            if _raise(alert):
                raised.append(alert)
    return raised


def _crossed_alerts(budget: Budget, period: BudgetPeriod, before: Decimal, after: Decimal) -> list[Alert]:
    """Unsaved alerts for every threshold in (before, after] of the committed percent; reaching
    100% is the `exhausted` alert (it stands for a 100% threshold too)."""
    alerts = []
    for threshold in budget.thresholds.all():
        if before < threshold.percent <= after and threshold.percent != HUNDRED:
            alerts.append(_threshold_alert(budget, period, threshold, after))
    if before < HUNDRED <= after:
        alerts.append(_exhausted_alert(budget, period, after))
    return alerts


def _period_data(period: BudgetPeriod, percent: Decimal) -> dict:
    return {
        "period_id": period.pk,
        "period_start": period.starts_at.isoformat(),
        "period_end": period.ends_at.isoformat(),
        "limit": str(period.limit),
        "percent_used": str(percent),
    }


def _threshold_alert(budget: Budget, period: BudgetPeriod, threshold: Threshold, percent: Decimal) -> Alert:
    actions = list(threshold.actions)
    return Alert(
        organization_id=budget.organization_id,
        budget=budget,
        period=period,
        kind=AlertKind.THRESHOLD,
        threshold=threshold.percent,
        percent_used=percent,
        message=(
            f"Budget {budget.name!r} has reached {display_decimal(threshold.percent)}% of its limit "
            f"({display_decimal(percent)}% spent or reserved of {display_decimal(period.limit)} "
            f"{budget.currency}); in force now: {', '.join(actions) or 'nothing'}."
        ),
        data={**_period_data(period, percent), "threshold": str(threshold.percent), "actions": actions},
    )


def _exhausted_alert(budget: Budget, period: BudgetPeriod, percent: Decimal) -> Alert:
    actions = next((list(t.actions) for t in budget.thresholds.all() if t.percent == HUNDRED), [])
    return Alert(
        organization_id=budget.organization_id,
        budget=budget,
        period=period,
        kind=AlertKind.EXHAUSTED,
        threshold=HUNDRED,
        percent_used=percent,
        message=(
            f"Budget {budget.name!r} is exhausted: {display_decimal(percent)}% of its limit of "
            f"{display_decimal(period.limit)} {budget.currency} is spent or reserved until "
            f"{period.ends_at:%Y-%m-%d %H:%M} UTC."
        ),
        data={**_period_data(period, percent), "threshold": str(HUNDRED), "actions": actions},
    )


def _raise(alert: Alert) -> bool:
    """Insert the alert unless it was raised before (the unique constraints decide, across
    processes); announce it once the surrounding transaction commits."""
    try:
        with transaction.atomic():
            alert.save(force_insert=True)
    except IntegrityError:
        return False
    logger.info("raised %s alert %d on budget %d", alert.kind, alert.pk, alert.budget_id)
    transaction.on_commit(partial(_announce, alert.pk), robust=True)
    return True


def _announce(alert_id: int) -> None:
    alert = Alert.objects.select_related("budget__organization", "period").filter(pk=alert_id).first()
    if alert is None:
        return
    for receiver, result in alert_raised.send_robust(sender=Alert, alert=alert):
        if isinstance(result, Exception):
            # The alert stays; approvals' sweep notifies alerts that have no notification yet.
            logger.error("alert %d: %s failed: %r", alert_id, getattr(receiver, "__name__", receiver), result)


def _open_budgets(now: datetime) -> QuerySet[Budget]:
    in_force = BudgetPeriod.objects.filter(starts_at__lte=now, ends_at__gt=now)
    return (
        Budget.objects.filter(is_active=True, periods__starts_at__lte=now, periods__ends_at__gt=now)
        .select_related("organization")
        .prefetch_related("thresholds", Prefetch("periods", queryset=in_force, to_attr="periods_in_force"))
        .order_by("pk")
        .distinct()
    )


def _open_periods(now: datetime) -> Iterator[tuple[Budget, BudgetPeriod]]:
    """Every active budget with the period in force at `now`, for the sweeps."""
    for budget in _open_budgets(now).iterator(chunk_size=200):
        period = next((p for p in budget.periods_in_force if p.starts_at <= now < p.ends_at), None)
        if period is not None:
            yield budget, period


@dataclass
class SweepResult:
    budgets: int = 0
    threshold: int = 0
    exhausted: int = 0
    forecast: int = 0

    def as_dict(self) -> dict:
        return {
            "budgets_checked": self.budgets,
            "threshold_alerts": self.threshold,
            "exhausted_alerts": self.exhausted,
            "forecast_alerts": self.forecast,
        }


def alerts_sweep(*, now: datetime | None = None) -> SweepResult:
    """Raise the threshold and exhausted alerts of every open period that has crossed them without
    an alert (the ledger raises them as they happen; this catches what it could not see).
    Idempotent: the unique constraints turn a second raise into nothing."""
    now = now or timezone.now()
    result = SweepResult()
    for budget, period in _open_periods(now):
        result.budgets += 1
        percent = percent_of(period.spent + period.reserved, period.limit)
        known = set(
            Alert.objects.filter(
                period=period, kind__in=[AlertKind.THRESHOLD, AlertKind.EXHAUSTED]
            ).values_list("kind", "threshold")
        )
        for alert in _crossed_alerts(budget, period, Decimal("-1"), percent):
            if (alert.kind, alert.threshold) not in known and _raise(alert):
                if alert.kind == AlertKind.EXHAUSTED:
                    result.exhausted += 1
                else:
                    result.threshold += 1
    logger.log(
        logging.INFO if result.threshold or result.exhausted else logging.DEBUG,
        "alert sweep: %s",
        result.as_dict(),
    )
    return result


def alerts_forecast(*, now: datetime | None = None) -> SweepResult:
    """Raise a forecast alert, once per period, for every open period whose burn rate (spend per
    elapsed day, as in budget status) reaches the limit before the period ends; it names the date."""
    now = now or timezone.now()
    result = SweepResult()
    for budget, period in _open_periods(now):
        result.budgets += 1
        report = budget_status(budget=budget, now=now)
        if report.burn_rate <= 0 or report.projected_total <= report.limit:
            continue
        if report.current_amount + report.reserved >= report.limit:
            continue  # already exhausted: that alert says more than a forecast
        days_left = (report.limit - report.current_amount) / report.burn_rate
        reached_at = now + timedelta(microseconds=int(days_left * Decimal(86_400_000_000)))
        alert = Alert(
            organization_id=budget.organization_id,
            budget=budget,
            period=period,
            kind=AlertKind.FORECAST,
            threshold=None,
            percent_used=report.percent_committed,
            message=(
                f"Budget {budget.name!r} is projected to reach its limit of "
                f"{display_decimal(report.limit)} {budget.currency} on {reached_at:%Y-%m-%d}, before the "
                f"period ends on {period.ends_at:%Y-%m-%d}: spending {display_decimal(report.burn_rate)} "
                f"a day, {display_decimal(report.projected_total)} by the end."
            ),
            data={
                **_period_data(period, report.percent_committed),
                "burn_rate": str(report.burn_rate),
                "projected_total": str(report.projected_total),
                "limit_reached_at": reached_at.isoformat(),
            },
        )
        if not Alert.objects.filter(period=period, kind=AlertKind.FORECAST).exists() and _raise(alert):
            result.forecast += 1
    logger.log(logging.INFO if result.forecast else logging.DEBUG, "forecast alerts: %s", result.as_dict())
    return result


def alert_external_raise(*, budget: Budget, message: str, data: dict, now: datetime | None = None) -> Alert:
    """An alert reported by an external system (the budget-alert webhook): always raised; the
    webhook inbox makes a re-sent event count once."""
    now = now or timezone.now()
    period = BudgetPeriod.objects.filter(budget=budget, starts_at__lte=now, ends_at__gt=now).first()
    percent = percent_of(period.spent + period.reserved, period.limit) if period else Decimal(0)
    alert = Alert(
        organization_id=budget.organization_id,
        budget=budget,
        period=period,
        kind=AlertKind.EXTERNAL,
        threshold=None,
        percent_used=percent,
        message=message,
        data=data,
    )
    _raise(alert)
    return alert


def budget_overseen_by(principal: Principal, budget: Budget) -> bool:
    """Who answers for a budget: acknowledges its alerts and chooses who is notified. Finance and
    admins for every budget, team leads for their teams' budgets and their members' user budgets."""
    if principal.api_key is not None:
        return False
    if principal.org_wide:
        return True
    if budget.scope_type == ScopeType.TEAM:
        return budget.team_id in principal.lead_team_ids
    return budget.scope_type == ScopeType.USER and principal.can_manage_scope(ScopeType.USER, budget.user_id)


def alerts_for_principal(principal: Principal) -> QuerySet[Alert]:
    """Alerts on the budgets the caller can see."""
    visible = budgets_for_principal(principal).values("pk")
    return Alert.objects.filter(
        organization=principal.organization, budget_id__in=Subquery(visible)
    ).select_related("budget", "acknowledged_by")


def alert_acknowledge(*, principal: Principal, alert_id: int) -> Alert:
    """Mark an alert as seen and handled. Acknowledging again changes nothing (the first stays)."""
    with transaction.atomic():
        alert = alerts_for_principal(principal).select_for_update(of=("self",)).filter(pk=alert_id).first()
        if alert is None:
            raise NotFound(f"Alert {alert_id} not found.")
        if not budget_overseen_by(principal, alert.budget):
            raise PermissionDenied("Only the owners of this budget may acknowledge its alerts.")
        if alert.acknowledged_at is None:
            alert.acknowledged_at = timezone.now()
            alert.acknowledged_by = principal.user
            alert.save(update_fields=["acknowledged_at", "acknowledged_by"])
    return alert
