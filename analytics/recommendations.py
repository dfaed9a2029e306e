"""Ranked, concrete recommendations: cheaper models that score about as well, and budgets that will
run out before their period ends.

Model recommendations look at the last `WINDOW_DAYS` of the ledger per (team, task type, model): when
a usable registry model scores within `QUALITY_TOLERANCE` points of the one used on that task type
and would have cost less for the same tokens, the difference, scaled to 30 days, is the expected
monthly saving. The quality impact quotes the registry scores and, when reported outcomes exist,
the success rates of both models on that task type in the organization.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from analytics.forecast import forecasts_for_principal
from analytics.spend import SpendQuery, usage_in_scope
from budgets.choices import UsageOutcome
from budgets.models import Team
from budgets.principals import Principal
from budgets.selectors import percent_of
from costswitch.money import ZERO, display_decimal, quantize_money
from models_registry.models import ModelProfile

WINDOW_DAYS = 30
QUALITY_TOLERANCE = 2
# A (team, task type, model) slice cheaper to leave alone: below this, a recommendation is noise.
MIN_MONTHLY_SAVINGS = Decimal("1")
MILLION = Decimal(1_000_000)
MONTH_DAYS = Decimal(30)


@dataclass(frozen=True)
class _Alternative:
    model: ModelProfile
    cost: Decimal


def _cost_at(model: ModelProfile, input_tokens: int, cached_tokens: int, output_tokens: int) -> Decimal:
    cached_price = model.cached_input_price_per_million
    if cached_price is None:
        cached_price = model.input_price_per_million
    return quantize_money(
        (
            (input_tokens - cached_tokens) * model.input_price_per_million
            + cached_tokens * cached_price
            + output_tokens * model.output_price_per_million
        )
        / MILLION
    )


def _cheapest_comparable(
    used: ModelProfile,
    task_type: str,
    usable: list[ModelProfile],
    tokens: tuple[int, int, int],
    actual: Decimal,
) -> _Alternative | None:
    """The usable model scoring within the tolerance of `used` on the task that would have cost least."""
    score = used.quality_for(task_type)
    if score is None:
        return None
    best = None
    for model in usable:
        other = model.quality_for(task_type)
        if model.pk == used.pk or other is None or other < score - QUALITY_TOLERANCE:
            continue
        cost = _cost_at(model, *tokens)
        if cost < actual and (best is None or (cost, model.pk) < (best.cost, best.model.pk)):
            best = _Alternative(model, cost)
    return best


def _money_text(amount: Decimal, currency: str) -> str:
    symbol = "$" if currency == "USD" else f"{currency} "
    return f"{symbol}{amount.quantize(Decimal('1')):,}" if amount >= 10 else f"{symbol}{amount:.2f}"


def _success_rates(rows) -> dict[tuple[str, str], Decimal]:
    judged = (
        rows.filter(outcome__in=[UsageOutcome.SUCCESS, UsageOutcome.FAILURE])
        .order_by()
        .values("model", "task_type")
        .annotate(n=Count("pk"), ok=Count("pk", filter=Q(outcome=UsageOutcome.SUCCESS)))
    )
    return {(r["model"], r["task_type"]): percent_of(Decimal(r["ok"]), Decimal(r["n"])) for r in judged}


def model_recommendations(
    *, principal: Principal, now: datetime | None = None, currency: str = "USD"
) -> list[dict]:
    """Cheaper comparable models per (team, task type, model) slice the caller can see."""
    now = now or timezone.now()
    since = now - timedelta(days=WINDOW_DAYS)
    rows = usage_in_scope(principal=principal, query=SpendQuery(since=since, until=now)).exclude(task_type="")
    slices = list(
        rows.order_by()
        .values("team_id", "task_type", "model")
        .annotate(
            requests=Count("pk"),
            input_tokens=Sum("input_tokens"),
            cached_tokens=Sum("cached_input_tokens"),
            output_tokens=Sum("output_tokens"),
            cost=Sum("cost"),
        )
    )
    if not slices:
        return []
    per_team_task: dict[tuple, int] = {}
    for row in slices:
        key = (row["team_id"], row["task_type"])
        per_team_task[key] = per_team_task.get(key, 0) + row["requests"]
    profiles = {m.pk: m for m in ModelProfile.objects.filter(pk__in={r["model"] for r in slices})}
    usable = list(ModelProfile.objects.usable())
    teams = dict(Team.objects.filter(pk__in={r["team_id"] for r in slices}).values_list("pk", "name"))
    rates = _success_rates(rows)
    scale = MONTH_DAYS / Decimal(WINDOW_DAYS)
    result = []
    for row in slices:
        used = profiles.get(row["model"])
        if used is None:
            continue
        tokens = (row["input_tokens"] or 0, row["cached_tokens"] or 0, row["output_tokens"] or 0)
        alternative = _cheapest_comparable(used, row["task_type"], usable, tokens, row["cost"])
        if alternative is None:
            continue
        monthly = quantize_money((row["cost"] - alternative.cost) * scale)
        if monthly < MIN_MONTHLY_SAVINGS:
            continue
        share = percent_of(
            Decimal(row["requests"]), Decimal(per_team_task[(row["team_id"], row["task_type"])])
        )
        task = row["task_type"]
        used_score, alt_score = used.quality_for(task), alternative.model.quality_for(task)
        who = f"Team {teams[row['team_id']]}" if row["team_id"] in teams else "Requests without a team"
        gap = used_score - alt_score
        quality_text = (
            f"scores within {gap} point{'s' if gap != 1 else ''} ({alt_score} vs {used_score})"
            if gap > 0
            else f"scores as well or better ({alt_score} vs {used_score})"
        )
        result.append(
            {
                "kind": "switch_model",
                "title": (
                    f"{who} sends "
                    f"{task} to {used.pk} {share.normalize():f}% of the time; {alternative.model.pk} "
                    f"{quality_text} on {task}: ~{_money_text(monthly, currency)}/month saved"
                ),
                "team_id": row["team_id"],
                "task_type": task,
                "current_model": used.pk,
                "suggested_model": alternative.model.pk,
                "share_percent": share,
                "requests": row["requests"],
                "current_cost": row["cost"],
                "suggested_cost": alternative.cost,
                "expected_monthly_savings": monthly,
                "quality_impact": {
                    "current_score": used_score,
                    "suggested_score": alt_score,
                    "score_difference": alt_score - used_score,
                    "current_success_rate": rates.get((used.pk, task)),
                    "suggested_success_rate": rates.get((alternative.model.pk, task)),
                },
            }
        )
    return result


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def budget_recommendations(*, principal: Principal, now: datetime | None = None) -> list[dict]:
    """A warning per visible budget forecast to reach its limit before its period ends."""
    result = []
    for forecast in forecasts_for_principal(principal=principal, now=now):
        reached = forecast.get("limit_reached_on")
        if not forecast.get("in_force") or reached is None:
            continue
        overrun = max(forecast["projected_total"] - forecast["limit"], ZERO)
        result.append(
            {
                "kind": "budget_exhaustion",
                "title": (
                    f"Budget {forecast['budget_name']!r} will be exhausted on the {_ordinal(reached.day)} "
                    f"({reached:%Y-%m-%d}) at the current rate; projected "
                    f"{display_decimal(forecast['projected_total'])} of {display_decimal(forecast['limit'])} "
                    f"{forecast['currency']}."
                ),
                "budget_id": forecast["budget_id"],
                "limit_reached_on": reached,
                "projected_total": forecast["projected_total"],
                "limit": forecast["limit"],
                "projected_overrun": overrun,
                "expected_monthly_savings": None,
                "quality_impact": None,
            }
        )
    return result


def recommendations_for_principal(
    *, principal: Principal, now: datetime | None = None, currency: str = "USD"
) -> list[dict]:
    """Budgets about to run out first (soonest first), then model switches by monthly saving;
    each item gets its `rank` (1 = act on it first)."""
    budgets = sorted(
        budget_recommendations(principal=principal, now=now),
        key=lambda r: (r["limit_reached_on"], r["budget_id"]),
    )
    models = sorted(
        model_recommendations(principal=principal, now=now, currency=currency),
        key=lambda r: (-r["expected_monthly_savings"], r["current_model"], r["task_type"], r["team_id"] or 0),
    )
    return [{"rank": rank, **item} for rank, item in enumerate([*budgets, *models], start=1)]
