"""Reads behind the web pages (dashboard, budget detail): the budget tree, spend breakdowns and
daily spend. Every read starts from a principal-scoped selector, so a page never shows more than
the API would."""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Prefetch, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from budgets.choices import ScopeType
from budgets.models import Alert, Budget, BudgetPeriod, Membership, Team, UsageCharge, UsageRecord
from budgets.principals import Principal
from budgets.selectors import BudgetStatusReport, budget_status, budgets_for_principal, usage_for_principal
from budgets.services.alerts import alerts_for_principal
from costswitch.money import ZERO


@dataclass
class TreeNode:
    """One scope of the tree with its budgets' status, and the scopes below it."""

    label: str
    scope_type: str
    reports: list[BudgetStatusReport] = field(default_factory=list)
    children: list["TreeNode"] = field(default_factory=list)


def _with_period_in_force(queryset: QuerySet[Budget], now: datetime) -> QuerySet[Budget]:
    return queryset.prefetch_related(
        "thresholds",
        Prefetch(
            "periods",
            queryset=BudgetPeriod.objects.filter(starts_at__lte=now, ends_at__gt=now),
            to_attr="periods_in_force",
        ),
    )


def budget_statuses(principal: Principal, *, now: datetime | None = None, active_only: bool = True):
    """Status of every budget the principal may see (three queries whatever their number)."""
    now = now or timezone.now()
    budgets = budgets_for_principal(principal)
    if active_only:
        budgets = budgets.filter(is_active=True)
    return [budget_status(budget=b, now=now) for b in _with_period_in_force(budgets, now)]


def budget_tree(principal: Principal, *, now: datetime | None = None) -> list[TreeNode]:
    """organization -> team -> user, holding only the budgets the principal sees. A person's
    budgets sit under each visible team she belongs to (her primary team first)."""
    reports = budget_statuses(principal, now=now)
    org = TreeNode(principal.organization.name, ScopeType.ORGANIZATION)
    org.reports = [r for r in reports if r.budget.scope_type == ScopeType.ORGANIZATION]
    by_team: dict[int, TreeNode] = {}
    team_ids = {r.budget.team_id for r in reports if r.budget.scope_type == ScopeType.TEAM}
    user_reports = [r for r in reports if r.budget.scope_type == ScopeType.USER]
    memberships = list(
        Membership.objects.filter(
            user_id__in={r.budget.user_id for r in user_reports}, team__organization=principal.organization
        ).order_by("-is_primary", "team__name")
    )
    if principal.visible_team_ids is not None:
        memberships = [m for m in memberships if m.team_id in principal.visible_team_ids]
    team_ids |= {m.team_id for m in memberships}
    for team in Team.objects.filter(pk__in=team_ids).order_by("name"):
        node = TreeNode(team.name, ScopeType.TEAM)
        node.reports = [
            r for r in reports if r.budget.scope_type == ScopeType.TEAM and r.budget.team_id == team.pk
        ]
        by_team[team.pk] = node
        org.children.append(node)
    placed: set[int] = set()
    for membership in memberships:
        mine = [r for r in user_reports if r.budget.user_id == membership.user_id]
        if mine and membership.user_id not in placed:
            placed.add(membership.user_id)
            by_team[membership.team_id].children.append(
                TreeNode(mine[0].budget.scope_name, ScopeType.USER, mine)
            )
    unplaced = [r for r in user_reports if r.budget.user_id not in placed]
    if unplaced:
        org.children.append(
            TreeNode(
                "People without a visible team",
                ScopeType.TEAM,
                [],
                [TreeNode(r.budget.scope_name, ScopeType.USER, [r]) for r in unplaced],
            )
        )
    return [org]


def period_start(principal: Principal, *, now: datetime | None = None) -> datetime:
    """Start of "this period" for the dashboard: the organization budget's period in force, or
    the calendar month in the organization's time zone."""
    now = now or timezone.now()
    org_budget = (
        Budget.objects.filter(
            organization=principal.organization, scope_type=ScopeType.ORGANIZATION, is_active=True
        )
        .select_related("organization")
        .order_by("pk")
        .first()
    )
    bounds = org_budget.period_bounds_at(now) if org_budget else None
    if bounds:
        return bounds[0]
    local = now.astimezone(principal.organization.tzinfo)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def spend_by(
    principal: Principal, *, dimension: str, since: datetime, top: int = 8
) -> list[tuple[str, Decimal]]:
    """Visible spend since `since`, per model or per team, largest first."""
    column = {"model": "model", "team": "team__name"}[dimension]
    rows = (
        usage_for_principal(principal)
        .filter(occurred_at__gte=since)
        .values(column)
        .annotate(total=Sum("cost"))
        .order_by("-total", column)[:top]
    )
    return [(row[column] or "(no team)", row["total"]) for row in rows]


def active_alerts(principal: Principal, *, budget: Budget | None = None, limit: int = 20) -> QuerySet[Alert]:
    """Alerts nobody has acknowledged yet, newest first."""
    alerts = alerts_for_principal(principal).filter(acknowledged_at__isnull=True).select_related("budget")
    if budget is not None:
        alerts = alerts.filter(budget=budget)
    return alerts[:limit]


