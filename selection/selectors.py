"""Reads of the selection app: the rules and history in force for an organization (cached in
process, checked against a version in the shared cache), and decisions visible to a caller."""

import threading
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db.models import Avg, Count, F, Q, QuerySet, Sum
from django.utils import timezone

from budgets.models import Organization
from budgets.principals import Principal
from budgets.selectors import OutcomeStats, outcome_stats, percent_of, visible_rows
from costswitch.cache import cache_add, cache_get, cache_set
from costswitch.errors import NotFound
from costswitch.money import ZERO, display_decimal, quantize_money
from selection.choices import DecisionOutcome
from selection.learning import rating_target
from selection.models import Decision, RuleSetVersion
from selection.rules import RuleSet, parse_rules

# Outcomes move slowly; recomputing them once a minute per organization is plenty.
HISTORY_CACHE_SECONDS = 60
# Reported outcomes count fully only once there are this many; fewer are shrunk towards neutral.
HISTORY_CONFIDENCE_SAMPLES = 10


def rules_version_key(organization_id: int) -> str:
    return f"selection:rules-version:{organization_id}"


@dataclass(frozen=True)
class RulesInForce:
    version: RuleSetVersion | None
    rules: RuleSet


_rules_lock = threading.Lock()
_compiled_rules: dict[int, RulesInForce] = {}


def rules_in_force(organization: Organization, *, version_id: int | None = None) -> RulesInForce:
    """The organization's newest rule set, compiled once per process and version. `version_id`: the
    version key's value, when the caller read it already."""
    key = rules_version_key(organization.pk)
    version_id = cache_get(key) if version_id is None else version_id
    if version_id is None:
        version_id = (
            RuleSetVersion.objects.filter(organization=organization)
            .order_by("-version")
            .values_list("pk", flat=True)
            .first()
            or 0
        )
        # add, not set: a version published since this read must not be overwritten with an older one.
        cache_add(key, version_id, timeout=None)
    compiled = _compiled_rules.get(organization.pk)
    if compiled is not None and (compiled.version.pk if compiled.version else 0) == version_id:
        return compiled
    with _rules_lock:
        version = RuleSetVersion.objects.filter(pk=version_id).first() if version_id else None
        rules = parse_rules(version.source) if version else RuleSet.EMPTY
        compiled = RulesInForce(version, rules)
        _compiled_rules[organization.pk] = compiled
        return compiled


def history_key(organization_id: int) -> str:
    return f"selection:history:v2:{organization_id}"


def history_scores(
    organization: Organization, *, cached: dict[str, dict[str, float]] | None = None
) -> dict[str, dict[str, float]]:
    """0..1 per task type and model from reported outcomes (success rate and ratings), shrunk towards
    0.5 while samples are few, so one bad answer does not bury a model. `cached`: the cache's value,
    when the caller read it already."""
    key = history_key(organization.pk)
    scores = cache_get(key) if cached is None else cached
    if scores is None:
        since = timezone.now() - timedelta(days=settings.COSTSWITCH_HISTORY_WINDOW_DAYS)
        scores = {}
        for (model_id, task_type), stats in outcome_stats(organization=organization, since=since).items():
            score = history_score(stats)
            if score is not None:
                scores.setdefault(task_type, {})[model_id] = score
        cache_set(key, scores, HISTORY_CACHE_SECONDS)
    return scores


def history_score(stats: OutcomeStats) -> float | None:
    """One model x task type's score from its outcome counts (None: nothing judged or rated). Pure,
    so the offline routing evaluation (analytics.routing) learns exactly as production does."""
    signals = []
    judged = stats.successes + stats.failures
    if judged:
        signals.append((stats.successes + 1) / (judged + 2))
    if stats.mean_rating is not None:
        signals.append(rating_target(float(stats.mean_rating)))
    if not signals:
        return None
    raw = sum(signals) / len(signals)
    confidence = stats.samples / (stats.samples + HISTORY_CONFIDENCE_SAMPLES)
    return round(0.5 + (raw - 0.5) * confidence, 4)


def decisions_for_principal(principal: Principal) -> QuerySet[Decision]:
    return visible_rows(principal, Decision.objects.all())


def decision_get(*, principal: Principal, decision_id: int) -> Decision:
    decision = decisions_for_principal(principal).filter(pk=decision_id).first()
    if decision is None:
        raise NotFound(f"Decision {decision_id} not found.")
    return decision


def decision_stats(decisions: QuerySet[Decision]) -> dict:
    """Selection counts by model and outcome, why choices changed, and what switching saved
    (requested or default model's estimated cost minus the chosen one's), in a handful of queries."""
    admitted = decisions.filter(outcome=DecisionOutcome.ADMITTED)
    totals = decisions.aggregate(
        total=Count("pk"),
        admitted=Count("pk", filter=Q(outcome=DecisionOutcome.ADMITTED)),
        refused=Count("pk", filter=Q(outcome=DecisionOutcome.REFUSED)),
        latency=Avg("latency_us"),
    )
    compared = admitted.filter(requested_model_cost__isnull=False, estimated_cost__isnull=False)
    savings = compared.aggregate(
        n=Count("pk"),
        switched=Count("pk", filter=~Q(selected_model=F("requested_model")) & ~Q(requested_model="")),
        total=Sum(F("requested_model_cost") - F("estimated_cost")),
        baseline=Sum("requested_model_cost"),
    )
    reasons: dict[str, int] = {}
    for changes in decisions.exclude(changes=[]).values_list("changes", flat=True).iterator():
        for change in changes:
            key = change.get("action") or change.get("code") or change.get("rule") or change.get("source")
            reasons[f"{change.get('source')}:{key}"] = reasons.get(f"{change.get('source')}:{key}", 0) + 1
    total_saved = savings["total"] or ZERO
    average = total_saved / savings["n"] if savings["n"] else None
    return {
        "decisions": totals["total"],
        "admitted": totals["admitted"],
        "refused": totals["refused"],
        "average_latency_ms": round(totals["latency"] / 1000, 3) if totals["latency"] is not None else None,
        # Lists of objects, not maps: model ids and codes are data, and map keys would be camelCased.
        "by_model": _counts(admitted, "selected_model", "model"),
        "by_task_type": _counts(decisions, "task_type", "task_type"),
        "by_refusal": _counts(decisions.filter(outcome=DecisionOutcome.REFUSED), "refusal_code", "code"),
        "reasons": [
            {"reason": reason, "count": count}
            for reason, count in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "savings": {
            "compared": savings["n"],
            "switched": savings["switched"],
            "total": display_decimal(total_saved),
            "average": display_decimal(quantize_money(average)) if average is not None else None,
            "percent": percent_of(total_saved, savings["baseline"]) if savings["baseline"] else None,
        },
    }


def _counts(queryset: QuerySet[Decision], field_name: str, label: str) -> list[dict]:
    rows = queryset.values(field_name).annotate(n=Count("pk")).order_by("-n", field_name)
    return [{label: row[field_name], "count": row["n"]} for row in rows]
