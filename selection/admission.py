"""`admit()`: the one admission flow every entry point uses (select API, explainer, gateway).

analyze -> steering rules -> budget thresholds -> hard filters -> score -> pick + fallback chain ->
reserve on the ledger -> record the decision. A refusal is recorded too, then raised, so the
explainer can show why a request was turned away.
"""

import functools
import hashlib
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from decimal import ROUND_CEILING, Decimal
from typing import Any

from django.conf import settings

from approvals.selectors import OverridesInForce, overrides_in_force
from approvals.services import override_offer
from budgets.choices import BudgetStatus, ThresholdAction
from budgets.models import Reservation
from budgets.principals import Principal, attribution_for
from budgets.ratelimits import AdmissionRateLimit, ModelDemand, admission_rate_limit
from budgets.selectors import (
    BudgetStatusReport,
    ChainStatusReport,
    chain_status,
)
from budgets.services.ledger import reservation_authorize
from costswitch import logs, metrics
from costswitch.cache import cache_get_many
from costswitch.errors import BudgetExceeded, Conflict, DomainError, PermissionDenied, ValidationFailed
from costswitch.money import ZERO, display_decimal, quantize_money
from costswitch.rows import insert
from models_registry.pricing import request_cost
from models_registry.tokens import count_message_tokens_per_tokenizer
from selection import learning
from selection.analysis import RequestAnalysis, analyze_request
from selection.choices import ESSENTIAL_PRIORITIES, THRIFTIER, DecisionOutcome, Priority, Strategy
from selection.engine import (
    Candidate,
    Constraints,
    PriceLine,
    Ranking,
    Rejection,
    Scored,
    quality_requirement,
    rank,
    tier_of,
)
from selection.estimates import (
    QUALITY_TOLERANCE,
    ChatRequest,
    OutputEstimate,
    budget_impact,
    check_prompt_size,
    expected_output,
)
from selection.models import Decision
from selection.outcome_learning import FEATURES_KEY, encode_features, learned_models_in_force
from selection.rules import Rule, RuleContext, RuleSet, SelectModelAction
from selection.selectors import RulesInForce, history_key, history_scores, rules_in_force, rules_version_key
from selection.snapshot import REGISTRY_VERSION_KEY, ModelSnapshot, registry_snapshot

AUTO = "auto"
# Share of the remaining budget one request takes, in percent: fine enough for cheap requests.
PERCENT_QUANTUM = Decimal("0.0001")
FALLBACK_CHAIN_LENGTH = 3
# The budget factor starts counting at this share used and reaches 1 at 100%.
BUDGET_FACTOR_FROM = Decimal(50)
# Exploration only considers a cheaper model this many quality points short of the requirement.
EXPLORATION_MARGIN = 10


class ApprovalRequired(DomainError):
    status = 402
    code = "approval_required"


class BudgetBlocked(DomainError):
    status = 402
    code = "budget_blocked"


class NoEligibleModel(DomainError):
    status = 422
    code = "no_eligible_model"


@dataclass(frozen=True)
class AdmissionRequest:
    chat: ChatRequest
    request_id: str | None = None
    path: str = "/api/v1/models/select"
    strategy: str | None = None
    quality_requirement: int | str | None = None
    max_cost: Decimal | None = None
    priority: str = Priority.NORMAL
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    team_id: int | None = None
    user_id: int | None = None
    ttl_seconds: int | None = None
    # On a refusal an override could lift, ask for one: {"reason", "duration_minutes", "extra_amount"}.
    request_override: Mapping[str, Any] | None = None


@dataclass
class Admission:
    """The answer: the model to call, what was held for it, and the decision that explains it
    (the API renders the decision, so a retried request gets the same answer)."""

    decision: Decision
    reservation: Reservation | None
    chosen: Candidate | None = None
    fallback_chain: list[Candidate] = field(default_factory=list)
    ranking: Ranking | None = None
    replayed: bool = False
    registry_version: str | None = None  # the registry snapshot the choice was made from


@dataclass
class _Context:
    """What the flow has learned so far; recorded on the decision whatever the outcome."""

    principal: Principal
    request: AdmissionRequest
    started: float
    analysis: RequestAnalysis | None = None
    strategy: str = ""
    requirement: int | str = 0
    rule: Rule | None = None
    rule_set_id: int | None = None
    changes: list[dict] = field(default_factory=list)
    budget: dict = field(default_factory=dict)
    team: Any = None
    user: Any = None
    input_tokens: int = 0
    output: OutputEstimate | None = None
    registry: Any = None
    cached: dict[str, Any] = field(default_factory=dict)  # the cache keys every admission reads
    counts: dict[str, int] = field(default_factory=dict)
    text_features: list[int] | None = None  # hashed request text, learned from once an outcome comes
    # Real admissions of organizations that report outcomes explore; an explanation shows the policy.
    explore: bool = False


