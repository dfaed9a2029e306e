"""Spend selectors over the ledger: totals, breakdowns and trend series for any range and scope.

Whole local days already rolled up are read from the daily rollup (`analytics.rollup`,
`DailySpend`), the rest of the range (partial days at its edges, today, days not rolled up yet) from
`budgets.UsageRecord`, both restricted to what the caller may see (`budgets.selectors.visible_rows`),
and the two are added: the answer equals the ledger-only one (`rollup=False`). Breakdowns by
conversation or tag are ledger-only (the rollup does not keep them). The ledger's (organization,
occurred_at), (team, occurred_at) and (user, occurred_at) indexes serve the range filter.
Trend buckets are calendar days, ISO weeks or months in the organization's time zone.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek

from analytics.models import DailySpend
from analytics.rollup import local_midnight, rolled_up_days
from budgets.choices import ScopeType, UsageOutcome
from budgets.models import ApiKey, Team, UsageRecord, User
from budgets.principals import Principal
from budgets.selectors import usage_for_principal, visible_rows
from costswitch.errors import NotFound, ValidationFailed
from costswitch.money import ZERO, quantize_money

# groupBy value -> ledger column. `tag` is special: a record counts once under each of its tags.
GROUP_FIELDS: dict[str, str] = {
    "model": "model",
    "provider": "provider",
    "organization": "organization_id",
    "team": "team_id",
    "user": "user_id",
    "api_key": "api_key_id",
    "project": "project",
    "agent": "agent",
    "conversation": "conversation_id",
    "task_type": "task_type",
    "tag": "tags",
}
# Groupings the rollup can answer (the others are read from the ledger only).
ROLLUP_GROUPS = {
    "model",
    "provider",
    "organization",
    "team",
    "user",
    "api_key",
    "project",
    "agent",
    "task_type",
}
FIGURES = ("requests", "successes", "failures", "input_tokens", "output_tokens", "cost")
INTERVALS = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}
# A trend series longer than this many buckets is refused: nobody charts 20 years of days.
MAX_BUCKETS = 1000


@dataclass(frozen=True)
class SpendQuery:
    """What to aggregate: a [since, until) range and optionally one scope the caller can see."""

    since: datetime
    until: datetime
    scope_type: str | None = None
    scope_id: int | None = None


def _aggregates() -> dict:
    return {
        "requests": Count("pk"),
        "successes": Count("pk", filter=Q(outcome=UsageOutcome.SUCCESS)),
        "failures": Count("pk", filter=Q(outcome=UsageOutcome.FAILURE)),
        "input_tokens": Sum("input_tokens"),
        "output_tokens": Sum("output_tokens"),
        "cost": Sum("cost"),
    }


def _rollup_aggregates() -> dict:
    return {name: Sum(name) for name in FIGURES}


def _add(into: dict, row: dict) -> dict:
    """Add the figures of `row` (ledger or rollup aggregate) to `into`."""
    for name in FIGURES:
        zero = ZERO if name == "cost" else 0
        value = row.get(name) or zero
        into[name] = into.get(name, zero) + (value if name == "cost" else int(value))
    return into


def _figures(row: dict) -> dict:
    """Counts, tokens and cost of one aggregate row, with the averages derived from them. The cost
    per successful request divides all spend (failed calls cost too) by the successful ones."""
    requests = row.get("requests") or 0
    successes = row.get("successes") or 0
    cost = row.get("cost") or ZERO
    return {
        "requests": requests,
        "successes": successes,
        "failures": row.get("failures") or 0,
        "input_tokens": row.get("input_tokens") or 0,
        "output_tokens": row.get("output_tokens") or 0,
        "cost": cost,
        "average_cost_per_request": quantize_money(cost / requests) if requests else None,
        "cost_per_successful_request": quantize_money(cost / successes) if successes else None,
    }


def scope_check(*, principal: Principal, scope_type: str, scope_id: int | None) -> None:
    """404 unless the scope exists in the caller's organization and the caller can see it (an
    org-wide role sees every team id it is asked about, so existence is checked here too)."""
    org = principal.organization
    exists = {
        ScopeType.ORGANIZATION: lambda: scope_id == org.pk,
        ScopeType.TEAM: lambda: Team.objects.filter(pk=scope_id, organization=org).exists(),
        ScopeType.USER: lambda: User.objects.filter(pk=scope_id, organization=org).exists(),
    }.get(scope_type)
    if exists is None or not principal.can_see_scope(scope_type, scope_id) or not exists():
        raise NotFound(f"No {scope_type} with id {scope_id}.", code="unknown_scope")


def usage_in_scope(*, principal: Principal, query: SpendQuery) -> QuerySet[UsageRecord]:
    """Ledger rows of the range the caller may see, narrowed to one scope when asked. A scope the
    caller cannot see does not exist for it (404), as everywhere else."""
    if query.since >= query.until:
        raise ValidationFailed("since must be before until.", details={"since": ["Must be before until."]})
    rows = usage_for_principal(principal).filter(occurred_at__gte=query.since, occurred_at__lt=query.until)
    if query.scope_type is None:
        return rows
    scope_check(principal=principal, scope_type=query.scope_type, scope_id=query.scope_id)
    if query.scope_type == ScopeType.TEAM:
        return rows.filter(team_id=query.scope_id)
    if query.scope_type == ScopeType.USER:
        return rows.filter(user_id=query.scope_id)
    return rows


@dataclass
class _Sources:
    """Where the figures of a query come from: ledger rows, plus rollup rows for whole days."""

    ledger: QuerySet[UsageRecord]
    rollup: QuerySet[DailySpend] | None


def _sources(*, principal: Principal, query: SpendQuery, rollup: bool) -> _Sources:
    """Split the range: whole local days the rollup holds are read from it, everything else from
    the ledger (the same visibility and scope filters on both)."""
    ledger = usage_in_scope(principal=principal, query=query)
    if not rollup:
        return _Sources(ledger=ledger, rollup=None)
    org = principal.organization
    tz = org.tzinfo
    first = query.since.astimezone(tz).date()
    if local_midnight(first, tz) < query.since:
        first += timedelta(days=1)
    last = query.until.astimezone(tz).date() - timedelta(days=1)
    if first > last:
        return _Sources(ledger=ledger, rollup=None)
    days = sorted(rolled_up_days(organization=org, first_day=first, last_day=last))
    if not days:
        return _Sources(ledger=ledger, rollup=None)
    runs: list[tuple[date, date]] = []  # contiguous runs of rolled-up days
    for day in days:
        if runs and runs[-1][1] + timedelta(days=1) == day:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    in_rollup = Q()
    for start, end in runs:
        in_rollup |= Q(day__range=(start, end))
    # The ledger answers the gaps between the runs: positive ranges, so each is an index range scan.
    gaps = Q()
    cursor = query.since
    for start, end in runs:
        run_since, run_until = local_midnight(start, tz), local_midnight(end + timedelta(days=1), tz)
        if cursor < run_since:
            gaps |= Q(occurred_at__gte=cursor, occurred_at__lt=run_since)
        cursor = run_until
    if cursor < query.until:
        gaps |= Q(occurred_at__gte=cursor, occurred_at__lt=query.until)
    rows = visible_rows(principal, DailySpend.objects.all()).filter(in_rollup)
    if query.scope_type == ScopeType.TEAM:
        rows = rows.filter(team_id=query.scope_id)
    elif query.scope_type == ScopeType.USER:
        rows = rows.filter(user_id=query.scope_id)
    return _Sources(ledger=ledger.filter(gaps) if gaps else ledger.none(), rollup=rows)


def spend_summary(*, principal: Principal, query: SpendQuery, rollup: bool = True) -> dict:
    """Totals of the range: one aggregate query on the ledger, one on the rollup."""
    sources = _sources(principal=principal, query=query, rollup=rollup)
    total = _add({}, sources.ledger.aggregate(**_aggregates()))
    if sources.rollup is not None:
        _add(total, sources.rollup.aggregate(**_rollup_aggregates()))
    return _figures(total)


def spend_breakdown(
    *, principal: Principal, query: SpendQuery, group_by: str, rollup: bool = True
) -> list[dict]:
    """Figures per value of `group_by` (see GROUP_FIELDS), dearest first. Each row has `key` (the
    raw value: a model id, a team id, a tag) and `label` (a name for ids, else the key)."""
    if group_by not in GROUP_FIELDS:
        raise ValidationFailed(
            f"groupBy must be one of {', '.join(GROUP_FIELDS)}.", details={"group_by": ["Unknown grouping."]}
        )
    sources = _sources(principal=principal, query=query, rollup=rollup and group_by in ROLLUP_GROUPS)
    if group_by == "tag":
        grouped = _by_tag(sources.ledger)
    else:
        column = GROUP_FIELDS[group_by]
        merged: dict = {}
        for row in sources.ledger.order_by().values(column).annotate(**_aggregates()):
            _add(merged.setdefault(row[column], {}), row)
        if sources.rollup is not None:
            for row in sources.rollup.order_by().values(column).annotate(**_rollup_aggregates()):
                _add(merged.setdefault(row[column], {}), row)
        grouped = [{"key": key, **figures} for key, figures in merged.items()]
    labels = _labels(group_by, [row["key"] for row in grouped], principal)
    result = [
        {"key": row["key"], "label": labels.get(row["key"], row["key"]), **_figures(row)} for row in grouped
    ]
    result.sort(key=lambda row: (-row["cost"], -row["requests"], str(row["key"])))
    return result


def _by_tag(rows: QuerySet[UsageRecord]) -> list[dict]:
    """A record with tags ["a", "b"] counts under both; untagged records are not listed."""
    sql, params = (
        rows.order_by()
        .values("tags", "outcome", "input_tokens", "output_tokens", "cost")
        .query.sql_with_params()
    )
    if connection.vendor == "postgresql":
        expand = "CROSS JOIN LATERAL jsonb_array_elements_text(u.tags) AS t(tag)"
        tag = "t.tag"
    else:
        expand = "CROSS JOIN json_each(u.tags) AS t"
        tag = "t.value"
    statement = (
        f"SELECT {tag}, COUNT(*), COUNT(*) FILTER (WHERE u.outcome = %s), "
        f"COUNT(*) FILTER (WHERE u.outcome = %s), SUM(u.input_tokens), SUM(u.output_tokens), SUM(u.cost) "
        f"FROM ({sql}) AS u {expand} GROUP BY {tag}"
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, [UsageOutcome.SUCCESS, UsageOutcome.FAILURE, *params])
        fetched = cursor.fetchall()
    names = ("key", "requests", "successes", "failures", "input_tokens", "output_tokens", "cost")
    result = []
    for values in fetched:
        row = dict(zip(names, values, strict=True))
        row["cost"] = Decimal(row["cost"] or 0)  # SQLite sums decimals as text or float-like values
        result.append(row)
    return result


def _labels(group_by: str, keys: list, principal: Principal) -> dict:
    ids = [key for key in keys if key is not None]
    if group_by == "team":
        return dict(Team.objects.filter(pk__in=ids).values_list("pk", "name"))
    if group_by == "user":
        return dict(User.objects.filter(pk__in=ids).values_list("pk", "username"))
    if group_by == "api_key":
        return dict(ApiKey.objects.filter(pk__in=ids).values_list("pk", "name"))
    if group_by == "organization":
        return {principal.organization.pk: principal.organization.name}
    return {}


def bucket_starts(since: datetime, until: datetime, interval: str, tz) -> list[date]:
    """Every bucket start (local date) that [since, until) touches: days, Monday-weeks or months."""
    first = since.astimezone(tz).date()
    last = (until - timedelta(microseconds=1)).astimezone(tz).date()
    if interval == "week":
        first -= timedelta(days=first.weekday())
    elif interval == "month":
        first = first.replace(day=1)
    starts = []
    current = first
    while current <= last:
        starts.append(current)
        if len(starts) > MAX_BUCKETS:
            raise ValidationFailed(
                f"The range has more than {MAX_BUCKETS} {interval}s; use a longer interval.",
                details={"interval": ["Too many buckets for the range."]},
            )
        if interval == "day":
            current += timedelta(days=1)
        elif interval == "week":
            current += timedelta(days=7)
        else:
            current = (current.replace(day=28) + timedelta(days=4)).replace(day=1)
    return starts


def _bucket_of(day: date, interval: str) -> date:
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def spend_trend(*, principal: Principal, query: SpendQuery, interval: str, rollup: bool = True) -> list[dict]:
    """One row per day, week or month of the range (empty buckets included, with zeros), bucketed
    in the organization's time zone."""
    if interval not in INTERVALS:
        raise ValidationFailed(
            f"interval must be one of {', '.join(INTERVALS)}.", details={"interval": ["Unknown interval."]}
        )
    tz = principal.organization.tzinfo
    starts = bucket_starts(query.since, query.until, interval, tz)
    sources = _sources(principal=principal, query=query, rollup=rollup)
    by_start: dict[date, dict] = {}
    rows = (
        sources.ledger.order_by()
        .annotate(bucket=INTERVALS[interval]("occurred_at", tzinfo=tz))
        .values("bucket")
        .annotate(**_aggregates())
    )
    for row in rows:
        _add(by_start.setdefault(row["bucket"].astimezone(tz).date(), {}), row)
    if sources.rollup is not None:
        for row in sources.rollup.order_by().values("day").annotate(**_rollup_aggregates()):
            _add(by_start.setdefault(_bucket_of(row["day"], interval), {}), row)
    return [
        {
            "period_start": start,
            "starts_at": datetime.combine(start, time.min, tzinfo=tz),
            **_figures(by_start.get(start, {})),
        }
        for start in starts
    ]
