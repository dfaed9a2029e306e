"""Reads of the budgets app: what a principal may see, and budget status figures."""

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal
from functools import cache

from django.db import connection
from django.db.models import Avg, Count, Q, QuerySet, Sum
from django.utils import timezone

from budgets.choices import (
    STATUS_ORDER,
    BudgetStatus,
    ReservationState,
    ScopeType,
    ThresholdAction,
    UsageOutcome,
)
from budgets.models import (
    WITH_OUTCOME,
    Budget,
    BudgetPeriod,
    Organization,
    Reservation,
    ReservationHold,
    Team,
    Threshold,
    UsageCharge,
    UsageRecord,
    User,
)
from budgets.principals import Principal
from costswitch.errors import NotFound
from costswitch.money import ZERO, quantize_money
from costswitch.rows import Columns, fetch_rows

HUNDRED = Decimal(100)
ONE_DAY = timedelta(days=1)
_BLOCKING = {ThresholdAction.BLOCK}
_RESTRICTING = {
    ThresholdAction.RESTRICT_MODELS,
    ThresholdAction.REQUIRE_APPROVAL,
    ThresholdAction.STRICT_COST_LIMIT,
    ThresholdAction.BLOCK_NON_ESSENTIAL,
}


def _attributed_to_visible(principal: Principal) -> Q:
    """Rows attributed to a team or user the principal can see."""
    if principal.org_wide:
        return Q()
    allowed = Q(pk__in=[])
    if principal.visible_team_ids:
        allowed |= Q(team_id__in=principal.visible_team_ids)
    if principal.visible_user_ids:
        allowed |= Q(user_id__in=principal.visible_user_ids)
    return allowed


def visible_rows(principal: Principal, queryset: QuerySet) -> QuerySet:
    """Rows of the caller's organization it may read, for anything recorded per request (usage,
    reservations, selection decisions): an API key its own rows; people those attributed to the
    teams and users they can see; finance and admins all of them."""
    queryset = queryset.filter(organization=principal.organization)
    if principal.api_key is not None:
        return queryset.filter(api_key=principal.api_key)
    return queryset.filter(_attributed_to_visible(principal))


def budgets_for_principal(principal: Principal) -> QuerySet[Budget]:
    queryset = Budget.objects.filter(organization=principal.organization).select_related(
        "organization", "team", "user"
    )
    if principal.org_wide:
        return queryset
    scope = Q(pk__in=[])
    if principal.visible_team_ids:
        scope |= Q(scope_type=ScopeType.TEAM, team_id__in=principal.visible_team_ids)
    if principal.visible_user_ids:
        scope |= Q(scope_type=ScopeType.USER, user_id__in=principal.visible_user_ids)
    return queryset.filter(scope)


def budget_get(*, principal: Principal, budget_id: int) -> Budget:
    budget = budgets_for_principal(principal).prefetch_related("thresholds").filter(pk=budget_id).first()
    if budget is None:
        raise NotFound(f"Budget {budget_id} not found.")
    return budget


def usage_for_principal(principal: Principal) -> QuerySet[UsageRecord]:
    return visible_rows(principal, UsageRecord.objects.all())


def reservations_for_principal(principal: Principal) -> QuerySet[Reservation]:
    return visible_rows(principal, Reservation.objects.all())


@dataclass
class BudgetStatusReport:
    """The seed's budget status contract, computed for one budget at one moment."""

    budget: Budget
    period_start: datetime | None
    period_end: datetime | None
    current_amount: Decimal
    reserved: Decimal
    limit: Decimal
    percent_used: Decimal
    percent_committed: Decimal
    remaining: Decimal
    days_remaining: int
    burn_rate: Decimal
    projected_total: Decimal
    status: str
    active_alerts: list[dict] = field(default_factory=list)
    cost_restrictions: dict = field(default_factory=dict)
    last_updated: datetime | None = None

    @property
    def crossed_actions(self) -> set[str]:
        """Every action of the thresholds this budget has crossed."""
        return {action for alert in self.active_alerts for action in alert["actions"]}


def percent_of(part: Decimal, whole: Decimal) -> Decimal:
    if whole <= 0:
        return HUNDRED if part > 0 else ZERO
    # Rounded down, never up: 49.9999% must not cross a 50% threshold, nor 99.9999% show exhausted.
    # Thresholds have two decimals, so comparing the floored figure is exact.
    return (part * HUNDRED / whole).quantize(Decimal("0.01"), rounding=ROUND_FLOOR)


def _status_for(crossed_actions: set[str], percent_committed: Decimal) -> str:
    if percent_committed >= HUNDRED or crossed_actions & _BLOCKING:
        return BudgetStatus.EXHAUSTED
    if crossed_actions & _RESTRICTING:
        return BudgetStatus.CRITICAL
    if crossed_actions:
        return BudgetStatus.WARNING
    return BudgetStatus.NORMAL


