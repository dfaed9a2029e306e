from django.conf import settings
from rest_framework import serializers

from budgets.selectors import percent_of
from costswitch.api.serializers import StrictFieldsMixin
from costswitch.money import ZERO, display_decimal
from models_registry.choices import TaskType
from selection.estimates import EstimateResult

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
    "response_format",
    "tool_choice",
    "parallel_tool_calls",
    "reasoning_effort",
    "metadata",
    "store",
    "modalities",
    "service_tier",
]


class PassThroughField(serializers.Field):
    """Any JSON value, taken as it is (parameters that do not affect the estimate)."""

    def to_internal_value(self, data):
        return data

    def to_representation(self, value):
        return value


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
