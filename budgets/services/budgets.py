from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from budgets.choices import DEFAULT_THRESHOLDS, CarryOver, PeriodKind, ScopeType
from budgets.models import Budget, BudgetPeriod, Team, Threshold, User
from budgets.principals import Principal
from budgets.services.periods import carry_over_check
from costswitch.errors import NotFound, PermissionDenied, ValidationFailed


@dataclass(frozen=True)
class ThresholdSpec:
    percent: Decimal
    actions: tuple[str, ...]


DEFAULT_THRESHOLD_SPECS = tuple(ThresholdSpec(Decimal(p), tuple(a)) for p, a in DEFAULT_THRESHOLDS)


def _resolve_scope(principal: Principal, scope_type: str, scope_id: int) -> dict:
    """The scope's foreign keys, if the caller may manage budgets there (404 when it is not even visible)."""
    org = principal.organization
    if scope_type == ScopeType.ORGANIZATION:
        found = scope_id == org.pk
        fields = {}
    elif scope_type == ScopeType.TEAM:
        team = Team.objects.filter(pk=scope_id, organization=org).first()
        found, fields = team is not None, {"team": team}
    else:
        user = User.objects.filter(pk=scope_id, organization=org).first()
        found, fields = user is not None, {"user": user}
    if not found or not principal.can_see_scope(scope_type, scope_id):
        raise NotFound(f"No {scope_type} with id {scope_id}.", code="unknown_scope")
    if not principal.can_manage_scope(scope_type, scope_id):
        raise PermissionDenied(f"You may not manage budgets of this {scope_type}.")
    return fields


def _check_dates(period: str, starts_at: datetime, ends_at: datetime | None) -> None:
    if period == PeriodKind.CUSTOM and ends_at is None:
        raise ValidationFailed("endDate is required for a custom period.", code="end_date_required")
    if ends_at is not None and ends_at <= starts_at:
        raise ValidationFailed("endDate must be after startDate.", code="end_before_start")


def _replace_thresholds(budget: Budget, thresholds) -> None:
    budget.thresholds.all().delete()
    # One by one, not bulk_create: each new threshold must reach the audit log (bulk_create sends no
    # signals), and a budget has a handful.
    for spec in thresholds:
        Threshold.objects.create(budget=budget, percent=spec.percent, actions=list(spec.actions))


@transaction.atomic
def budget_create(
    *,
    principal: Principal,
    name: str,
    scope_type: str,
    scope_id: int,
    limit: Decimal,
    period: str = PeriodKind.MONTHLY,
    currency: str | None = None,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    thresholds: list[ThresholdSpec] | None = None,
    restricted_models: list[str] | None = None,
    max_cost_per_request: Decimal | None = None,
    carry_over: str = CarryOver.NONE,
    carry_over_cap: Decimal | None = None,
) -> Budget:
    """Create a budget on a scope the caller manages. Without thresholds it gets the defaults."""
    scope_fields = _resolve_scope(principal, scope_type, scope_id)
    currency = currency or settings.COSTSWITCH_CURRENCY
    if currency != settings.COSTSWITCH_CURRENCY:
        raise ValidationFailed(
            f"This deployment keeps budgets in {settings.COSTSWITCH_CURRENCY}, not {currency}.",
            code="unsupported_currency",
        )
    starts_at = starts_at or timezone.now()
    _check_dates(period, starts_at, ends_at)
    carry_over_check(period=period, carry_over=carry_over, carry_over_cap=carry_over_cap)
    budget = Budget.objects.create(
        organization=principal.organization,
        scope_type=scope_type,
        name=name,
        period=period,
        limit=limit,
        currency=currency,
        starts_at=starts_at,
        ends_at=ends_at,
        restricted_models=restricted_models or [],
        max_cost_per_request=max_cost_per_request,
        carry_over=carry_over,
        carry_over_cap=carry_over_cap,
        **scope_fields,
    )
    _replace_thresholds(budget, DEFAULT_THRESHOLD_SPECS if thresholds is None else thresholds)
    return budget


_UPDATABLE = {
    "name",
    "limit",
    "ends_at",
    "restricted_models",
    "max_cost_per_request",
    "is_active",
    "carry_over",
    "carry_over_cap",
}


@transaction.atomic
def budget_update(*, principal: Principal, budget: Budget, thresholds=None, **changes) -> Budget:
    """Edit a budget. A new limit applies to the open period at once (never to closed ones)."""
    if not principal.can_manage_scope(budget.scope_type, budget.scope_id):
        raise PermissionDenied("You may not manage this budget.")
    fixed = sorted(set(changes) - _UPDATABLE)
    if fixed:
        raise ValidationFailed(
            f"{', '.join(fixed)} cannot change after creation; create a new budget instead.",
            code="immutable_field",
        )
    for name, value in changes.items():
        setattr(budget, name, value)
    _check_dates(budget.period, budget.starts_at, budget.ends_at)
    # A carry-over change applies from the next period: an open period's carried amount is fixed.
    carry_over_check(period=budget.period, carry_over=budget.carry_over, carry_over_cap=budget.carry_over_cap)
    budget.save()
    if "limit" in changes:
        BudgetPeriod.objects.filter(budget=budget, closed_at__isnull=True, ends_at__gt=timezone.now()).update(
            limit=F("carried_over") + budget.limit
        )
    if thresholds is not None:
        _replace_thresholds(budget, thresholds)
    return budget


def budget_archive(*, principal: Principal, budget: Budget) -> Budget:
    """Budgets are never deleted (the ledger points at them); archiving stops enforcement."""
    return budget_update(principal=principal, budget=budget, is_active=False)