def admit(
    *,
    principal: Principal,
    request: AdmissionRequest,
    reserve: bool = True,
    record: bool = True,
    rules: RuleSet | None = None,
) -> Admission:
    """Choose a model for `request` and hold its cost on the caller's budgets.

    `reserve=False, record=False` explains a hypothetical request (nothing is held or stored);
    `rules` tries a draft rule set instead of the organization's rules in force.
    A retry with the same request id returns the first admission without charging again."""
    started = time.perf_counter()
    # An id made here has never been used: no earlier admission or hold can carry it.
    new_id = not request.request_id
    request = replace(request, request_id=f"sel-{uuid.uuid4().hex}") if new_id else request
    if reserve and not new_id:
        earlier = _earlier_admission(principal, request.request_id, request_fingerprint(request))
        if earlier is not None:
            return earlier
    ctx = _Context(principal=principal, request=request, started=started)
    try:
        return _admit(ctx, reserve=reserve, record=record, draft_rules=rules, new_id=new_id)
    except DomainError as error:
        if record and ctx.analysis is not None:
            decision = _record(ctx, refusal=error)
            error.details = {**error.details, "decision_id": decision.pk}
        ask = request.request_override if reserve and record else None
        error.details = {
            **error.details,
            **override_offer(
                principal=principal,
                code=error.code,
                details=error.details,
                ask=ask,
                request_id=request.request_id,
                essential=request.priority in ESSENTIAL_PRIORITIES,
                estimated_cost=_refused_cost(ctx, error) if ask is not None else None,
            ),
        }
        raise