def cost_restrictions(budgets_and_actions: list[tuple[Budget, set[str]]]) -> dict:
    """What the crossed thresholds of these budgets impose on the next request, merged."""
    actions = set().union(*(acts for _, acts in budgets_and_actions)) if budgets_and_actions else set()
    restricted: list[str] = []
    ceilings: list[Decimal] = []
    for budget, acts in budgets_and_actions:
        if ThresholdAction.RESTRICT_MODELS in acts:
            restricted.extend(m for m in budget.restricted_models if m not in restricted)
        if ThresholdAction.STRICT_COST_LIMIT in acts and budget.max_cost_per_request is not None:
            ceilings.append(budget.max_cost_per_request)
    return {
        "model_downgrading": bool(
            actions & {ThresholdAction.PREFER_CHEAPER, ThresholdAction.RESTRICT_MODELS}
        ),
        "restricted_models": restricted,
        "max_cost_per_request": min(ceilings) if ceilings else None,
        "require_approval": ThresholdAction.REQUIRE_APPROVAL in actions,
        "block_non_essential": ThresholdAction.BLOCK_NON_ESSENTIAL in actions,
        "blocked": ThresholdAction.BLOCK in actions,
    }


def _current_period(budget: Budget, now: datetime) -> tuple[BudgetPeriod | None, tuple | None]:
    bounds = budget.period_bounds_at(now)
    if bounds is None:
        return None, None
    prefetched = getattr(budget, "periods_in_force", None)
    if prefetched is not None:
        period = next((p for p in prefetched if p.starts_at == bounds[0]), None)
    else:
        period = BudgetPeriod.objects.filter(budget=budget, starts_at=bounds[0]).first()
    return period, bounds


