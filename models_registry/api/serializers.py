from django.conf import settings
from rest_framework import serializers

from costswitch.api.serializers import MoneyField, StrictFieldsMixin
from models_registry.choices import TaskType, Tokenizer
from models_registry.models import SLUG_PATTERN, ModelProfile, PriceChange, Provider
from models_registry.services import model_fallback_ids


class ProviderSerializer(serializers.ModelSerializer):
    class Meta:
        model = Provider
        fields = ["name", "display_name", "kind", "base_url", "api_key_env", "status", "pricing_url"]


class CapabilitiesSerializer(StrictFieldsMixin, serializers.Serializer):
    tools = serializers.BooleanField(source="supports_tools", default=False)
    vision = serializers.BooleanField(source="supports_vision", default=False)
    json_mode = serializers.BooleanField(source="supports_json_mode", default=False)
    streaming = serializers.BooleanField(source="supports_streaming", default=True)


class QualitySerializer(StrictFieldsMixin, serializers.Serializer):
    """0-100 per task type; a missing task type means the score is unknown."""

    def get_fields(self):
        return {
            task: serializers.IntegerField(min_value=0, max_value=100, required=False)
            for task in TaskType.values
        }


class ModelProfileSerializer(serializers.ModelSerializer):
    provider = serializers.SlugRelatedField(slug_field="name", read_only=True)
    capabilities = CapabilitiesSerializer(source="*")
    quality = serializers.JSONField(source="quality_scores")
    active = serializers.BooleanField(source="is_active")
    fallbacks = serializers.SerializerMethodField()
    currency = serializers.SerializerMethodField()
    input_price_per_million = MoneyField()
    output_price_per_million = MoneyField()
    cached_input_price_per_million = MoneyField(allow_null=True)

    class Meta:
        model = ModelProfile
        fields = [
            "id",
            "provider",
            "provider_model_name",
            "display_name",
            "family",
            "tokenizer",
            "context_window",
            "max_output_tokens",
            "currency",
            "input_price_per_million",
            "output_price_per_million",
            "cached_input_price_per_million",
            "capabilities",
            "quality",
            "typical_latency_ms",
            "requests_per_minute",
            "tokens_per_minute",
            "active",
            "fallbacks",
            "source_url",
            "notes",
            "created_at",
            "updated_at",
        ]

    def get_fallbacks(self, model: ModelProfile) -> list[str]:
        links = getattr(model, "_prefetched_objects_cache", {}).get("fallback_links")
        if links is not None:
            return [link.fallback_id for link in sorted(links, key=lambda link: link.position)]
        return model_fallback_ids(model)

    def get_currency(self, model: ModelProfile) -> str:
        return settings.COSTSWITCH_CURRENCY


class ModelProfileInputSerializer(StrictFieldsMixin, serializers.Serializer):
    """Create (POST, `id` required) or change (PUT/PATCH) a model. Price edits are recorded in the
    price history; `effectiveAt` in the future schedules them instead of applying them now."""

    id = serializers.RegexField(SLUG_PATTERN, max_length=100, required=False)
    provider = serializers.SlugRelatedField(slug_field="name", queryset=Provider.objects.all())
    provider_model_name = serializers.CharField(max_length=200, allow_blank=True, required=False)
    display_name = serializers.CharField(max_length=200, required=False)
    family = serializers.CharField(max_length=100, allow_blank=True, required=False)
    tokenizer = serializers.ChoiceField(choices=Tokenizer.choices, required=False)
    context_window = serializers.IntegerField(min_value=1)
    max_output_tokens = serializers.IntegerField(min_value=1)
    input_price_per_million = MoneyField()
    output_price_per_million = MoneyField()
    cached_input_price_per_million = MoneyField(allow_null=True, required=False)
    capabilities = CapabilitiesSerializer(required=False)
    quality = QualitySerializer(required=False)
    typical_latency_ms = serializers.IntegerField(min_value=1, allow_null=True, required=False)
    requests_per_minute = serializers.IntegerField(
        min_value=1, max_value=2_147_483_647, allow_null=True, required=False
    )
    tokens_per_minute = serializers.IntegerField(
        min_value=1, max_value=2_147_483_647, allow_null=True, required=False
    )
    active = serializers.BooleanField(required=False)
    fallbacks = serializers.ListField(
        child=serializers.CharField(max_length=100), max_length=10, required=False
    )
    source_url = serializers.URLField(max_length=300, allow_blank=True, required=False)
    notes = serializers.CharField(allow_blank=True, required=False)
    effective_at = serializers.DateTimeField(required=False)

    def validate(self, attrs):
        context = attrs.get("context_window", getattr(self.instance, "context_window", None))
        output = attrs.get("max_output_tokens", getattr(self.instance, "max_output_tokens", None))
        if context is not None and output is not None and output > context:
            raise serializers.ValidationError({"max_output_tokens": ["Cannot be larger than contextWindow."]})
        return attrs


class ModelProfileCreateSerializer(ModelProfileInputSerializer):
    id = serializers.RegexField(SLUG_PATTERN, max_length=100)


class PriceChangeSerializer(serializers.ModelSerializer):
    changed_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    old_input_price_per_million = MoneyField(allow_null=True)
    old_output_price_per_million = MoneyField(allow_null=True)
    old_cached_input_price_per_million = MoneyField(allow_null=True)
    input_price_per_million = MoneyField()
    output_price_per_million = MoneyField()
    cached_input_price_per_million = MoneyField(allow_null=True)

    class Meta:
        model = PriceChange
        fields = [
            "id",
            "model",
            "old_input_price_per_million",
            "old_output_price_per_million",
            "old_cached_input_price_per_million",
            "input_price_per_million",
            "output_price_per_million",
            "cached_input_price_per_million",
            "source",
            "source_detail",
            "changed_by",
            "effective_at",
            "applied_at",
            "recorded_at",
        ]


class PriceUpdateSerializer(StrictFieldsMixin, serializers.Serializer):
    model_id = serializers.CharField(max_length=100)
    input_price_per_million = MoneyField()
    output_price_per_million = MoneyField()
    cached_input_price_per_million = MoneyField(allow_null=True, required=False)
    effective_at = serializers.DateTimeField(required=False)


class ModelCostUpdateSerializer(StrictFieldsMixin, serializers.Serializer):
    """Body of the model-cost-update webhook: one event, one or more price updates."""

    event_id = serializers.CharField(max_length=200)
    source = serializers.CharField(max_length=100, required=False, allow_blank=True)
    updates = PriceUpdateSerializer(many=True, allow_empty=False, max_length=500)
