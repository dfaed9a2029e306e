from decimal import Decimal

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from budgets.selectors import percent_of
from costswitch.api.serializers import MoneyField, StrictFieldsMixin
from costswitch.money import ZERO, display_decimal
from models_registry.choices import TaskType
from selection.admission import AdmissionRequest
from selection.choices import Priority, QualityLevel, Strategy
from selection.estimates import ChatRequest, EstimateResult
from selection.models import Decision
from selection.outcome_learning import FEATURES_KEY

MESSAGE_ROLES = ["system", "developer", "user", "assistant", "tool", "function"]
# OpenAI chat parameters that do not change the cost estimate: accepted and ignored, so a service
# can send its request as it is. Anything else is refused, so a typo never passes silently.
IGNORED_OPENAI_PARAMS = [
    "temperature",
    "top_p",
    "n",
    "stream",
    "stream_options",
    "stop",
    "seed",
    "user",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "top_logprobs",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "metadata",
    "store",
    "modalities",
    "service_tier",
]


@extend_schema_field(OpenApiTypes.ANY)
class PassThroughField(serializers.Field):
    """Any JSON value, taken as it is (parameters that do not affect the estimate)."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object"}}]})
class MessageContentField(serializers.Field):
    """A string, a list of content parts ({"type": "text", "text": ...}, images...), or null."""

    def to_internal_value(self, data):
        if data is None or isinstance(data, str):
            return data
        if isinstance(data, list):
            for index, part in enumerate(data):
                if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                    raise serializers.ValidationError(f"Part {index} must be an object with a string 'type'.")
                if part["type"] == "text" and not isinstance(part.get("text"), str):
                    raise serializers.ValidationError(f"Part {index}: a text part needs a string 'text'.")
            return data
        raise serializers.ValidationError("Content must be a string, a list of content parts, or null.")

    def to_representation(self, value):
        return value


class ChatMessageSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=MESSAGE_ROLES)
    content = MessageContentField(allow_null=True, required=False)
    name = serializers.CharField(max_length=256, required=False)
    tool_calls = serializers.ListField(child=serializers.DictField(), required=False)
    tool_call_id = serializers.CharField(max_length=256, required=False)

    def validate(self, attrs):
        if attrs.get("content") is None and not attrs.get("tool_calls"):
            raise serializers.ValidationError(
                {"content": ["Required unless the message carries tool_calls."]}
            )
        return attrs


class ChatRequestSerializer(StrictFieldsMixin, serializers.Serializer):
    model = serializers.CharField(max_length=100, required=False)
    messages = ChatMessageSerializer(many=True, allow_empty=False, max_length=10_000)
    max_tokens = serializers.IntegerField(min_value=1, required=False)
    max_completion_tokens = serializers.IntegerField(min_value=1, required=False)
    tools = serializers.ListField(child=serializers.DictField(), required=False, max_length=512)
    task_type = serializers.ChoiceField(choices=TaskType.choices, required=False)
    response_format = serializers.DictField(required=False)

    def get_fields(self):
        fields = super().get_fields()
        for name in IGNORED_OPENAI_PARAMS:
            fields[name] = PassThroughField(required=False, write_only=True)
        return fields


class CostEstimateInputSerializer(StrictFieldsMixin, serializers.Serializer):
    """The seed's contract: an OpenAI-style request and the alternative models to price it on."""

    request = ChatRequestSerializer()
    alternatives = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list, max_length=50
    )


def chat_request(data: dict) -> ChatRequest:
    return ChatRequest(
        messages=data["messages"],
        model=data.get("model"),
        max_tokens=data.get("max_tokens") or data.get("max_completion_tokens"),
        tools=data.get("tools"),
        task_type=data.get("task_type"),
        response_format=data.get("response_format"),
    )


def estimate_body(result: EstimateResult) -> dict:
    """The seed's response shape, plus the figures behind each estimate."""
    return {
        "task_type": result.task_type,
        "task_type_source": result.task_type_source,
        "currency": settings.COSTSWITCH_CURRENCY,
        "estimates": [
            {
                "model": e.model.pk,
                "provider": e.model.provider.name,
                "estimated_tokens": e.total_tokens,
                "estimated_cost": display_decimal(e.cost.total),
                "budget_impact": e.budget_impact,
                "input_tokens": e.input_tokens,
                "output_tokens": e.output.tokens,
                "output_tokens_source": e.output.source,
                "input_cost": display_decimal(e.cost.input),
                "output_cost": display_decimal(e.cost.output),
                "fits_context": e.fits_context,
                "quality": e.quality,
                "active": e.model.is_active,
            }
            for e in result.estimates
        ],
        "recommendation": result.recommendation,
        "budget_status": _budget_status(result),
    }


