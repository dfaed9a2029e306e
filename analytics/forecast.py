"""Budget forecasts: where the period will end and when the limit will be reached, with an interval.

The model is deliberately simple and explainable: the expected spend of a day is the mean spend of
that weekday over the last `LOOKBACK_DAYS` complete days (the overall daily mean for a weekday not
seen yet), so a team that spends on weekdays and idles at weekends is not projected as if it spent
every day. The interval is that expectation +- Z * sigma * sqrt(days), sigma being the standard
deviation of the days seen around their weekday's mean (days are taken as independent).

`budgets.selectors.budget_status` keeps its flat burn rate (the forecast alert uses it); this module
is the richer view for analytics, and falls back to that burn rate before a full day has been seen.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Sum
from django.db.models.functions import TruncDay
from django.utils import timezone

from analytics.spend import scope_check
from budgets.models import Budget, UsageCharge
from budgets.principals import Principal
from budgets.selectors import budget_status, budgets_for_principal
from costswitch.errors import NotFound
from costswitch.money import ZERO, quantize_money

LOOKBACK_DAYS = 28
# Two-sided 95% interval under a normal approximation.
Z_95 = Decimal("1.96")
ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Projection:
    """What the daily model says about the rest of a period."""

    method: str  # "weekday_seasonal", or "flat" (budget status burn rate) before a full day is seen
    daily_mean: Decimal
    weekday_expected: list[Decimal]  # Monday..Sunday
    sigma: Decimal
    projected_total: Decimal
    projected_low: Decimal
    projected_high: Decimal
    limit_reached_on: date | None
    limit_reached_earliest: date | None
    limit_reached_latest: date | None
    observed_days: int
    daily_expected: list[tuple[date, Decimal]] = field(default_factory=list)


def project(
    *,
    history: dict[date, Decimal],
    first_day: date,
    today: date,
    fraction_left_today: Decimal,
    end_day: date,
    spent: Decimal,
    limit: Decimal,
    flat_rate: Decimal = ZERO,
    z: Decimal = Z_95,
) -> Projection:
    """Project `spent` (everything booked so far, today's part included) to the end of `end_day`
    (exclusive). `history` maps local dates in [first_day, today) to what was spent on them (missing
    days spent nothing). Pure arithmetic on Decimals, so tests can pin known answers."""
    days = [first_day + timedelta(days=n) for n in range(max((today - first_day).days, 0))]
    if days:
        observed = [(day, history.get(day, ZERO)) for day in days]
        mean = sum((amount for _, amount in observed), ZERO) / len(observed)
        per_weekday: dict[int, list[Decimal]] = defaultdict(list)
        for day, amount in observed:
            per_weekday[day.weekday()].append(amount)
        expected = [
            sum(per_weekday[w], ZERO) / len(per_weekday[w]) if per_weekday[w] else mean for w in range(7)
        ]
        residuals = [amount - expected[day.weekday()] for day, amount in observed]
        # Degrees of freedom: one per weekday mean estimated.
        dof = len(observed) - len(per_weekday)
        sigma = (sum((r * r for r in residuals), ZERO) / dof).sqrt() if dof > 0 else ZERO
        method = "weekday_seasonal"
    else:
        mean, expected, sigma, method = flat_rate, [flat_rate] * 7, ZERO, "flat"

    # The rest of today (its expected share) and every full day up to the end.
    schedule: list[tuple[date, Decimal, Decimal]] = []  # (day, expected spend, weight in days)
    if today < end_day:
        schedule.append((today, expected[today.weekday()] * fraction_left_today, fraction_left_today))
    day = today + ONE_DAY
    while day < end_day:
        schedule.append((day, expected[day.weekday()], Decimal(1)))
        day += ONE_DAY

    cumulative = ZERO
    weight = ZERO
    reached = earliest = latest = None
    if spent >= limit:
        reached = earliest = latest = today
    daily_expected = []
    for day, amount, days_weight in schedule:
        cumulative += amount
        weight += days_weight
        spread = z * sigma * weight.sqrt()
        daily_expected.append((day, quantize_money(amount)))
        if reached is None and spent + cumulative >= limit:
            reached = day
        if earliest is None and spent + cumulative + spread >= limit:
            earliest = day
        if latest is None and spent + cumulative - spread >= limit:
            latest = day
    spread = z * sigma * weight.sqrt()
    projected = spent + cumulative
    return Projection(
        method=method,
        daily_mean=quantize_money(mean),
        weekday_expected=[quantize_money(value) for value in expected],
        sigma=quantize_money(sigma),
        projected_total=quantize_money(projected),
        projected_low=quantize_money(max(projected - spread, spent)),
        projected_high=quantize_money(projected + spread),
        limit_reached_on=reached,
        limit_reached_earliest=earliest,
        limit_reached_latest=latest,
        observed_days=len(days),
        daily_expected=daily_expected,
    )


def daily_spend(*, budget: Budget, since: datetime, until: datetime) -> dict[date, Decimal]:
    """What was booked on this budget (any of its periods) per local day of its organization."""
    tz = budget.organization.tzinfo
    rows = (
        UsageCharge.objects.filter(
            period__budget=budget, usage__occurred_at__gte=since, usage__occurred_at__lt=until
        )
        .annotate(day=TruncDay("usage__occurred_at", tzinfo=tz))
        .values("day")
        .annotate(total=Sum("amount"))
        .order_by()
    )
    return {row["day"].astimezone(tz).date(): row["total"] for row in rows}


def budget_forecast(*, budget: Budget, now: datetime | None = None) -> dict:
    """Projected period total and the date the limit will be reached, for the period in force."""
    now = now or timezone.now()
    status = budget_status(budget=budget, now=now)
    base = {
        "budget_id": budget.pk,
        "budget_name": budget.name,
        "scope_type": budget.scope_type,
        "scope_id": budget.scope_id,
        "scope_name": budget.scope_name,
        "currency": budget.currency,
        "period_start": status.period_start,
        "period_end": status.period_end,
        "spent": status.current_amount,
        "reserved": status.reserved,
        "limit": status.limit,
        "burn_rate": status.burn_rate,
    }
    if status.period_start is None:
        return {**base, "in_force": False}
    tz = budget.organization.tzinfo
    local_now = now.astimezone(tz)
    today = local_now.date()
    midnight = datetime.combine(today, time.min, tzinfo=tz)
    next_midnight = datetime.combine(today + ONE_DAY, time.min, tzinfo=tz)
    fraction_left = Decimal((next_midnight - now) // timedelta(microseconds=1)) / Decimal(
        (next_midnight - midnight) // timedelta(microseconds=1)
    )
    budget_first_day = budget.starts_at.astimezone(tz).date()
    # A budget that started mid-day has a partial first day: leave it out of the history.
    if budget.starts_at > datetime.combine(budget_first_day, time.min, tzinfo=tz):
        budget_first_day += ONE_DAY
    first_day = max(today - timedelta(days=LOOKBACK_DAYS), budget_first_day)
    history = daily_spend(
        budget=budget, since=datetime.combine(first_day, time.min, tzinfo=tz), until=midnight
    )
    # Days before the first spend are before the scope started using models, not idle days.
    first_day = min(history, default=today)
    end = status.period_end
    end_day = (end - timedelta(microseconds=1)).astimezone(tz).date() + ONE_DAY
    projection = project(
        history=history,
        first_day=first_day,
        today=today,
        fraction_left_today=fraction_left,
        end_day=end_day,
        spent=status.current_amount,
        limit=status.limit,
        flat_rate=status.burn_rate,
    )
    reached = projection.limit_reached_on
    return {
        **base,
        "in_force": True,
        "method": projection.method,
        "observed_days": projection.observed_days,
        "daily_mean": projection.daily_mean,
        "weekday_expected": projection.weekday_expected,
        "projected_total": projection.projected_total,
        "projected_low": projection.projected_low,
        "projected_high": projection.projected_high,
        "interval_confidence": 95,
        "will_exceed": reached is not None,
        "limit_reached_on": reached,
        "limit_reached_earliest": projection.limit_reached_earliest,
        "limit_reached_latest": projection.limit_reached_latest,
    }


def forecasts_for_principal(
    *,
    principal: Principal,
    now: datetime | None = None,
    scope_type: str | None = None,
    scope_id: int | None = None,
    budget_id: int | None = None,
) -> list[dict]:
    """Forecasts of the active budgets the caller can see (optionally one scope or one budget)."""
    budgets = budgets_for_principal(principal).filter(is_active=True).prefetch_related("thresholds")
    if budget_id is not None:
        budgets = budgets.filter(pk=budget_id)
        if not budgets:
            raise NotFound(f"Budget {budget_id} not found.")
    if scope_type is not None:
        scope_check(principal=principal, scope_type=scope_type, scope_id=scope_id)
        field_name = {"organization": "organization_id", "team": "team_id", "user": "user_id"}[scope_type]
        budgets = budgets.filter(scope_type=scope_type, **{field_name: scope_id})
    return [budget_forecast(budget=budget, now=now) for budget in budgets.order_by("pk")]
