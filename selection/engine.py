"""Scoring: hard filters first, then a composite score, then the pick. Pure functions over
snapshots, no database: this is the part of a decision that must take microseconds.

Every model gets four component scores in 0..1: cost (cheaper is higher, on a fixed log-like
scale), quality for the task type, task fit (how specialised the model is for the task) and history
(reported outcomes for model x task type). The composite weighs cost by `w_cost` and the rest by
`1 - w_cost`; `w_cost` grows with the strategy's thrift and the budget factor (how used the tightest
budget is). Because only the cost weight moves with budget usage, and a higher cost weight can only
move the argmax to a model that is no dearer, raising usage never makes the choice dearer.

The quality requirement is checked against a model's EFFECTIVE quality for the task type: its
configured score moved by what reported outcomes say (`effective_quality`). The configured score is
the prior; the history score (selection.selectors.history_score: success rate and ratings for model x
task type, already shrunk towards the neutral 0.5 while samples are few) is the evidence. A model that
keeps failing a task type drifts below requirements it nominally meets, one that keeps succeeding
starts to meet them, and with no history nothing changes. History does not depend on budget usage,
so the monotonicity argument above still holds for any fixed history.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from costswitch.money import display_decimal
from models_registry.pricing import MILLION
from selection.choices import QUALITY_LEVEL_SCORES, QualityLevel, Strategy, Tier
from selection.snapshot import ModelSnapshot

# Cost weight before any budget pressure, per strategy; cost_optimized ranks by cost outright.
BASE_COST_WEIGHT = {Strategy.QUALITY_FIRST: 0.1, Strategy.BALANCED: 0.4, Strategy.COST_OPTIMIZED: 1.0}
# How the non-cost weight is shared.
QUALITY_SHARE, TASK_FIT_SHARE, HISTORY_SHARE = 0.6, 0.2, 0.2
# Budget pressure can move at most this much of the remaining weight to cost.
MAX_BUDGET_SHIFT = 0.8
# The cost score is 0.5 at this effective price per 1M request tokens.
COST_SCORE_MIDPOINT = 3.0
NEUTRAL_HISTORY = 0.5
QUALITY_FLOOR = 40
# Quality points per unit of history away from neutral: a history score of 0 (every outcome a
# failure, with many samples) takes HISTORY_QUALITY_SPAN / 2 points off, 1 adds as many. 20 points
# is about the gap between a frontier model and a small one in the catalog, so sustained evidence can
# move a model one tier, never more.
HISTORY_QUALITY_SPAN = 20
# Quality points per unit of learned per-request advantage (selection.learning.estimates: predicted
# P(success) for this request minus the model's usual rate, relative to the best configured learned
# model): a request the cheap model is 10 points likelier than usual to fail (relative to the strong
# one) costs it LEARNED_QUALITY_SPAN / 10 points. Large, because it must outweigh the per-task-type
# complexity requirement to tell a hard question from an easy one of the same shape; tuned by
# cross-fit in analytics.routing (docs/routing.md).
LEARNED_QUALITY_SPAN = 300


@dataclass(frozen=True)
class PriceLine:
    """An input/output price pair per 1M tokens that splits models into tiers for one request."""

    input: Decimal
    output: Decimal

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        return (input_tokens * self.input + output_tokens * self.output) / MILLION


@dataclass(slots=True)  # not frozen: made per model per request, and frozen costs 3x
class Candidate:
    """A model priced for this request."""

    model: ModelSnapshot
    input_tokens: int
    output_tokens: int
    cost: Decimal

    @property
    def id(self) -> str:
        return self.model.id


@dataclass(frozen=True)
class Constraints:
    """Everything that can rule a model out, gathered from the request, the rules and the budgets."""

    required_capabilities: frozenset[str] = frozenset()
    allows: Callable[[str, str], bool] | None = None  # rule allow-lists (model id, provider)
    restricted_models: frozenset[str] = frozenset()  # budget restrict-models list
    approved_models: frozenset[str] = frozenset()  # approved overrides lift the two budget filters
    exclude_premium: bool = False  # 85%: expensive models need an approved override
    premium_line: PriceLine | None = None
    cost_ceiling: Decimal | None = None  # per-request limit (request, rule or 95% threshold)
    price_cap: Decimal | None = None  # substituting a named model: never dearer than it
    remaining: Decimal | None = None  # room left on the tightest budget


@dataclass(slots=True)  # not frozen: made per model per request, and frozen costs 3x
class Rejection:
    model: str
    code: str
    reason: str


@dataclass(slots=True)  # not frozen: made per model per request, and frozen costs 3x
class Scored:
    candidate: Candidate
    quality: int  # configured, for the task type
    components: dict[str, float]
    score: float
    meets_requirement: bool  # judged on effective_quality
    effective_quality: int = 0  # configured quality moved by reported outcomes (effective_quality())
    learned_shift: int = 0  # quality points the learned per-request estimate moved it (0: not used)
    learned: float | None = None  # learned P(success) for this request minus its usual rate

    @property
    def id(self) -> str:
        return self.candidate.id

    @property
    def cost(self) -> Decimal:
        return self.candidate.cost


@dataclass(frozen=True)
class Ranking:
    chosen: Scored | None
    ranked: list[Scored]  # eligible models, best first by the strategy's order
    rejections: list[Rejection]
    requirement: int
    requirement_met: bool
    weights: dict[str, float] = field(default_factory=dict)


def quality_requirement(level: int | str | None, complexity: float) -> int | str:
    """A named level, a number, or (not given) one derived from complexity: 55 for a trivial
    request, 90 for the hardest. "max" is resolved later, against the models that pass the filters."""
    if level is None:
        return round(55 + 35 * complexity)
    if level == QualityLevel.MAX:
        return QualityLevel.MAX
    if isinstance(level, str):
        return QUALITY_LEVEL_SCORES[level]
    return int(level)


def cost_weight(strategy: str, budget_factor: float) -> float:
    base = BASE_COST_WEIGHT[strategy]
    return base + (1 - base) * MAX_BUDGET_SHIFT * min(max(budget_factor, 0.0), 1.0)


def weights_for(strategy: str, budget_factor: float) -> dict[str, float]:
    w_cost = cost_weight(strategy, budget_factor)
    rest = 1 - w_cost
    return {
        "cost": round(w_cost, 4),
        "quality": round(rest * QUALITY_SHARE, 4),
        "task_fit": round(rest * TASK_FIT_SHARE, 4),
        "history": round(rest * HISTORY_SHARE, 4),
    }


def cost_score(cost: Decimal, request_tokens: int) -> float:
    """Strictly falls as cost rises: 1 for free, 0.5 at COST_SCORE_MIDPOINT per 1M tokens of this
    request, towards 0 beyond. The same token count for every model keeps it a function of cost."""
    per_million = float(cost) * 1_000_000 / max(request_tokens, 1)  # a score: float is exact enough
    return 1 / (1 + (per_million / COST_SCORE_MIDPOINT) ** 0.8)


def quality_score(quality: int) -> float:
    """Quality for the task type on 0..1, from 40 (barely usable) to 100: the range where models
    differ, so an 8-point gap weighs like one rather than like 8% of the scale."""
    return min(max((quality - QUALITY_FLOOR) / (100 - QUALITY_FLOOR), 0.0), 1.0)


def task_fit(quality: int, mean_quality: float) -> float:
    """How much better the model is at this task than at its average task (a coding model fits
    code): 0.5 for a generalist, up to 1 for a specialist."""
    return min(max(0.5 + (quality - mean_quality) / 40, 0.0), 1.0)


def learned_shifts(
    eligible: Sequence[Candidate], task_type: str, learned: Mapping[str, float]
) -> dict[str, int]:
    """Quality points each eligible model with a learned estimate moves for this request.

    The estimate is the model's predicted success on this request minus its usual rate. With two or
    more such models, each is judged against the one with the highest configured quality (the
    reference, shift 0): what counts is how much more than usual the cheap model is expected to
    fall behind the strong one on this very prompt (its usual gap is in the configured scores).
    A lone estimate for the strongest eligible model moves nothing: a prompt it finds harder than
    usual is harder for the cheaper ones too, so lowering it alone would send hard prompts down."""
    known = [c for c in eligible if c.id in learned]
    if not known:
        return {}
    top = max(known, key=lambda c: (c.model.quality_for(task_type), c.id))
    reference = 0.0
    if len(known) > 1 or top.model.quality_for(task_type) >= max(
        c.model.quality_for(task_type) for c in eligible
    ):
        reference = learned[top.id]
    return {c.id: round(LEARNED_QUALITY_SPAN * (learned[c.id] - reference)) for c in known}


def effective_quality(quality: int, history: float | None, learned_shift: int | None = None) -> int:
    """The configured quality for the task type moved by reported outcomes: configured +
    HISTORY_QUALITY_SPAN x (history - 0.5), rounded. The history score is already shrunk towards 0.5
    by sample count (a few outcomes barely move it) and lies in 0..1, so the shift is bounded by
    +-HISTORY_QUALITY_SPAN / 2 points; neutral or absent history leaves the configured score.
    A learned per-request shift (`learned_shifts`), when there is one, replaces the per-task-type
    history: it is the finer estimate from the same outcomes."""
    if learned_shift is not None:
        return quality + learned_shift
    if history is None:
        return quality
    bounded = min(max(history, 0.0), 1.0)
    return quality + round(HISTORY_QUALITY_SPAN * (bounded - NEUTRAL_HISTORY))


def tier_of(candidate: Candidate, *, premium_line: PriceLine, simple_line: PriceLine) -> str:
    if candidate.cost > premium_line.cost(candidate.input_tokens, candidate.output_tokens):
        return Tier.PREMIUM
    if candidate.cost <= simple_line.cost(candidate.input_tokens, candidate.output_tokens):
        return Tier.SIMPLE
    return Tier.STANDARD


def hard_filter(candidate: Candidate, constraints: Constraints) -> Rejection | None:
    """The first rule that excludes the model, or None. The order is the explainer's order."""
    model = candidate.model
    money = _money_text
    if not model.is_active:
        return Rejection(model.id, "inactive", "The model is inactive in the registry.")
    if not model.usable:
        return Rejection(model.id, "provider_down", f"Provider {model.provider} is disabled.")
    if candidate.input_tokens + candidate.output_tokens > model.context_window:
        return Rejection(
            model.id,
            "context_window",
            f"{candidate.input_tokens + candidate.output_tokens:,} tokens exceed its "
            f"{model.context_window:,}-token context window.",
        )
    if not constraints.required_capabilities <= model.capabilities:
        missing = constraints.required_capabilities - model.capabilities
        return Rejection(model.id, "missing_capability", f"Does not support {', '.join(sorted(missing))}.")
    if constraints.allows is not None and not constraints.allows(model.id, model.provider):
        return Rejection(model.id, "not_allowed_by_rule", "Not in the rule's allowed models or providers.")
    approved = model.id in constraints.approved_models
    if model.id in constraints.restricted_models and not approved:
        return Rejection(model.id, "restricted_by_budget", "Restricted by a budget threshold.")
    if (
        constraints.exclude_premium
        and not approved
        and constraints.premium_line is not None
        and candidate.cost > constraints.premium_line.cost(candidate.input_tokens, candidate.output_tokens)
    ):
        return Rejection(
            model.id, "requires_approval", "A premium model: needs an approved override at this budget level."
        )
    if constraints.cost_ceiling is not None and candidate.cost > constraints.cost_ceiling:
        return Rejection(
            model.id,
            "over_cost_limit",
            f"Costs {money(candidate.cost)}, over the {money(constraints.cost_ceiling)} per-request limit.",
        )
    if constraints.price_cap is not None and candidate.cost > constraints.price_cap:
        return Rejection(model.id, "dearer_than_requested", "Dearer than the requested model.")
    if constraints.remaining is not None and candidate.cost > constraints.remaining:
        return Rejection(
            model.id,
            "exceeds_budget",
            f"Costs {money(candidate.cost)}; the budget has {money(constraints.remaining)} left.",
        )
    return None


