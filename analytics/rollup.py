"""The daily spend rollup: ledger figures per organization, local day and breakdown dimensions.

Spend selectors (`analytics.spend`) read whole days from `DailySpend` and the rest of a range (the
partial days at its edges, today, any day not rolled up) from the ledger, so an answer costs about
the same at 10 million usage records as at 10 thousand, and equals the ledger-only answer.

A build replaces the figures of a range of ended local days of one organization in one transaction,
under a per-organization advisory lock (delete + INSERT ... SELECT), then marks each day with the
moment it was read (`DailySpendDay`): running it twice, or concurrently, gives the same rows.

Lag: the ledger stays the source of truth and a day's rollup is a snapshot. Usage recorded late (a
late settle, a reconciliation adjustment dated in the past) reaches the rollup when its day is
rebuilt: within 10 minutes for the last `RECENT_DAYS` days (beat `rollup-spend-recent`), within a day
for the last `DEEP_DAYS` days (beat `rollup-spend-deep`); older days only with
`manage.py rollup_spend --since DATE`. Today is never rolled up: it is always read from the ledger.
"""

import logging
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from analytics.models import DailySpend, DailySpendDay
from budgets.choices import UsageOutcome
from budgets.models import Organization, UsageRecord
from costswitch.errors import ValidationFailed

logger = logging.getLogger(__name__)

# Ended days rebuilt by the 10-minute beat task, and by the daily deep pass.
RECENT_DAYS = 2
DEEP_DAYS = 35
# The ledger columns a rollup row is keyed by (besides organization and day).
DIMENSIONS = ("team_id", "user_id", "api_key_id", "model", "provider", "task_type", "project", "agent")
FIGURES = ("requests", "successes", "failures", "input_tokens", "output_tokens", "cost")
# First key of pg_advisory_xact_lock(int, int): "DSPN"; the second is the organization id.
_LOCK_CLASS = 0x4453504E
# A backfill longer than this many days is refused (about 10 years).
MAX_DAYS = 3700


@dataclass
class RollupResult:
    """What one build did for one organization."""

    organization: str
    first_day: date | None
    last_day: date | None
    days: int = 0
    rows: int = 0
    records: int = 0
    skipped: list[str] = field(default_factory=list)


def local_midnight(day: date, tz) -> datetime:
    """The moment a local day starts (a zone whose midnight does not exist starts at the first
    valid instant zoneinfo gives; the same rule the trend buckets use)."""
    return datetime.combine(day, time.min, tzinfo=tz)


def last_ended_day(organization: Organization, now: datetime) -> date:
    """Yesterday in the organization's time zone: the newest day that can be rolled up."""
    return now.astimezone(organization.tzinfo).date() - timedelta(days=1)


def daily_spend_build(
    *, organization: Organization, first_day: date, last_day: date, now: datetime | None = None
) -> RollupResult:
    """(Re)build the rollup of [first_day, last_day] (local days) of one organization, clipped to
    the days that have ended. Idempotent; concurrent builds of one organization take turns."""
    now = now or timezone.now()
    last_day = min(last_day, last_ended_day(organization, now))
    result = RollupResult(organization=organization.slug, first_day=first_day, last_day=last_day)
    if first_day > last_day:
        result.skipped.append("no ended day in the range")
        return result
    if (last_day - first_day).days >= MAX_DAYS:
        raise ValidationFailed(
            f"A rollup covers at most {MAX_DAYS} days.", details={"since": ["Too many days to roll up."]}
        )
    tz = organization.tzinfo
    since, until = local_midnight(first_day, tz), local_midnight(last_day + timedelta(days=1), tz)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_CLASS, organization.pk])
        DailySpend.objects.filter(organization=organization, day__range=(first_day, last_day)).delete()
        DailySpendDay.objects.filter(organization=organization, day__range=(first_day, last_day)).delete()
        built_at = timezone.now()
        grouped = (
            UsageRecord.objects.filter(
                organization=organization, occurred_at__gte=since, occurred_at__lt=until
            )
            .order_by()
            .annotate(day=TruncDate("occurred_at", tzinfo=tz))
            .values("organization_id", "day", *DIMENSIONS)
            .annotate(
                requests=Count("pk"),
                successes=Count("pk", filter=Q(outcome=UsageOutcome.SUCCESS)),
                failures=Count("pk", filter=Q(outcome=UsageOutcome.FAILURE)),
                input_tokens=Sum("input_tokens"),
                output_tokens=Sum("output_tokens"),
                cost=Sum("cost"),
            )
        )
        select_sql, params = grouped.query.sql_with_params()
        columns = ("organization_id", "day", *DIMENSIONS, *FIGURES)
        quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
        picked = ", ".join(f"g.{connection.ops.quote_name(c)}" for c in columns)
        table = connection.ops.quote_name(DailySpend._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} ({quoted}) SELECT {picked} FROM ({select_sql}) AS g",
                params,
            )
            result.rows = max(cursor.rowcount, 0)
        per_day = dict(
            DailySpend.objects.filter(organization=organization, day__range=(first_day, last_day))
            .order_by()
            .values("day")
            .annotate(n=Count("pk"))
            .values_list("day", "n")
        )
        result.records = (
            DailySpend.objects.filter(organization=organization, day__range=(first_day, last_day)).aggregate(
                n=Sum("requests")
            )["n"]
            or 0
        )
        days = [first_day + timedelta(days=i) for i in range((last_day - first_day).days + 1)]
        DailySpendDay.objects.bulk_create(
            DailySpendDay(
                organization=organization,
                day=day,
                timezone=organization.timezone,
                built_at=built_at,
                rows=per_day.get(day, 0),
            )
            for day in days
        )
        result.days = len(days)
    return result


def daily_spend_build_all(
    *, days: int = RECENT_DAYS, since: date | None = None, organization: Organization | None = None
) -> list[RollupResult]:
    """Rebuild, for every organization (or one), the last `days` ended days, or every day from
    `since` (a local date) up to yesterday. Each organization in its own transaction."""
    now = timezone.now()
    organizations = [organization] if organization is not None else Organization.objects.order_by("pk")
    results = []
    for org in organizations:
        last = last_ended_day(org, now)
        first = since if since is not None else last - timedelta(days=days - 1)
        result = daily_spend_build(organization=org, first_day=first, last_day=last, now=now)
        logger.info(
            "rolled up %s: %d day(s) %s..%s, %d row(s) for %d record(s)",
            org.slug,
            result.days,
            result.first_day,
            result.last_day,
            result.rows,
            result.records,
        )
        results.append(result)
    return results


def rolled_up_days(*, organization: Organization, first_day: date, last_day: date) -> set[date]:
    """Days of [first_day, last_day] the rollup holds, built in the organization's current time
    zone (a day built before the zone changed is read from the ledger until it is rebuilt)."""
    return set(
        DailySpendDay.objects.filter(
            organization=organization, day__range=(first_day, last_day), timezone=organization.timezone
        ).values_list("day", flat=True)
    )
