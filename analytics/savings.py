"""Measured savings of model switching, with the quality signal next to them.

For every admitted request that was settled (a usage record exists for its reservation), the
baseline is what the requested model (or the deployment default, when none was named) would have
charged for the tokens the request really used, at today's registry list prices; the actual is
what the ledger booked. Savings = baseline - actual. Requests whose baseline model is unknown to the
registry are counted but not compared.

A request is "downgraded" when the selected model differs from its baseline model. Success rate
(reported outcomes) and mean rating are given for downgraded and other requests separately, so
"X% cheaper at Y% success" is measured, not claimed. The explainer's estimate (reservation-time
costs, `selection.selectors.decision_stats`) is included as well, for requests not settled yet.
"""

from decimal import Decimal

from django.conf import settings
from django.db.models import (
    Avg,
    BooleanField,
    Case,
    Count,
    DecimalField,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, NullIf

from analytics.spend import INTERVALS, SpendQuery, bucket_starts, scope_check
from budgets.choices import ScopeType, UsageOutcome
from budgets.models import Team
from budgets.principals import Principal
from budgets.selectors import percent_of
from costswitch.errors import ValidationFailed
from costswitch.money import MONEY_MAX_DIGITS, ZERO, quantize_money
from models_registry.models import ModelProfile
from selection.choices import DecisionOutcome
from selection.models import Decision
from selection.selectors import decision_stats, decisions_for_principal

MILLION = Decimal(1_000_000)
SAVINGS_GROUPS = ("team", "model", "baseline_model")


def _money(expression) -> ExpressionWrapper:
    return ExpressionWrapper(
        expression, output_field=DecimalField(max_digits=MONEY_MAX_DIGITS + 10, decimal_places=18)
    )


def _price(field_name: str) -> Subquery:
    return Subquery(ModelProfile.objects.filter(pk=OuterRef("baseline_model")).values(field_name)[:1])


def admitted_decisions(*, principal: Principal, query: SpendQuery) -> QuerySet[Decision]:
    """Admitted decisions of the range the caller may see, in the requested scope."""
    if query.since >= query.until:
        raise ValidationFailed("since must be before until.", details={"since": ["Must be before until."]})
    decisions = decisions_for_principal(principal).filter(
        created_at__gte=query.since, created_at__lt=query.until
    )
    if query.scope_type is not None:
        scope_check(principal=principal, scope_type=query.scope_type, scope_id=query.scope_id)
        if query.scope_type == ScopeType.TEAM:
            decisions = decisions.filter(team_id=query.scope_id)
        elif query.scope_type == ScopeType.USER:
            decisions = decisions.filter(user_id=query.scope_id)
    return decisions


def _with_counterfactual(decisions: QuerySet[Decision]) -> QuerySet[Decision]:
    """Annotate each decision with its baseline model and what it would have cost on the tokens
    really used (cached input at the cached price when the model has one, as the pricing does)."""
    usage = "reservation__usage__"
    uncached = F(f"{usage}input_tokens") - F(f"{usage}cached_input_tokens")
    return (
        decisions.filter(outcome=DecisionOutcome.ADMITTED)
        .annotate(
            baseline_model=Coalesce(
                NullIf("requested_model", Value("")), Value(settings.COSTSWITCH_DEFAULT_MODEL)
            ),
        )
        .annotate(
            baseline_input_price=_price("input_price_per_million"),
            baseline_output_price=_price("output_price_per_million"),
            baseline_cached_price=Coalesce(
                _price("cached_input_price_per_million"), _price("input_price_per_million")
            ),
        )
        .annotate(
            row_actual=F(f"{usage}cost"),
            row_baseline=_money(
                (
                    uncached * F("baseline_input_price")
                    + F(f"{usage}cached_input_tokens") * F("baseline_cached_price")
                    + F(f"{usage}output_tokens") * F("baseline_output_price")
                )
                / Value(MILLION)
            ),
            is_downgraded=Case(
                When(~Q(selected_model=F("baseline_model")), then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            ),
            usage_outcome=F(f"{usage}outcome"),
            usage_rating=F(f"{usage}rating"),
        )
    )


def _aggregates() -> dict:
    compared = Q(reservation__usage__isnull=False, baseline_input_price__isnull=False)
    judged = Q(usage_outcome__in=[UsageOutcome.SUCCESS, UsageOutcome.FAILURE])
    success = Q(usage_outcome=UsageOutcome.SUCCESS)
    aggregates = {
        "admitted": Count("pk"),
        "compared": Count("pk", filter=compared),
        "downgraded": Count("pk", filter=compared & Q(is_downgraded=True)),
        "actual_cost": Sum("row_actual", filter=compared),
        "baseline_cost": Sum("row_baseline", filter=compared),
    }
    for name, flag in (("downgraded", True), ("kept", False)):
        which = compared & Q(is_downgraded=flag)
        aggregates[f"{name}_judged"] = Count("pk", filter=which & judged)
        aggregates[f"{name}_successes"] = Count("pk", filter=which & success)
        aggregates[f"{name}_rating"] = Avg("usage_rating", filter=which)
        aggregates[f"{name}_actual"] = Sum("row_actual", filter=which)
        aggregates[f"{name}_baseline"] = Sum("row_baseline", filter=which)
    return aggregates


def _quality(row: dict, name: str, count: int) -> dict:
    judged = row[f"{name}_judged"]
    successes = row[f"{name}_successes"]
    rating = row[f"{name}_rating"]
    actual = row[f"{name}_actual"] or ZERO
    baseline = quantize_money(row[f"{name}_baseline"] or ZERO)
    return {
        "requests": count,
        "actual_cost": actual,
        "baseline_cost": baseline,
        "savings": baseline - actual,
        "judged": judged,
        "successes": successes,
        "success_rate": percent_of(Decimal(successes), Decimal(judged)) if judged else None,
        "mean_rating": Decimal(str(rating)).quantize(Decimal("0.01")) if rating is not None else None,
    }


def _figures(row: dict) -> dict:
    actual = row["actual_cost"] or ZERO
    baseline = quantize_money(row["baseline_cost"] or ZERO)
    compared = row["compared"]
    downgraded = _quality(row, "downgraded", row["downgraded"])
    kept = _quality(row, "kept", compared - row["downgraded"])
    return {
        "admitted": row["admitted"],
        "compared": compared,
        "actual_cost": actual,
        "baseline_cost": baseline,
        "savings": baseline - actual,
        "savings_percent": percent_of(baseline - actual, baseline) if baseline > 0 else None,
        "downgraded_share": percent_of(Decimal(row["downgraded"]), Decimal(compared)) if compared else None,
        "downgraded": downgraded,
        "not_downgraded": kept,
    }


def _headline(figures: dict) -> str:
    if not figures["compared"] or figures["savings_percent"] is None:
        return "No settled requests to compare in this range."
    rate = figures["downgraded"]["success_rate"]
    other = figures["not_downgraded"]["success_rate"]
    text = (
        f"{figures['savings_percent']}% cheaper than the requested models "
        f"({figures['downgraded_share']}% of requests switched to a different model)"
    )
    if rate is not None:
        text += f", at a {rate}% success rate on switched requests"
        if other is not None:
            text += f" vs {other}% on the others"
    return text + "."


def savings_report(
    *, principal: Principal, query: SpendQuery, interval: str = "month", group_by: str | None = None
) -> dict:
    """Totals, a series per day/week/month, and optionally a breakdown per team, selected model or
    baseline model. A handful of aggregate queries whatever the number of decisions."""
    if interval not in INTERVALS:
        raise ValidationFailed(
            f"interval must be one of {', '.join(INTERVALS)}.", details={"interval": ["Unknown interval."]}
        )
    if group_by is not None and group_by not in SAVINGS_GROUPS:
        raise ValidationFailed(
            f"groupBy must be one of {', '.join(SAVINGS_GROUPS)} for savings.",
            details={"group_by": ["Unknown grouping."]},
        )
    decisions = admitted_decisions(principal=principal, query=query)
    annotated = _with_counterfactual(decisions)
    totals = _figures(annotated.aggregate(**_aggregates()))
    tz = principal.organization.tzinfo
    starts = bucket_starts(query.since, query.until, interval, tz)
    by_bucket = {
        row["bucket"].astimezone(tz).date(): row
        for row in annotated.order_by()
        .annotate(bucket=INTERVALS[interval]("created_at", tzinfo=tz))
        .values("bucket")
        .annotate(**_aggregates())
    }
    empty = dict.fromkeys(_aggregates(), None) | {"admitted": 0, "compared": 0, "downgraded": 0}
    empty |= {f"{n}_{k}": 0 for n in ("downgraded", "kept") for k in ("judged", "successes")}
    series = [{"period_start": start, **_figures(by_bucket.get(start, empty))} for start in starts]
    result = {
        **totals,
        "headline": _headline(totals),
        "series": series,
        "estimated": decision_stats(decisions)["savings"],
    }
    if group_by is not None:
        column = {"team": "team_id", "model": "selected_model", "baseline_model": "baseline_model"}[group_by]
        rows = list(annotated.order_by().values(column).annotate(**_aggregates()))
        names = {}
        if group_by == "team":
            names = dict(Team.objects.filter(pk__in=[r[column] for r in rows]).values_list("pk", "name"))
        groups = [
            {"key": row[column], "label": names.get(row[column], row[column]), **_figures(row)}
            for row in rows
        ]
        groups.sort(key=lambda g: (-g["savings"], str(g["key"])))
        result["groups"] = groups
    return result