def rank(
    candidates: Sequence[Candidate],
    *,
    task_type: str,
    requirement: int | str,
    strategy: str,
    budget_factor: float,
    constraints: Constraints,
    request_tokens: int,
    history: Mapping[str, float] | None = None,
    learned: Mapping[str, float] | None = None,
) -> Ranking:
    """Filter, score and order the candidates; `chosen` is the first of `ranked`.

    The quality requirement selects the models that may be chosen, judged on effective quality
    (configured, moved by `history`, or for models with a learned per-request estimate in `learned`
    by that instead: `learned_shifts`); if none meets it, the best effective quality eligible model
    is chosen (and the ranking says the requirement was not met)."""
    history = history or {}
    rejections: list[Rejection] = []
    eligible: list[Candidate] = []
    for candidate in candidates:
        rejection = hard_filter(candidate, constraints)
        if rejection is None:
            eligible.append(candidate)
        else:
            rejections.append(rejection)
    shifts = learned_shifts(eligible, task_type, learned) if learned else {}
    if requirement == QualityLevel.MAX:
        requirement = max(
            (
                effective_quality(c.model.quality_for(task_type), history.get(c.id), shifts.get(c.id))
                for c in eligible
            ),
            default=100,
        )
    weights = weights_for(strategy, budget_factor)
    scored = [
        _score(c, task_type, requirement, weights, request_tokens, history, shifts, learned or {})
        for c in eligible
    ]
    qualifying = [s for s in scored if s.meets_requirement]
    if qualifying:
        order = _strategy_order(strategy)
        ranked = sorted(qualifying, key=order) + sorted(
            (s for s in scored if not s.meets_requirement), key=_best_quality_order
        )
    else:
        ranked = sorted(scored, key=_best_quality_order)
    return Ranking(
        chosen=ranked[0] if ranked else None,
        ranked=ranked,
        rejections=rejections,
        requirement=int(requirement),
        requirement_met=bool(qualifying),
        weights=weights,
    )