def _budget_status(result: EstimateResult) -> dict | None:
    tightest = result.chain.tightest
    if tightest is None:
        return None
    budget = tightest.budget
    remaining = max(tightest.remaining, ZERO)
    return {
        "current_budget": f"{budget.scope_type}-{budget.scope_id}",
        "budget_id": budget.pk,
        "budget_name": budget.name,
        "remaining_budget": display_decimal(remaining),
        "percent_remaining": display_decimal(percent_of(remaining, tightest.limit)),
        "status": tightest.status,
        "aggregate_status": result.chain.aggregate_status,
    }


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": list(QualityLevel.values)},
            {"type": "integer", "minimum": 0, "maximum": 100},
        ]
    }
)
class QualityRequirementField(serializers.Field):
    """low / medium / high / max, or a score 0-100."""

    def to_internal_value(self, data):
        if isinstance(data, str) and data in QualityLevel.values:
            return data
        if isinstance(data, int) and not isinstance(data, bool) and 0 <= data <= 100:
            return data
        raise serializers.ValidationError(
            f"Must be one of {', '.join(QualityLevel.values)} or an integer from 0 to 100."
        )

    def to_representation(self, value):
        return value


class RequestOverrideSerializer(StrictFieldsMixin, serializers.Serializer):
    """If the budget refuses the request in a way an override could lift, ask for one at once."""

    reason = serializers.CharField(max_length=2000)
    duration_minutes = serializers.IntegerField(min_value=1, required=False)
    extra_amount = MoneyField(required=False, min_value=Decimal("0.000000001"))


class SelectInputSerializer(StrictFieldsMixin, serializers.Serializer):
    """An OpenAI-style request (model optional or "auto") and how to choose for it."""

    request = ChatRequestSerializer()
    request_id = serializers.CharField(max_length=200, required=False)
    strategy = serializers.ChoiceField(choices=Strategy.choices, required=False)
    quality_requirement = QualityRequirementField(required=False)
    max_cost = MoneyField(required=False)
    priority = serializers.ChoiceField(choices=Priority.choices, required=False, default=Priority.NORMAL)
    tags = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list, max_length=50
    )
    metadata = serializers.DictField(required=False, default=dict)
    team_id = serializers.IntegerField(required=False, min_value=1)
    user_id = serializers.IntegerField(required=False, min_value=1)
    ttl_seconds = serializers.IntegerField(min_value=1, max_value=86400, required=False)
    request_override = RequestOverrideSerializer(required=False)


def admission_request(data: dict, *, path: str) -> AdmissionRequest:
    return AdmissionRequest(
        chat=chat_request(data["request"]),
        request_id=data.get("request_id"),
        path=path,
        strategy=data.get("strategy"),
        quality_requirement=data.get("quality_requirement"),
        max_cost=data.get("max_cost"),
        priority=data["priority"],
        tags=tuple(data["tags"]),
        metadata=data["metadata"],
        team_id=data.get("team_id"),
        user_id=data.get("user_id"),
        ttl_seconds=data.get("ttl_seconds"),
        request_override=data.get("request_override"),
    )


def _money(amount) -> dict | None:
    if amount is None:
        return None
    return {"amount": display_decimal(Decimal(amount)), "currency": settings.COSTSWITCH_CURRENCY}


def _decimal(value: str | None):
    return display_decimal(Decimal(value)) if value is not None else None


def _budget_numbers(snapshot: dict) -> dict:
    """The stored snapshot keeps amounts as exact strings; the API shows them as numbers."""
    amounts = ["limit", "spent", "reserved", "remaining", "percent_committed"]
    return {
        **snapshot,
        "percent_of_remaining": _decimal(snapshot.get("percent_of_remaining")),
        "budgets": [{**b, **{k: _decimal(b[k]) for k in amounts}} for b in snapshot.get("budgets", [])],
    }


def select_body(decision: Decision, *, replayed: bool = False) -> dict:
    """The seed's select contract, plus what a caller needs to call the model and settle it."""
    chosen = decision.candidates[0] if decision.candidates else {}
    reservation = decision.reservation
    savings = decision.savings
    return {
        "request_id": decision.request_id,
        "decision_id": decision.pk,
        "selected_model": decision.selected_model,
        "provider": chosen.get("provider"),
        "tier": chosen.get("tier"),
        "task_type": decision.task_type,
        "complexity": decision.complexity,
        "strategy": decision.strategy,
        "quality_requirement": decision.quality_requirement,
        "alternatives": alternatives(decision),
        "estimated_cost": _money(decision.estimated_cost),
        "estimated_tokens": {"input": decision.input_tokens, "output": decision.output_tokens},
        "requested_model": decision.requested_model or None,
        "requested_model_cost": _money(decision.requested_model_cost),
        "savings": _money(savings) if savings is not None else None,
        "budget_impact": {
            "percent_of_remaining": _decimal(decision.budget.get("percent_of_remaining")),
            "status": decision.budget.get("impact"),
            "budget_status": decision.budget.get("aggregate_status"),
        },
        "reservation_id": reservation.pk if reservation else None,
        "reservation_expires_at": reservation.expires_at if reservation else None,
        "fallback_chain": [
            {"model_id": step["model"], "estimated_cost": _money(step["estimated_cost"])}
            for step in decision.fallback_chain
        ],
        "rule": decision.rule_name or None,
        "changes": decision.changes,
        "replayed": replayed,
    }


