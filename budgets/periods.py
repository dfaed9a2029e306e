"""Calendar arithmetic for budget periods, in the organization's time zone."""

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from budgets.choices import PeriodKind


def _first_of_period(kind: str, day: date) -> date:
    if kind == PeriodKind.DAILY:
        return day
    if kind == PeriodKind.WEEKLY:
        return day - timedelta(days=day.weekday())
    if kind == PeriodKind.MONTHLY:
        return day.replace(day=1)
    if kind == PeriodKind.QUARTERLY:
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    if kind == PeriodKind.YEARLY:
        return day.replace(month=1, day=1)
    raise ValueError(f"no calendar period for {kind!r}")


def _add_period(kind: str, day: date) -> date:
    if kind == PeriodKind.DAILY:
        return day + timedelta(days=1)
    if kind == PeriodKind.WEEKLY:
        return day + timedelta(days=7)
    months = {PeriodKind.MONTHLY: 1, PeriodKind.QUARTERLY: 3, PeriodKind.YEARLY: 12}[kind]
    month_index = day.month - 1 + months
    return day.replace(year=day.year + month_index // 12, month=month_index % 12 + 1)


def period_bounds(
    kind: str,
    moment: datetime,
    tz: ZoneInfo,
    *,
    budget_starts_at: datetime,
    budget_ends_at: datetime | None = None,
) -> tuple[datetime, datetime] | None:
    """The [start, end) of the period of `kind` that contains `moment`, or None when the budget
    is not in force then. Boundaries are local midnights, so a monthly budget in Europe/Berlin
    rolls over at 00:00 Berlin time, whatever the UTC offset that day."""
    if moment < budget_starts_at or (budget_ends_at is not None and moment >= budget_ends_at):
        return None
    if kind == PeriodKind.CUSTOM:
        if budget_ends_at is None:
            raise ValueError("a custom budget needs an end")
        return budget_starts_at, budget_ends_at
    local_day = moment.astimezone(tz).date()
    first = _first_of_period(kind, local_day)
    start = datetime.combine(first, time.min, tzinfo=tz)
    end = datetime.combine(_add_period(kind, first), time.min, tzinfo=tz)
    # The first period of a budget starts when the budget does, not at the calendar boundary before it.
    start = max(start, budget_starts_at)
    if budget_ends_at is not None:
        end = min(end, budget_ends_at)
    return start, end
