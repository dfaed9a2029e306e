"""Cost estimates before a request is sent: tokens in, tokens out, cost per model, budget impact.

Input tokens are counted offline with each model's tokenizer. Output tokens are the request's
`max_tokens` when given (the upper bound a reservation must hold), otherwise the typical answer
length for the task type, learned from the organization's recent usage records when there are
enough of them, else a default. Every estimate says which of the three it used.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from budgets.principals import Principal
from budgets.selectors import ChainStatusReport, chain_status, recent_output_tokens
from costswitch.cache import cache_get, cache_set
from costswitch.errors import DomainError, ValidationFailed
from models_registry.choices import TaskType
from models_registry.models import ModelProfile
from models_registry.pricing import Cost, request_cost
from models_registry.tokens import count_message_tokens_per_tokenizer
from selection.analysis import analyze_request

# Typical answer lengths (tokens) when the ledger has too few samples: a short chat reply, a
# function with explanation, a worked solution, a chain of reasoning, a summary paragraph, a JSON
# object, a translated paragraph, a page of prose.
DEFAULT_OUTPUT_TOKENS = {
    TaskType.CHAT: 350,
    TaskType.CODE: 800,
    TaskType.MATH: 600,
    TaskType.REASONING: 1000,
    TaskType.SUMMARIZATION: 300,
    TaskType.EXTRACTION: 200,
    TaskType.TRANSLATION: 500,
    TaskType.CREATIVE: 900,
}
HISTORY_WINDOW = timedelta(days=30)
HISTORY_MIN_SAMPLES = 20
HISTORY_CACHE_SECONDS = 300
# A cheaper model is only recommended if it scores at most this many points (0-100) below the
# requested model on the task type.
QUALITY_TOLERANCE = 5
# Budget impact: share of the tightest budget's remaining money that one request would take.
IMPACT_LEVELS = ((Decimal("0.001"), "low"), (Decimal("0.01"), "medium"))


class PromptTooLarge(DomainError):
    status = 413
    code = "prompt_too_large"


@dataclass(frozen=True)
class ChatRequest:
    """The parts of an OpenAI-style chat request that decide which model can answer and its cost."""

    messages: Sequence[Mapping[str, Any]]
    model: str | None = None
    max_tokens: int | None = None
    tools: Sequence[Mapping[str, Any]] | None = None
    task_type: str | None = None
    response_format: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class OutputEstimate:
    tokens: int
    source: str  # "max_tokens", "history" or "default"
    samples: int = 0


@dataclass(frozen=True)
class ModelEstimate:
    model: ModelProfile
    input_tokens: int
    output: OutputEstimate
    cost: Cost
    fits_context: bool
    budget_impact: str
    quality: int | None

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output.tokens


@dataclass(frozen=True)
class EstimateResult:
    task_type: str
    task_type_source: str  # "given" or "detected"
    estimates: list[ModelEstimate]
    recommendation: str | None
    chain: ChainStatusReport


def estimate_request(
    *, principal: Principal, request: ChatRequest, alternatives: Sequence[str] = ()
) -> EstimateResult:
    """Estimate the request on its own model and each alternative, and recommend the cheapest one
    that fits the prompt, the budget and the restrictions in force, without losing more than
    QUALITY_TOLERANCE points of quality for the task type against the requested model."""
    check_prompt_size(request.messages)
    model_ids = list(dict.fromkeys([m for m in [request.model, *alternatives] if m]))
    if not model_ids:
        raise ValidationFailed("Name a model or at least one alternative.", details={"model": ["Required."]})
    models = ModelProfile.objects.select_related("provider").in_bulk(model_ids)
    unknown = [m for m in model_ids if m not in models]
    if unknown:
        raise ValidationFailed(
            f"Unknown model(s): {', '.join(unknown)}. GET /api/v1/models lists the registry.",
            code="unknown_model",
            details={"models": unknown},
        )
    analysis = analyze_request(
        request.messages,
        tools=request.tools,
        response_format=request.response_format,
        task_type=request.task_type,
    )
    task_type = analysis.task_type
    chain = chain_status(principal=principal)
    remaining = chain.tightest.remaining if chain.tightest else None
    expected = expected_output(principal, task_type, request.max_tokens)
    input_counts = count_message_tokens_per_tokenizer(
        request.messages, tokenizers={models[m].tokenizer for m in model_ids}, tools=request.tools
    )
    estimates = []
    for model_id in model_ids:
        model = models[model_id]
        input_tokens = input_counts[model.tokenizer]
        output = _capped(expected, model)
        cost = request_cost(model, input_tokens=input_tokens, output_tokens=output.tokens)
        estimates.append(
            ModelEstimate(
                model=model,
                input_tokens=input_tokens,
                output=output,
                cost=cost,
                fits_context=input_tokens + output.tokens <= model.context_window,
                budget_impact=budget_impact(cost.total, remaining),
                quality=model.quality_for(task_type),
            )
        )
    return EstimateResult(
        task_type=task_type,
        task_type_source=analysis.task_type_source,
        estimates=estimates,
        recommendation=_recommend(estimates, request.model, chain),
        chain=chain,
    )


def budget_impact(cost: Decimal, remaining: Decimal | None) -> str:
    """low / medium / high by the share of the remaining budget; "exceeds" when it does not fit;
    "unbudgeted" when no budget applies to the caller."""
    if remaining is None:
        return "unbudgeted"
    if cost > remaining:
        return "exceeds"
    for share, level in IMPACT_LEVELS:
        if cost <= remaining * share:
            return level
    return "high"


def check_prompt_size(messages: Sequence[Mapping[str, Any]]) -> None:
    limit = settings.COSTSWITCH_MAX_PROMPT_CHARS
    size = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            size += len(content)
        elif isinstance(content, list):
            size += sum(len(part.get("text") or "") for part in content if isinstance(part, Mapping))
        if size > limit:
            raise PromptTooLarge(
                f"The messages hold more than {limit:,} characters, beyond any model's context window.",
                details={"limitChars": limit},
            )


def _learned_output(principal: Principal, task_type: str) -> OutputEstimate | None:
    """Mean answer length for the task type over the last 30 days, when there are enough samples.
    Cached for a few minutes: it moves slowly and estimates must stay fast."""
    key = f"estimates:v1:output:{principal.organization.pk}:{task_type}"
    stats = cache_get(key)
    if stats is None:
        stats = recent_output_tokens(
            organization=principal.organization, task_type=task_type, since=timezone.now() - HISTORY_WINDOW
        )
        cache_set(key, stats, HISTORY_CACHE_SECONDS)
    if stats.samples < HISTORY_MIN_SAMPLES or stats.mean is None:
        return None
    return OutputEstimate(int(stats.mean.to_integral_value(ROUND_CEILING)), "history", stats.samples)


def expected_output(principal: Principal, task_type: str, max_tokens: int | None) -> OutputEstimate:
    """The answer length to price: `max_tokens` when given, else learned from history, else a default."""
    if max_tokens is not None:
        return OutputEstimate(max_tokens, "max_tokens")
    return _learned_output(principal, task_type) or OutputEstimate(
        DEFAULT_OUTPUT_TOKENS[task_type], "default"
    )


def _capped(expected: OutputEstimate, model: ModelProfile) -> OutputEstimate:
    if expected.tokens > model.max_output_tokens:
        return OutputEstimate(model.max_output_tokens, expected.source, expected.samples)
    return expected


def _recommend(estimates: list[ModelEstimate], requested: str | None, chain: ChainStatusReport) -> str | None:
    restricted = set(chain.cost_restrictions.get("restricted_models") or ())
    ceiling = chain.cost_restrictions.get("max_cost_per_request")
    baseline = next((e.quality for e in estimates if e.model.pk == requested), None)
    eligible = [
        e
        for e in estimates
        if e.fits_context
        and e.model.is_active
        and e.budget_impact != "exceeds"
        and e.model.pk not in restricted
        and (ceiling is None or e.cost.total <= ceiling)
        and (baseline is None or (e.quality is not None and e.quality >= baseline - QUALITY_TOLERANCE))
    ]
    if not eligible:
        return None
    return min(eligible, key=lambda e: (e.cost.total, -(e.quality or 0), e.model.pk)).model.pk