def alternatives(decision: Decision, limit: int = 4) -> list[dict]:
    """The next best eligible models and, if the requested model was turned down, why: each with
    its cost and quality difference to the choice."""
    if not decision.candidates:
        return []
    chosen = decision.candidates[0]
    result = [
        _alternative(chosen, other, _why_not(decision, chosen, other), "ranked_lower")
        for other in decision.candidates[1 : limit + 1]
    ]
    by_model = {r["model"]: r for r in decision.rejections}
    requested = by_model.get(decision.requested_model)
    if requested is not None:
        result.insert(
            0, {"model_id": requested["model"], "reason": requested["reason"], "code": requested["code"]}
        )
    return result


def _alternative(chosen: dict, other: dict, reason: str, code: str) -> dict:
    return {
        "model_id": other["model"],
        "reason": reason,
        "code": code,
        "estimated_cost": display_decimal(Decimal(other["estimated_cost"])),
        "cost_difference": display_decimal(
            Decimal(other["estimated_cost"]) - Decimal(chosen["estimated_cost"])
        ),
        "quality_difference": other["quality"] - chosen["quality"],
    }


def _why_not(decision: Decision, chosen: dict, other: dict) -> str:
    extra = Decimal(other["estimated_cost"]) - Decimal(chosen["estimated_cost"])
    if not other["meets_requirement"]:
        effective = other.get("effective_quality", other["quality"])
        learned = (
            f" ({other['quality']} configured, after reported outcomes)"
            if effective != other["quality"]
            else ""
        )
        return (
            f"Scores {effective}{learned} on {decision.task_type}, below the requirement of "
            f"{decision.quality_requirement}."
        )
    if extra > 0 and decision.strategy == Strategy.COST_OPTIMIZED:
        return f"Costs ${display_decimal(extra)} more; {chosen['model']} meets the requirement for less."
    if extra > 0:
        return (
            f"Costs ${display_decimal(extra)} more for {other['quality'] - chosen['quality']:+d} quality; "
            f"lower overall score ({other['score']:.3f} vs {chosen['score']:.3f})."
        )
    return (
        f"Cheaper by ${display_decimal(-extra)} but a lower overall score "
        f"({other['score']:.3f} vs {chosen['score']:.3f})."
    )


def explanation_body(decision: Decision) -> dict:
    """Everything the engine knew and did: the explainer's view of one decision."""
    return {
        "decision_id": decision.pk,
        "request_id": decision.request_id,
        "created_at": decision.created_at,
        "path": decision.path,
        "outcome": decision.outcome,
        "refusal": (
            {"code": decision.refusal_code, "message": decision.refusal_message}
            if decision.refusal_code
            else None
        ),
        "selected_model": decision.selected_model or None,
        "requested_model": decision.requested_model or None,
        "strategy": decision.strategy,
        "priority": decision.priority,
        "task_type": decision.task_type,
        "complexity": decision.complexity,
        "quality_requirement": decision.quality_requirement,
        "estimated_cost": _money(decision.estimated_cost),
        "requested_model_cost": _money(decision.requested_model_cost),
        "savings": _money(decision.savings),
        "reservation_id": decision.reservation_id,
        "team_id": decision.team_id,
        "user_id": decision.user_id,
        "rule": {"name": decision.rule_name, "rule_set_id": decision.rule_set_id}
        if decision.rule_name
        else None,
        "changes": decision.changes,
        "weights": decision.weights,
        "candidates": [{**c, "estimated_cost": _decimal(c["estimated_cost"])} for c in decision.candidates],
        "rejections": decision.rejections,
        "fallback_chain": [
            {**f, "estimated_cost": _decimal(f["estimated_cost"])} for f in decision.fallback_chain
        ],
        "alternatives": alternatives(decision),
        # The hashed words of the prompt are for learning only: unkeyed hashes can be reversed
        # with a dictionary, so they would reveal the prompt's words to anyone who reads decisions.
        "analysis": {k: v for k, v in decision.analysis.items() if k != FEATURES_KEY},
        "budget": _budget_numbers(decision.budget),
        "latency_ms": decision.latency_us / 1000,
    }