def _days(span: timedelta) -> Decimal:
    """A duration in days, exactly (integer microseconds, no float on the way)."""
    return Decimal(span // timedelta(microseconds=1)) / Decimal(86_400_000_000)


def budget_status(
    *, budget: Budget, now: datetime | None = None, thresholds: list[Threshold] | None = None
) -> BudgetStatusReport:
    """Status of the period in force now. Burn rate is spend per elapsed day (at least one day, so
    the first hours of a period do not extrapolate wildly); the projection continues it to the end.
    `thresholds`: the budget's, when the caller read them already."""
    now = now or timezone.now()
    period, bounds = _current_period(budget, now)
    spent = period.spent if period else ZERO
    reserved = period.reserved if period else ZERO
    limit = period.limit if period else budget.limit
    if bounds:
        start, end = bounds
        elapsed_days = _days(max(now - start, ONE_DAY))
        remaining_days = _days(max(end - now, timedelta(0)))
        days_remaining = math.ceil(remaining_days)
        burn_rate = quantize_money(spent / elapsed_days)
        projected = quantize_money(spent + burn_rate * remaining_days)
    else:
        start = end = None
        days_remaining, burn_rate, projected = 0, ZERO, spent
    percent_committed = percent_of(spent + reserved, limit)
    if thresholds is None:
        thresholds = list(budget.thresholds.all())
    crossed = [t for t in thresholds if percent_committed >= t.percent]
    crossed_actions = {action for t in crossed for action in t.actions}
    return BudgetStatusReport(
        budget=budget,
        period_start=start,
        period_end=end,
        current_amount=spent,
        reserved=reserved,
        limit=limit,
        percent_used=percent_of(spent, limit),
        percent_committed=percent_committed,
        remaining=limit - spent - reserved,
        days_remaining=days_remaining,
        burn_rate=burn_rate,
        projected_total=projected,
        status=_status_for(crossed_actions, percent_committed),
        active_alerts=[{"threshold": t.percent, "actions": list(t.actions)} for t in crossed],
        cost_restrictions=cost_restrictions([(budget, crossed_actions)]),
        last_updated=now,
    )


def worst_status(statuses) -> str:
    return max(statuses, key=STATUS_ORDER.index, default=BudgetStatus.NORMAL)


@dataclass
class ScopeStatusReport:
    scope_type: str
    scope_id: int
    budgets: list[BudgetStatusReport]
    aggregate_status: str
    cost_restrictions: dict


def scope_status(*, principal: Principal, scope_type: str, scope_id: int, now=None) -> ScopeStatusReport:
    """The scope's own budgets, and the status and restrictions in force for spending as that scope,
    which include its parents' budgets (a team is also bound by its organization's budget)."""
    if scope_type not in ScopeType.values:
        raise NotFound(f"Unknown scope type {scope_type!r}.", code="unknown_scope")
    if not principal.can_see_scope(scope_type, scope_id):
        raise NotFound(f"No {scope_type} with id {scope_id}.", code="unknown_scope")
    org = principal.organization
    own = Q(scope_type=scope_type, **{_SCOPE_FIELD[scope_type]: scope_id})
    chain = own | Q(scope_type=ScopeType.ORGANIZATION)
    if scope_type == ScopeType.USER:
        team_ids = list(org.teams.filter(memberships__user_id=scope_id).values_list("pk", flat=True))
        if not org.users.filter(pk=scope_id).exists():
            raise NotFound(f"No user with id {scope_id}.", code="unknown_scope")
        chain |= Q(scope_type=ScopeType.TEAM, team_id__in=team_ids)
    elif scope_type == ScopeType.TEAM and not org.teams.filter(pk=scope_id).exists():
        raise NotFound(f"No team with id {scope_id}.", code="unknown_scope")
    budgets = (
        Budget.objects.filter(chain, organization=org, is_active=True)
        .select_related("organization", "team", "user")
        .prefetch_related("thresholds")
    )
    reports = [budget_status(budget=budget, now=now) for budget in budgets]
    crossed = [(report.budget, report.crossed_actions) for report in reports]
    return ScopeStatusReport(
        scope_type=scope_type,
        scope_id=scope_id,
        budgets=[r for r in reports if r.budget.scope_type == scope_type],
        aggregate_status=worst_status(r.status for r in reports),
        cost_restrictions=cost_restrictions(crossed),
    )


def chain_budgets(*, organization: Organization, team: Team | None, user: User | None) -> QuerySet[Budget]:
    """Active budgets that a charge by (team, user) counts against: the user's, the team's, the org's.
    `chain_status` states the same rule in SQL (tests/budgets/selectors/test_chain_status.py keeps
    the two in step)."""
    scope = Q(scope_type=ScopeType.ORGANIZATION)
    if team is not None:
        scope |= Q(scope_type=ScopeType.TEAM, team=team)
    if user is not None:
        scope |= Q(scope_type=ScopeType.USER, user=user)
    return Budget.objects.filter(scope, organization=organization, is_active=True).select_related(
        "organization"
    )


@dataclass
class ChainStatusReport:
    """Where the caller's next request would be charged: every budget of its chain, and the one
    with the least room left (the budget that decides whether a request fits)."""

    budgets: list[BudgetStatusReport]
    tightest: BudgetStatusReport | None
    aggregate_status: str
    cost_restrictions: dict


@cache
def _chain_statement() -> tuple[str, Columns, Columns, Columns]:
    """The chain's budgets (`chain_budgets`' rule) with their periods in force and thresholds, in one
    statement: it runs before every admission, so it is written out (costswitch/rows.py says why)."""
    budget = Columns(Budget, "b")
    period = Columns(BudgetPeriod, "p")
    threshold = Columns(Threshold, "t")
    sql = f"""
        SELECT {budget.sql}, {period.sql}, {threshold.sql} FROM {budget.table}
        LEFT JOIN {period.table} ON p.budget_id = b.id AND p.starts_at <= %s AND p.ends_at > %s
        LEFT JOIN {threshold.table} ON t.budget_id = b.id
        WHERE b.organization_id = %s AND b.is_active = %s AND (b.scope_type = %s
            OR (b.scope_type = %s AND b.team_id = %s) OR (b.scope_type = %s AND b.user_id = %s))
        ORDER BY b.scope_type, b.name, b.id, t.percent
    """
    return sql, budget, period, threshold


def chain_status(
    *, principal: Principal, team: Team | None = None, user: User | None = None, now: datetime | None = None
) -> ChainStatusReport:
    """One query whatever the chain's length. `team` and `user` name an attribution other than the
    principal's own (already checked by the caller). Each budget carries its periods in force as
    `periods_in_force` (the ledger locks those)."""
    now = now or timezone.now()
    if team is None and user is None:
        team, user = principal.team, principal.user
    organization = principal.organization
    sql, budget_columns, period_columns, threshold_columns = _chain_statement()
    moment = connection.ops.adapt_datetimefield_value(now)
    rows = fetch_rows(
        sql,
        [
            moment,
            moment,
            organization.pk,
            True,
            ScopeType.ORGANIZATION,
            ScopeType.TEAM,
            team.pk if team else None,
            ScopeType.USER,
            user.pk if user else None,
        ],
    )
    budgets: dict[int, Budget] = {}
    periods: dict[int, dict[int, BudgetPeriod]] = {}
    thresholds: dict[int, dict[int, Threshold]] = {}
    period_at, threshold_at = len(budget_columns), len(budget_columns) + len(period_columns)
    for row in rows:  # a budget's row repeats for each of its thresholds
        pk = row[budget_columns.pk_index]
        if pk not in budgets:
            budgets[pk] = budget_columns.load(row)
            budgets[pk].organization = organization  # the chain's own: no join needed
            periods[pk], thresholds[pk] = {}, {}
        period_pk = row[period_at + period_columns.pk_index]
        if period_pk is not None and period_pk not in periods[pk]:
            periods[pk][period_pk] = period_columns.load(row, period_at)
        if (threshold := threshold_columns.load(row, threshold_at)) is not None:
            thresholds[pk][threshold.pk] = threshold
    reports = []
    for budget in budgets.values():
        budget.periods_in_force = list(periods[budget.pk].values())
        reports.append(budget_status(budget=budget, now=now, thresholds=list(thresholds[budget.pk].values())))
    crossed = [(report.budget, report.crossed_actions) for report in reports]
    return ChainStatusReport(
        budgets=reports,
        tightest=min(reports, key=lambda r: (r.remaining, r.budget.pk), default=None),
        aggregate_status=worst_status(r.status for r in reports),
        cost_restrictions=cost_restrictions(crossed),
    )


@dataclass(frozen=True)
class OutputTokenStats:
    samples: int
    mean: Decimal | None


def recent_output_tokens(*, organization: Organization, task_type: str, since: datetime) -> OutputTokenStats:
    """How long answers to this task type have been lately in this organization (from the ledger)."""
    row = UsageRecord.objects.filter(
        organization=organization, task_type=task_type, occurred_at__gte=since, output_tokens__gt=0
    ).aggregate(samples=Count("pk"), mean=Avg("output_tokens"))
    mean = row["mean"]
    return OutputTokenStats(samples=row["samples"], mean=None if mean is None else Decimal(str(mean)))


@dataclass(frozen=True)
class OutcomeStats:
    samples: int
    successes: int
    failures: int
    mean_rating: Decimal | None


def outcome_stats(*, organization: Organization, since: datetime) -> dict[tuple[str, str], OutcomeStats]:
    """Reported outcomes per (model, task type) since `since`: what the selection engine learns from."""
    rows = (
        UsageRecord.objects.filter(organization=organization, occurred_at__gte=since)
        .filter(WITH_OUTCOME)
        .values("model", "task_type")
        .annotate(
            samples=Count("pk"),
            successes=Count("pk", filter=Q(outcome=UsageOutcome.SUCCESS)),
            failures=Count("pk", filter=Q(outcome=UsageOutcome.FAILURE)),
            mean_rating=Avg("rating"),
        )
    )
    return {
        (row["model"], row["task_type"]): OutcomeStats(
            samples=row["samples"],
            successes=row["successes"],
            failures=row["failures"],
            mean_rating=None if row["mean_rating"] is None else Decimal(str(row["mean_rating"])),
        )
        for row in rows
    }


_SCOPE_FIELD = {
    ScopeType.ORGANIZATION: "organization_id",
    ScopeType.TEAM: "team_id",
    ScopeType.USER: "user_id",
}


@dataclass(frozen=True)
class PeriodDrift:
    """A period whose cached aggregates disagree with the ledger rows behind them."""

    period_id: int
    budget_id: int
    spent: Decimal
    charged: Decimal
    reserved: Decimal
    held: Decimal


def ledger_drift(*, open_only: bool = False) -> list[PeriodDrift]:
    """Periods where `spent` differs from the sum of their charges or `reserved` from the holds of
    pending reservations. Empty on a healthy ledger; two aggregate queries whatever its size."""
    periods = BudgetPeriod.objects.all()
    if open_only:
        periods = periods.filter(closed_at__isnull=True)
    charged = dict(
        UsageCharge.objects.filter(period__in=periods)
        .values("period_id")
        .annotate(total=Sum("amount"))
        .values_list("period_id", "total")
    )
    held = dict(
        ReservationHold.objects.filter(period__in=periods, reservation__state=ReservationState.PENDING)
        .values("period_id")
        .annotate(total=Sum("amount"))
        .values_list("period_id", "total")
    )
    drift = []
    for period in periods.only("pk", "budget_id", "spent", "reserved").order_by("pk"):
        # At the ledger's precision: SQLite (the embedded default) sums decimals as floats.
        spent_in_ledger = quantize_money(charged.get(period.pk, ZERO))
        held_in_ledger = quantize_money(held.get(period.pk, ZERO))
        if period.spent != spent_in_ledger or period.reserved != held_in_ledger:
            drift.append(
                PeriodDrift(
                    period.pk,
                    period.budget_id,
                    period.spent,
                    spent_in_ledger,
                    period.reserved,
                    held_in_ledger,
                )
            )
    return drift