def _admit(
    ctx: _Context, *, reserve: bool, record: bool, draft_rules: RuleSet | None, new_id: bool
) -> Admission:
    principal, request = ctx.principal, ctx.request
    ctx.explore = reserve and record
    chat = request.chat
    check_prompt_size(chat.messages)
    if request.team_id is not None or request.user_id is not None:
        ctx.team, ctx.user = attribution_for(principal, team_id=request.team_id, user_id=request.user_id)
    else:
        ctx.team, ctx.user = principal.team, principal.user
    organization = principal.organization
    ctx.cached = cache_get_many(
        [REGISTRY_VERSION_KEY, rules_version_key(organization.pk), history_key(organization.pk)]
    )
    registry = registry_snapshot(ctx.cached.get(REGISTRY_VERSION_KEY))
    requested_id = chat.model if chat.model and chat.model != AUTO else None
    if requested_id is not None and requested_id not in registry.models:
        raise ValidationFailed(
            f'Unknown model {requested_id!r}. GET /api/v1/models lists the registry, or send "auto".',
            code="unknown_model",
            details={"model": [f"Unknown model {requested_id!r}."]},
        )
    analysis = analyze_request(
        chat.messages, tools=chat.tools, response_format=chat.response_format, task_type=chat.task_type
    )
    ctx.analysis = analysis
    if principal.organization.log_prompts:  # opt-in per organization; off costs one attribute read
        logs.log_prompt(request_id=request.request_id, messages=chat.messages)
    counts = count_message_tokens_per_tokenizer(
        chat.messages, tokenizers=registry.tokenizers | {"o200k_base"}, tools=chat.tools
    )
    ctx.input_tokens = counts["o200k_base"]
    ctx.registry, ctx.counts = registry, counts
    ctx.output = expected_output(principal, analysis.task_type, chat.max_tokens)
    chain = chain_status(principal=principal, team=ctx.team, user=ctx.user)

    if draft_rules is not None:
        rules = RulesInForce(None, draft_rules)
    else:
        rules = rules_in_force(organization, version_id=ctx.cached.get(rules_version_key(organization.pk)))
    ctx.rule_set_id = rules.version.pk if rules.version else None
    driving = _most_used(chain.budgets)
    ctx.rule = rules.rules.first_match(_rule_context(ctx, requested_id, driving))
    select = ctx.rule.select if ctx.rule else None
    if ctx.rule is not None:
        _apply_rule_deny(ctx)
        if select is not None and select.budget_scope != "tightest":
            driving = (
                _most_used([r for r in chain.budgets if r.budget.scope_type == select.budget_scope])
                or driving
            )

    ctx.strategy = (select and select.strategy) or request.strategy or settings.COSTSWITCH_DEFAULT_STRATEGY
    overrides = overrides_in_force(principal=principal, budgets=chain.budgets, team=ctx.team, user=ctx.user)
    if overrides.override_ids:
        ids = list(overrides.override_ids)
        ctx.changes.append({"source": "override", "overrides": ids, "effect": "approved overrides apply"})
    constraints, pressure = _budget_constraints(ctx, chain, overrides)
    ctx.budget = _budget_snapshot(chain, driving)

    candidates = {
        model.id: _priced(model, counts[model.tokenizer], ctx.output) for model in registry.models.values()
    }
    requested = candidates.get(requested_id) if requested_id else None
    route_to = ctx.rule.route_to if ctx.rule else None
    if route_to is not None:
        if route_to.model not in candidates:
            raise NoEligibleModel(f"Rule {ctx.rule.name!r} routes to unknown model {route_to.model!r}.")
        pool = [candidates[route_to.model]]
        ctx.changes.append({"source": "rule", "rule": ctx.rule.name, "effect": f"routed to {route_to.model}"})
    else:
        pool = list(candidates.values())

    rule_quality = select.quality_requirement if select else None
    given_quality = rule_quality if rule_quality is not None else request.quality_requirement
    ctx.requirement = quality_requirement(given_quality, analysis.complexity)
    allows = select.allows if select and (select.allowed_models or select.allowed_providers) else None
    constraints = replace(constraints, required_capabilities=analysis.required_capabilities, allows=allows)
    cost_limits = [
        c
        for c in (request.max_cost, select.cost_limit if select else None, constraints.cost_ceiling)
        if c is not None
    ]
    constraints = replace(constraints, cost_ceiling=min(cost_limits) if cost_limits else None)
    if select is not None:
        ctx.changes.extend(
            {"source": "rule", "rule": ctx.rule.name, "effect": e} for e in _rule_effects(select)
        )

    ranking = _choose(ctx, pool, requested, constraints, pressure, _budget_factor(driving))
    if ranking.chosen is None:
        raise _no_model_error(ranking, requested_id, pressure)
    ranking, gate = _within_rate_limits(ctx, ranking, consume=reserve)
    chosen = ranking.chosen.candidate
    chain_models = _fallback_chain(chosen, ranking, enabled=_fallbacks_enabled(ctx))
    remaining = _remaining(chain)

    reservation = None
    if reserve:
        try:
            result = reservation_authorize(
                principal=principal,
                request_id=request.request_id,
                amount=chosen.cost,
                model=chosen.id,
                ttl_seconds=request.ttl_seconds,
                metadata={"task_type": analysis.task_type, "selected_by": "costswitch"},
                team_id=request.team_id,
                user_id=request.user_id,
                chain=[report.budget for report in chain.budgets],
                new_request_id=new_id,
            )
        except DomainError:
            gate.refund()  # a request the budget refuses uses no rate quota
            raise
        reservation = result.reservation
    ctx.budget["impact"] = budget_impact(chosen.cost, remaining)
    ctx.budget["percent_of_remaining"] = (
        str((chosen.cost * 100 / remaining).quantize(PERCENT_QUANTUM, rounding=ROUND_CEILING))
        if remaining is not None and remaining > 0
        else None
    )
    baseline = requested or candidates.get(settings.COSTSWITCH_DEFAULT_MODEL)
    decision = _record(
        ctx,
        ranking=ranking,
        chosen=chosen,
        baseline=baseline,
        chain=chain_models,
        reservation=reservation,
        save=record,
    )
    return Admission(
        decision=decision,
        reservation=reservation,
        chosen=chosen,
        fallback_chain=chain_models,
        ranking=ranking,
        registry_version=ctx.registry.version,
    )


def _within_rate_limits(
    ctx: _Context, ranking: Ranking, *, consume: bool
) -> tuple[Ranking, AdmissionRateLimit]:
    """The best ranked model within its rate limits, its quota taken with the key's tokens (one Redis
    round trip); models over their limits are rejected with code "rate_limited". Raises RateLimited
    (429) when the key is over its tokens per minute or every model tried is over its limits."""
    gate = admission_rate_limit(
        api_key=ctx.principal.api_key,
        tokens=ctx.input_tokens + ctx.output.tokens,
        demands=(  # built only as far as the limiter reads: usually just the chosen model
            ModelDemand(
                scored.id,
                scored.candidate.input_tokens + scored.candidate.output_tokens,
                scored.candidate.model.requests_per_minute,
                scored.candidate.model.tokens_per_minute,
            )
            for scored in ranking.ranked
        ),
        consume=consume,
    )
    rejections = [
        Rejection(model_id, "rate_limited", f"Rate limited: {gate.reason(model_id)}.")
        for model_id in gate.skipped
    ]
    if not gate.allowed:
        gate.error.details = {
            **gate.error.details,
            "rejections": [_rejection_detail(r) for r in [*ranking.rejections, *rejections][:20]],
        }
        raise gate.error
    if gate.index:
        ranking = replace(
            ranking,
            chosen=ranking.ranked[gate.index],
            ranked=ranking.ranked[gate.index :],
            requirement_met=ranking.ranked[gate.index].meets_requirement,
            rejections=[*ranking.rejections, *rejections],
        )
        ctx.changes.append(
            {
                "source": "rate_limit",
                "effect": f"{', '.join(gate.skipped)} over rate limits: chose {ranking.chosen.id}",
            }
        )
    return ranking, gate