def daily_spend(report: BudgetStatusReport, *, now: datetime | None = None) -> list[tuple[date, Decimal]]:
    """Each day's charges on the budget's period in force, from its first day to today (zeros kept)."""
    now = now or timezone.now()
    if report.period_start is None:
        return []
    tz = report.budget.organization.tzinfo
    totals = dict(
        UsageCharge.objects.filter(period__budget=report.budget, period__starts_at=report.period_start)
        .annotate(day=TruncDate("usage__occurred_at", tzinfo=tz))
        .values("day")
        .annotate(total=Sum("amount"))
        .values_list("day", "total")
    )
    first = report.period_start.astimezone(tz).date()
    last = min(now, report.period_end - timedelta(microseconds=1)).astimezone(tz).date()
    days = []
    day = first
    while day <= last:
        days.append((day, totals.get(day, ZERO)))
        day += timedelta(days=1)
    return days


def period_days(report: BudgetStatusReport) -> int:
    if report.period_start is None:
        return 0
    tz = report.budget.organization.tzinfo
    return (
        (report.period_end - timedelta(microseconds=1)).astimezone(tz).date()
        - report.period_start.astimezone(tz).date()
    ).days + 1


def budget_usage(principal: Principal, budget: Budget) -> QuerySet[UsageRecord]:
    """Usage records charged to this budget (any period), that the principal may see."""
    return (
        usage_for_principal(principal)
        .filter(charges__period__budget=budget)
        .select_related("team", "user")
        .distinct()
        .order_by("-occurred_at", "-pk")
    )


# The outcome filter's value for records whose caller reported no outcome.
NO_OUTCOME = "none"


@dataclass(frozen=True)
class UsageFilters:
    """What the budget page's usage table is narrowed to; None (or "") means any. `since` and
    `until` are days in the organization's time zone, both included."""

    model: str = ""
    team_id: int | None = None
    user_id: int | None = None
    since: date | None = None
    until: date | None = None
    task_type: str = ""
    outcome: str = ""


def _day_start(day: date, tz) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=tz)


def budget_usage_filtered(
    principal: Principal, budget: Budget, filters: UsageFilters
) -> QuerySet[UsageRecord]:
    """`budget_usage` narrowed by the filters of the budget page."""
    usage = budget_usage(principal, budget)
    tz = budget.organization.tzinfo
    if filters.model:
        usage = usage.filter(model=filters.model)
    if filters.team_id is not None:
        usage = usage.filter(team_id=filters.team_id)
    if filters.user_id is not None:
        usage = usage.filter(user_id=filters.user_id)
    if filters.since is not None:
        usage = usage.filter(occurred_at__gte=_day_start(filters.since, tz))
    if filters.until is not None:
        usage = usage.filter(occurred_at__lt=_day_start(filters.until + timedelta(days=1), tz))
    if filters.task_type:
        usage = usage.filter(task_type=filters.task_type)
    if filters.outcome:
        usage = usage.filter(outcome="" if filters.outcome == NO_OUTCOME else filters.outcome)
    return usage


@dataclass(frozen=True)
class UsageFilterChoices:
    """The values the budget's visible usage holds, offered by the filter form."""

    models: list[str]
    teams: list[tuple[int, str]]
    users: list[tuple[int, str]]
    task_types: list[str]


def usage_filter_choices(principal: Principal, budget: Budget) -> UsageFilterChoices:
    """Distinct models, teams, people and task types of the budget's usage the principal may see
    (four small queries), so the form offers only what can match."""
    usage = usage_for_principal(principal).filter(charges__period__budget=budget)

    def distinct(column: str) -> list:
        return list(usage.exclude(**{column: ""}).order_by(column).values_list(column, flat=True).distinct())

    teams = (
        usage.filter(team__isnull=False)
        .order_by("team__name")
        .values_list("team_id", "team__name")
        .distinct()
    )
    users = (
        usage.filter(user__isnull=False)
        .order_by("user__username")
        .values_list("user_id", "user__username")
        .distinct()
    )
    return UsageFilterChoices(
        models=distinct("model"),
        teams=list(dict.fromkeys(teams)),
        users=list(dict.fromkeys(users)),
        task_types=distinct("task_type"),
    )


@dataclass(frozen=True)
class ScopeChoice:
    value: str  # "team:3"
    label: str


def manageable_scopes(principal: Principal) -> list[ScopeChoice]:
    """Scopes the principal may create budgets on, as form choices (finance and admins: all of
    them; a team lead: her members' user budgets, never her own; members: none)."""
    org = principal.organization
    choices = []
    if principal.api_key is not None:
        return choices
    if principal.org_wide:
        choices.append(ScopeChoice(f"{ScopeType.ORGANIZATION}:{org.pk}", f"Organization: {org.name}"))
        choices += [
            ScopeChoice(f"{ScopeType.TEAM}:{t.pk}", f"Team: {t.name}") for t in org.teams.order_by("name")
        ]
        users = org.users.order_by("username")
    elif principal.lead_team_ids:
        users = (
            org.users.filter(memberships__team_id__in=principal.lead_team_ids)
            .exclude(pk=principal.user.pk)
            .distinct()
            .order_by("username")
        )
    else:
        return choices
    choices += [ScopeChoice(f"{ScopeType.USER}:{u.pk}", f"Person: {u.get_username()}") for u in users]
    return choices