def _score(
    candidate: Candidate,
    task_type: str,
    requirement: int,
    weights: dict[str, float],
    request_tokens: int,
    history: Mapping[str, float],
    shifts: Mapping[str, int],
    learned: Mapping[str, float],
) -> Scored:
    model = candidate.model
    quality = model.quality_for(task_type)
    observed = history.get(model.id)
    shift = shifts.get(model.id)
    effective = effective_quality(quality, observed, shift)
    # The quality component stays on the configured score: history already has its own weight.
    components = {
        "cost": cost_score(candidate.cost, request_tokens),
        "quality": quality_score(quality),
        "task_fit": task_fit(quality, model.mean_quality),
        "history": NEUTRAL_HISTORY if observed is None else observed,
    }
    score = (
        weights["cost"] * components["cost"]
        + weights["quality"] * components["quality"]
        + weights["task_fit"] * components["task_fit"]
        + weights["history"] * components["history"]
    )
    return Scored(
        candidate=candidate,
        quality=quality,
        components=components,
        score=score,
        meets_requirement=effective >= requirement,
        effective_quality=effective,
        learned_shift=shift or 0,
        learned=learned[model.id] if shift is not None else None,
    )


def _strategy_order(strategy: str):
    if strategy == Strategy.COST_OPTIMIZED:
        return lambda s: (s.cost, -s.effective_quality, -s.score, s.id)
    # Ties in score go to the cheaper model, so a higher cost weight never picks a dearer one.
    return lambda s: (-s.score, s.cost, s.id)


def _best_quality_order(s: Scored):
    return (-s.effective_quality, s.cost, s.id)


def _money_text(amount: Decimal) -> str:
    return f"${display_decimal(amount)}"
