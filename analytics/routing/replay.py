"""The product's decision core replayed on evaluation prompts, without the database.

Every prompt goes through what `admit()` runs for an "auto" request: `analyze_request` on the prompt
text alone, the request priced for each model (`request_cost`, the default output length for the
task type), `quality_requirement` from the complexity, and `engine.rank` with the organization's
history scores. The registry is two models at RouteLLM's blended prices; their quality scores per
task type are the catalog's, fixed before looking at any outcome (see `pair`)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from django.conf import settings

from models_registry.catalog import DEFAULT_CATALOG, load_catalog
from models_registry.choices import TaskType
from models_registry.pricing import request_cost
from models_registry.tokens import count_message_tokens_per_tokenizer
from selection.analysis import RequestAnalysis, analyze_request
from selection.engine import Candidate, Constraints, PriceLine, Ranking, quality_requirement, rank
from selection.estimates import DEFAULT_OUTPUT_TOKENS
from selection.snapshot import ModelSnapshot

# RouteLLM's cost model (paper, appendix D): USD per 1M tokens, input and output blended.
STRONG_PRICE = Decimal("24.7")
WEAK_PRICE = Decimal("0.24")
# Quality per task type as this product ships it: gpt-4-1106-preview is the GPT-4 Turbo preview
# (catalog "gpt-4-turbo"); Mixtral-8x7B-Instruct stands level with GPT-3.5 Turbo on LMArena (catalog
# "gpt-3.5-turbo"). Chosen from the catalog, not fitted to the outcomes.
STRONG_PROFILE, WEAK_PROFILE = "gpt-4-turbo", "gpt-3.5-turbo"
STRONG_ID, WEAK_ID = "strong", "weak"
# The knob swept: an offset added to both models' configured scores. The weak model is chosen while
# the requirement derived from complexity (55..90) is within its score, so offsets from "no task
# type's weak score reaches 55" to "every task type's reaches 90" span all-strong to all-weak.
REQUIREMENT_RANGE = (55, 90)


@dataclass(frozen=True)
class Prepared:
    """One prompt as the engine sees it: analysed once, priced per model per setting."""

    analysis: RequestAnalysis
    input_tokens: int
    output_tokens: int


def prepare(prompts: Sequence[str]) -> list[Prepared]:
    """Analyse and count every prompt once: the analyzer sees only the text of one user message."""
    prepared = []
    for prompt in prompts:
        messages = [{"role": "user", "content": prompt}]
        analysis = analyze_request(messages)
        counts = count_message_tokens_per_tokenizer(messages, tokenizers={"o200k_base"})
        prepared.append(Prepared(analysis, counts["o200k_base"], DEFAULT_OUTPUT_TOKENS[analysis.task_type]))
    return prepared


def _snapshot(model_id: str, quality: Mapping[str, int], price: Decimal) -> ModelSnapshot:
    scores = {task: int(quality.get(task, 0)) for task in TaskType.values}
    return ModelSnapshot(
        id=model_id,
        provider=model_id,
        provider_status="active",
        tokenizer="o200k_base",
        context_window=1_000_000,
        max_output_tokens=32_768,
        input_price_per_million=price,
        output_price_per_million=price,
        cached_input_price_per_million=None,
        capabilities=frozenset({"tools", "vision", "json", "streaming"}),
        quality=scores,
        mean_quality=sum(scores.values()) / len(scores),
        typical_latency_ms=None,
        is_active=True,
        fallbacks=(),
    )


def configured_quality() -> dict[str, dict[str, int]]:
    """The catalog's per-task-type scores for the two stand-in profiles."""
    specs = {spec.id: spec for spec in load_catalog(DEFAULT_CATALOG).models}
    return {
        STRONG_ID: dict(specs[STRONG_PROFILE].quality_scores or {}),
        WEAK_ID: dict(specs[WEAK_PROFILE].quality_scores or {}),
    }


def pair(offset: int = 0, quality: Mapping[str, Mapping[str, int]] | None = None) -> list[ModelSnapshot]:
    """The two-model registry, both models' scores shifted by `offset` (the pair keeps its gap)."""
    quality = quality or configured_quality()
    return [
        _snapshot(name, {task: score + offset for task, score in quality[name].items()}, price)
        for name, price in ((STRONG_ID, STRONG_PRICE), (WEAK_ID, WEAK_PRICE))
    ]


def offsets(quality: Mapping[str, Mapping[str, int]] | None = None) -> list[int]:
    """Every offset that changes some decision, from all-strong to all-weak."""
    quality = quality or configured_quality()
    weak = quality[WEAK_ID].values()
    low, high = REQUIREMENT_RANGE
    return list(range(low - 1 - max(weak), high - min(weak) + 1))


def priced(item: Prepared, models: Sequence[ModelSnapshot]) -> list[Candidate]:
    return [
        Candidate(
            model,
            item.input_tokens,
            item.output_tokens,
            request_cost(model, input_tokens=item.input_tokens, output_tokens=item.output_tokens).total,
        )
        for model in models
    ]


def decide(
    item: Prepared,
    models: Sequence[ModelSnapshot],
    *,
    strategy: str | None = None,
    history: Mapping[str, Mapping[str, float]] | None = None,
    premium_line: PriceLine | None = None,
    learned: Mapping[str, float] | None = None,
) -> str:
    """The model `admit()` would pick for this prompt (no budget pressure, no rules): its id."""
    ranking = decide_ranking(
        item, models, strategy=strategy, history=history, premium_line=premium_line, learned=learned
    )
    if ranking.chosen is None:
        raise RuntimeError("no eligible model in the two-model registry")
    return ranking.chosen.id


def decide_ranking(
    item: Prepared,
    models: Sequence[ModelSnapshot],
    *,
    strategy: str | None = None,
    history: Mapping[str, Mapping[str, float]] | None = None,
    premium_line: PriceLine | None = None,
    learned: Mapping[str, float] | None = None,
) -> Ranking:
    """`engine.rank` as `admit()` calls it for an "auto" request, with the learned per-request
    estimates (`selection.learning.estimates`) when given."""
    analysis = item.analysis
    return rank(
        priced(item, models),
        task_type=analysis.task_type,
        requirement=quality_requirement(None, analysis.complexity),
        strategy=strategy or settings.COSTSWITCH_DEFAULT_STRATEGY,
        budget_factor=0.0,
        constraints=Constraints(
            required_capabilities=analysis.required_capabilities,
            premium_line=premium_line or default_premium_line(),
        ),
        request_tokens=item.input_tokens + item.output_tokens,
        history=(history or {}).get(analysis.task_type, {}),
        learned=learned,
    )


def default_premium_line() -> PriceLine:
    return PriceLine(*(Decimal(value) for value in settings.COSTSWITCH_PREMIUM_PRICE_LINE))


def costs(items: Sequence[Prepared], models: Sequence[ModelSnapshot]) -> dict[str, list[Decimal]]:
    """Each prompt's cost on each model, as the engine priced it."""
    by_model: dict[str, list[Decimal]] = {model.id: [] for model in models}
    for item in items:
        for candidate in priced(item, models):
            by_model[candidate.id].append(candidate.cost)
    return by_model


def with_output(item: Prepared, output_tokens: int) -> Prepared:
    return replace(item, output_tokens=output_tokens)