def _earlier_admission(principal: Principal, request_id: str, fingerprint: str) -> Admission | None:
    """A retried select: the first decision stands (and nothing is reserved twice)."""
    earlier = Decision.objects.filter(
        organization=principal.organization, request_id=request_id, outcome=DecisionOutcome.ADMITTED
    )
    # Nearly every request id is new: ask for the key alone (a narrow query), the row only for a retry.
    found = earlier.values_list("pk", flat=True).first()
    if found is None:
        return None
    decision = Decision.objects.select_related("reservation").get(pk=found)
    if principal.api_key is not None:
        same_caller = decision.api_key_id == principal.api_key.pk
    else:
        same_caller = decision.api_key_id is None and decision.requested_by_id == principal.user.pk
    if not same_caller:
        raise Conflict(f"Request id {request_id!r} is already in use.", code="idempotency_conflict")
    if decision.fingerprint != fingerprint:
        raise Conflict(
            f"Request id {request_id!r} was already used for a different request.",
            code="idempotency_conflict",
        )
    return Admission(decision=decision, reservation=decision.reservation, replayed=True)


def request_fingerprint(request: AdmissionRequest) -> str:
    """What makes two select requests the same one (everything but the request id, the path and the
    override a refusal would ask for)."""
    fields = {
        name: value
        for name, value in asdict(request).items()
        if name not in {"request_id", "path", "request_override"}
    }
    canonical = json.dumps(fields, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _rule_context(ctx: _Context, requested_id: str | None, driving: BudgetStatusReport | None) -> RuleContext:
    request, principal = ctx.request, ctx.principal
    return RuleContext(
        path=request.path,
        requested_model=requested_id,
        priority=request.priority,
        task_type=ctx.analysis.task_type,
        complexity=ctx.analysis.complexity,
        input_tokens=ctx.input_tokens,
        budget_status=driving.status if driving else BudgetStatus.NORMAL,
        percent_used=driving.percent_committed if driving else ZERO,
        team=ctx.team.slug if ctx.team else None,
        user=ctx.user.username if ctx.user else None,
        api_key=principal.api_key.name if principal.api_key else None,
        tags=frozenset(request.tags),
        metadata=request.metadata,
    )


def _apply_rule_deny(ctx: _Context) -> None:
    deny = ctx.rule.deny
    if deny is not None:
        ctx.changes.append({"source": "rule", "rule": ctx.rule.name, "effect": "denied"})
        raise PermissionDenied(f"Denied by rule {ctx.rule.name!r}: {deny.reason}", code=deny.code)


def _most_used(reports: list[BudgetStatusReport]) -> BudgetStatusReport | None:
    """The tightest budget for selection: the highest share committed (ties: least money left)."""
    return max(reports, key=lambda r: (r.percent_committed, -r.remaining), default=None)


def _budget_factor(report: BudgetStatusReport | None) -> float:
    """0 up to half the budget, 1 when fully committed: the more used, the more cost counts."""
    if report is None:
        return 0.0
    share = (report.percent_committed - BUDGET_FACTOR_FROM) / (100 - BUDGET_FACTOR_FROM)
    return float(min(max(share, ZERO), Decimal(1)))


@dataclass(frozen=True)
class _Pressure:
    """Threshold actions in force and where each comes from (for the explainer)."""

    actions: dict[str, dict]  # action -> {budget_id, budget, threshold}

    def __contains__(self, action: str) -> bool:
        return action in self.actions


def _budget_constraints(
    ctx: _Context, chain: ChainStatusReport, overrides: OverridesInForce
) -> tuple[Constraints, _Pressure]:
    """Apply the crossed thresholds of every budget on the chain: refuse what they block, and turn
    the rest into constraints on the candidates."""
    request, principal = ctx.request, ctx.principal
    actions: dict[str, dict] = {}
    for report in sorted(chain.budgets, key=lambda r: r.percent_committed, reverse=True):
        for alert in report.active_alerts:
            for action in alert["actions"]:
                actions.setdefault(
                    action,
                    {
                        "budget_id": report.budget.pk,
                        "budget": report.budget.name,
                        "threshold": float(alert["threshold"]),
                    },
                )
    pressure = _Pressure(actions)
    critical = request.priority == Priority.CRITICAL or bool(principal.api_key and principal.api_key.critical)
    if ThresholdAction.BLOCK in pressure and not (critical and overrides.unblock):
        source = pressure.actions[ThresholdAction.BLOCK]
        ctx.changes.append(_threshold_change(source, ThresholdAction.BLOCK, "refused"))
        raise BudgetBlocked(
            f"Budget {source['budget']!r} is blocked at {source['threshold']:g}%: only critical systems "
            "with an approved override may spend.",
            details={"budget_id": source["budget_id"], "threshold": source["threshold"]},
        )
    if ThresholdAction.BLOCK_NON_ESSENTIAL in pressure and request.priority not in ESSENTIAL_PRIORITIES:
        source = pressure.actions[ThresholdAction.BLOCK_NON_ESSENTIAL]
        ctx.changes.append(_threshold_change(source, ThresholdAction.BLOCK_NON_ESSENTIAL, "refused"))
        raise BudgetBlocked(
            f"Budget {source['budget']!r} is at {source['threshold']:g}%: only essential requests "
            "(priority high or critical) are admitted.",
            code="non_essential_blocked",
            details={"budget_id": source["budget_id"], "threshold": source["threshold"]},
        )
    if ThresholdAction.PREFER_CHEAPER in pressure and ctx.strategy != Strategy.COST_OPTIMIZED:
        before, ctx.strategy = ctx.strategy, THRIFTIER[ctx.strategy]
        ctx.changes.append(
            _threshold_change(
                pressure.actions[ThresholdAction.PREFER_CHEAPER],
                ThresholdAction.PREFER_CHEAPER,
                f"strategy {before} -> {ctx.strategy}",
            )
        )
    restrictions = chain.cost_restrictions
    ceiling = None
    if ThresholdAction.STRICT_COST_LIMIT in pressure:
        ceiling = restrictions["max_cost_per_request"]
        if ceiling is None:
            share = Decimal(settings.COSTSWITCH_STRICT_COST_SHARE)
            ceiling = min(
                quantize_money(r.limit * share)
                for r in chain.budgets
                if ThresholdAction.STRICT_COST_LIMIT in r.crossed_actions
            )
        if overrides.cost_ceiling is not None:
            ceiling = max(ceiling, overrides.cost_ceiling)
    exclude_premium = bool(
        {ThresholdAction.RESTRICT_MODELS, ThresholdAction.REQUIRE_APPROVAL} & set(pressure.actions)
    )
    remaining = _remaining(chain)
    return (
        Constraints(
            restricted_models=frozenset(restrictions["restricted_models"]) - overrides.models,
            exclude_premium=exclude_premium,
            premium_line=_price_line(tuple(settings.COSTSWITCH_PREMIUM_PRICE_LINE)),
            approved_models=overrides.models,
            cost_ceiling=ceiling,
            remaining=max(remaining, ZERO) if remaining is not None else None,
        ),
        pressure,
    )


def _threshold_change(source: dict, action: str, effect: str) -> dict:
    return {"source": "threshold", "action": action, **source, "effect": effect}


def _remaining(chain: ChainStatusReport) -> Decimal | None:
    """Room left on the tightest budget of the chain; None when no budget applies."""
    return chain.tightest.remaining if chain.tightest else None


@functools.lru_cache(maxsize=8)
def _price_line(values: tuple[str, ...]) -> PriceLine:
    """Parsed once per setting value (a tuple, so overridden settings still take effect)."""
    return PriceLine(Decimal(values[0]), Decimal(values[1]))


def _priced(model: ModelSnapshot, input_tokens: int, output: OutputEstimate) -> Candidate:
    output_tokens = min(output.tokens, model.max_output_tokens)
    cost = request_cost(model, input_tokens=input_tokens, output_tokens=output_tokens).total
    return Candidate(model=model, input_tokens=input_tokens, output_tokens=output_tokens, cost=cost)


def _choose(
    ctx: _Context,
    pool: list[Candidate],
    requested: Candidate | None,
    constraints: Constraints,
    pressure: _Pressure,
    budget_factor: float,
) -> Ranking:
    """Rank the pool. A named model is honoured unless a rule, a filter or the budget says otherwise;
    under budget pressure it is only swapped for a model no dearer and within QUALITY_TOLERANCE."""
    analysis = ctx.analysis
    organization = ctx.principal.organization
    cached = ctx.cached.get(history_key(organization.pk))
    history = history_scores(organization, cached=cached).get(analysis.task_type, {})
    learned = _learned_estimates(ctx)

    def ranked(pool, constraints, requirement):
        return _note_learned(
            ctx,
            rank(
                pool,
                task_type=analysis.task_type,
                requirement=requirement,
                strategy=ctx.strategy,
                budget_factor=budget_factor,
                constraints=constraints,
                request_tokens=ctx.input_tokens + ctx.output.tokens,
                history=history,
                learned=learned,
            ),
        )

    steering = ctx.rule is not None and (ctx.rule.select is not None or ctx.rule.route_to is not None)
    if requested is None and not steering:
        return _explore(ctx, ranked(pool, constraints, ctx.requirement))
    if requested is None or steering:
        return ranked(pool, constraints, ctx.requirement)
    honoured = ranked([requested], constraints, 0)
    pressing = ThresholdAction.PREFER_CHEAPER in pressure or constraints.exclude_premium
    if honoured.chosen is None:
        rejection = honoured.rejections[0]
        ctx.changes.append(
            {
                "source": "filter",
                "model": requested.id,
                "code": rejection.code,
                "effect": f"requested model rejected: {rejection.reason}",
            }
        )
        return ranked(pool, constraints, ctx.requirement)
    if not pressing:
        others = ranked([c for c in pool if c.id != requested.id], constraints, ctx.requirement)
        return replace(
            honoured,
            ranked=honoured.ranked + others.ranked,
            rejections=others.rejections,
            requirement=_resolved(ctx.requirement, others),
        )
    if ctx.request.quality_requirement is None:
        ctx.requirement = max(requested.model.quality_for(analysis.task_type) - QUALITY_TOLERANCE, 0)
    ranking = ranked(pool, replace(constraints, price_cap=requested.cost), ctx.requirement)
    if ranking.chosen is not None and ranking.chosen.id != requested.id:
        source = next(
            (
                pressure.actions[a]
                for a in (
                    ThresholdAction.RESTRICT_MODELS,
                    ThresholdAction.REQUIRE_APPROVAL,
                    ThresholdAction.PREFER_CHEAPER,
                )
                if a in pressure
            ),
            {},
        )
        ctx.changes.append(
            _threshold_change(
                source,
                ThresholdAction.PREFER_CHEAPER,
                f"{requested.id} -> {ranking.chosen.id} (no dearer, quality within {QUALITY_TOLERANCE})",
            )
        )
    return ranking


def _learned_estimates(ctx: _Context) -> dict[str, float]:
    """Per model with enough learned outcomes: its predicted success on this request's text minus
    its usual rate (selection.learning). The text features are kept for the decision record."""
    if not settings.COSTSWITCH_LEARNING_ENABLED:
        return {}
    ctx.text_features = learning.features(learning.request_text(ctx.request.chat.messages))
    models = learned_models_in_force(ctx.principal.organization)
    # Exploring only feeds the learner: an organization that has never had an outcome learned
    # (it does not report them) would only get worse choices from it.
    ctx.explore = ctx.explore and bool(models)
    return learning.estimates(models, ctx.text_features) if models else {}


def _note_learned(ctx: _Context, ranking: Ranking) -> Ranking:
    """Say on the decision where the learned estimate decided whether a model met the requirement."""
    for scored in ranking.ranked:
        if scored.learned is None:
            continue
        without = scored.effective_quality - scored.learned_shift
        if (without >= ranking.requirement) != scored.meets_requirement:
            verdict = "meets" if scored.meets_requirement else "no longer meets"
            ctx.changes.append(
                {
                    "source": "learned",
                    "model": scored.id,
                    "effect": (
                        f"learned estimate {scored.learned:+.2f} vs its usual success moved "
                        f"{scored.id} {scored.learned_shift:+d} quality points: {verdict} "
                        f"requirement {ranking.requirement}"
                    ),
                }
            )
    return ranking


def _explore(ctx: _Context, ranking: Ranking) -> Ranking:
    """With probability COSTSWITCH_EXPLORATION_RATE (fixed per request id), once the organization's
    outcomes are being learned, route an "auto" request
    to the cheapest eligible model that misses the requirement by at most EXPLORATION_MARGIN points,
    or by any margin while that model has too few learned outcomes for an estimate of its own
    (`learning.MIN_SAMPLES`: a cheap model the policy never picks would otherwise never be learned),
    so its outcomes are learned beyond the prompts already judged easy. Only eligible candidates
    (every budget, rule and hard filter already applied) are considered, and never for a request
    that states its quality requirement or is essential: those get what they asked for."""
    rate = settings.COSTSWITCH_EXPLORATION_RATE
    chosen = ranking.chosen
    request = ctx.request
    if not ctx.explore or rate <= 0 or chosen is None:
        return ranking
    if request.quality_requirement is not None or request.priority in ESSENTIAL_PRIORITIES:
        return ranking
    if learning.exploration_draw(request.request_id) >= rate:
        return ranking
    near = [
        s
        for s in ranking.ranked
        if s.cost < chosen.cost
        and not s.meets_requirement
        and (s.learned is None or s.effective_quality >= ranking.requirement - EXPLORATION_MARGIN)
    ]
    if not near:
        return ranking
    pick = min(near, key=lambda s: (s.cost, -s.effective_quality, s.id))
    ctx.changes.append(
        {
            "source": "exploration",
            "model": pick.id,
            "effect": (
                f"exploring: {chosen.id} -> {pick.id} (effective quality {pick.effective_quality}, "
                + (
                    f"fewer than {learning.MIN_SAMPLES} learned outcomes, requirement {ranking.requirement}"
                    if pick.learned is None
                    else f"within {EXPLORATION_MARGIN} of requirement {ranking.requirement}"
                )
                + ") to learn its outcomes"
            ),
        }
    )
    return replace(
        ranking,
        chosen=pick,
        ranked=[pick, *(s for s in ranking.ranked if s is not pick)],
        requirement_met=pick.meets_requirement,
    )


def _resolved(requirement: int | str, ranking: Ranking) -> int:
    return ranking.requirement if isinstance(requirement, str) else int(requirement)


def _rule_effects(select: SelectModelAction) -> list[str]:
    effects = []
    if select.strategy:
        effects.append(f"strategy {select.strategy}")
    if select.quality_requirement is not None:
        effects.append(f"quality requirement {select.quality_requirement}")
    if select.cost_limit is not None:
        effects.append(f"cost limit ${display_decimal(select.cost_limit)}")
    if select.allowed_models:
        effects.append(f"allowed models {', '.join(select.allowed_models)}")
    if select.allowed_providers:
        effects.append(f"allowed providers {', '.join(select.allowed_providers)}")
    if select.budget_scope != "tightest":
        effects.append(f"budget scope {select.budget_scope}")
    return effects


def _fallbacks_enabled(ctx: _Context) -> bool:
    if ctx.rule is None:
        return True
    action = ctx.rule.route_to or ctx.rule.select
    return action.fallback_chain if action is not None else True


def _fallback_chain(chosen: Candidate, ranking: Ranking, *, enabled: bool) -> list[Candidate]:
    """Where to go if the chosen model fails: its registered fallbacks first, then the next best
    eligible models; only models the same reservation covers (no dearer than the choice)."""
    if not enabled:
        return []
    eligible = {s.id: s.candidate for s in ranking.ranked}
    order = [m for m in chosen.model.fallbacks if m in eligible] + [s.id for s in ranking.ranked]
    chain: list[Candidate] = []
    for model_id in dict.fromkeys(order):
        candidate = eligible[model_id]
        if model_id != chosen.id and candidate.cost <= chosen.cost:
            chain.append(candidate)
        if len(chain) == FALLBACK_CHAIN_LENGTH:
            break
    return chain


def _refused_cost(ctx: _Context, error: DomainError) -> Decimal | None:
    """What a refused request would have cost, for the approvers of the override it asks for: the
    cheapest premium model it needed (approval_required), else the model it named (or the default
    model for "auto") priced for its tokens. None when the refusal came before the tokens were counted."""
    if ctx.registry is None or ctx.output is None:
        return None
    models = ctx.registry.models
    if error.code == "approval_required":
        wanted = [
            r["model"] for r in error.details.get("rejections", []) if r.get("code") == "requires_approval"
        ]
    else:
        named = ctx.request.chat.model
        wanted = [named if named and named != AUTO else settings.COSTSWITCH_DEFAULT_MODEL]
    costs = [
        _priced(models[m], ctx.counts[models[m].tokenizer], ctx.output).cost
        for m in wanted
        if m in models and models[m].tokenizer in ctx.counts
    ]
    return min(costs) if costs else None


def _rejection_detail(rejection: Rejection) -> dict:
    return {"model": rejection.model, "code": rejection.code, "reason": rejection.reason}


def _no_model_error(ranking: Ranking, requested_id: str | None, pressure: _Pressure) -> DomainError:
    codes = {r.code for r in ranking.rejections}
    details = {"rejections": [_rejection_detail(r) for r in ranking.rejections[:20]]}
    if "requires_approval" in codes:
        source = pressure.actions.get(ThresholdAction.REQUIRE_APPROVAL) or pressure.actions.get(
            ThresholdAction.RESTRICT_MODELS, {}
        )
        details["budget_id"] = source.get("budget_id")
        return ApprovalRequired(
            "Only premium models fit this request, and the budget requires an approved override for them.",
            details=details,
        )
    if codes & {"exceeds_budget", "over_cost_limit"}:
        return BudgetExceeded(
            "No model fits this request within the budget and per-request limits.", details=details
        )
    return NoEligibleModel("No registered model can serve this request.", details=details)


def _budget_snapshot(chain: ChainStatusReport, driving: BudgetStatusReport | None) -> dict:
    def one(report: BudgetStatusReport) -> dict:
        return {
            "budget_id": report.budget.pk,
            "name": report.budget.name,
            "scope_type": report.budget.scope_type,
            "limit": str(report.limit),
            "spent": str(report.current_amount),
            "reserved": str(report.reserved),
            "remaining": str(report.remaining),
            "percent_committed": str(report.percent_committed),
            "status": report.status,
        }

    return {
        "driving_budget_id": driving.budget.pk if driving else None,
        "budget_factor": _budget_factor(driving),
        "aggregate_status": chain.aggregate_status,
        "budgets": [one(r) for r in chain.budgets],
    }


def _tier(candidate: Candidate) -> str:
    return tier_of(
        candidate,
        premium_line=_price_line(tuple(settings.COSTSWITCH_PREMIUM_PRICE_LINE)),
        simple_line=_price_line(tuple(settings.COSTSWITCH_SIMPLE_PRICE_LINE)),
    )


def candidate_summary(scored: Scored) -> dict:
    candidate = scored.candidate
    return {
        "model": candidate.id,
        "provider": candidate.model.provider,
        "estimated_cost": str(candidate.cost),
        "input_tokens": candidate.input_tokens,
        "output_tokens": candidate.output_tokens,
        "quality": scored.quality,
        # Configured quality moved by reported outcomes: what the requirement was judged on.
        "effective_quality": scored.effective_quality,
        "meets_requirement": scored.meets_requirement,
        **(
            {"learned_estimate": round(scored.learned, 4), "learned_shift": scored.learned_shift}
            if scored.learned is not None
            else {}
        ),
        "tier": _tier(candidate),
        "components": {name: round(value, 4) for name, value in scored.components.items()},
        "score": round(scored.score, 4),
    }


def _record(
    ctx: _Context,
    *,
    ranking: Ranking | None = None,
    chosen: Candidate | None = None,
    baseline: Candidate | None = None,
    chain: Sequence[Candidate] = (),
    reservation: Reservation | None = None,
    refusal: DomainError | None = None,
    save: bool = True,
) -> Decision:
    request, principal, analysis = ctx.request, ctx.principal, ctx.analysis
    decision = Decision(
        organization=principal.organization,
        team=ctx.team,
        user=ctx.user,
        api_key=principal.api_key,
        request_id=request.request_id,
        path=request.path,
        requested_by=principal.user if principal.api_key is None else None,
        fingerprint=request_fingerprint(request),
        requested_model="" if request.chat.model in (None, AUTO) else request.chat.model,
        strategy=ctx.strategy or settings.COSTSWITCH_DEFAULT_STRATEGY,
        priority=request.priority,
        task_type=analysis.task_type,
        complexity=analysis.complexity,
        quality_requirement=ctx.requirement if isinstance(ctx.requirement, int) else 0,
        input_tokens=ctx.input_tokens,
        output_tokens=ctx.output.tokens if ctx.output else 0,
        rule_set_id=ctx.rule_set_id,
        rule_name=ctx.rule.name if ctx.rule else "",
        changes=ctx.changes,
        analysis=(
            {**analysis.explain(), FEATURES_KEY: encode_features(ctx.text_features)}
            if ctx.text_features
            else analysis.explain()
        ),
        budget=ctx.budget,
    )
    if ranking is not None:
        decision.outcome = DecisionOutcome.ADMITTED
        decision.selected_model = chosen.id
        decision.estimated_cost = chosen.cost
        decision.requested_model_cost = baseline.cost if baseline else None
        decision.quality_requirement = ranking.requirement
        decision.reservation = reservation
        decision.fallback_chain = [{"model": c.id, "estimated_cost": str(c.cost)} for c in chain]
        decision.candidates = [candidate_summary(s) for s in ranking.ranked]
        decision.rejections = [
            {"model": r.model, "code": r.code, "reason": r.reason} for r in ranking.rejections
        ]
        decision.weights = ranking.weights
    else:
        decision.outcome = DecisionOutcome.REFUSED
        decision.refusal_code = refusal.code
        decision.refusal_message = refusal.message
        decision.rejections = refusal.details.get("rejections", [])
    decision.latency_us = int((time.perf_counter() - ctx.started) * 1_000_000)
    if save:
        insert(decision)
        metrics.count_admission(decision.outcome)
        logs.bind(decision_id=decision.pk)
    return decision
