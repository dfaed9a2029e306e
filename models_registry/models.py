"""Providers, model profiles (prices, limits, capabilities, quality per task type) and price history.

The registry is deployment-wide: every organization prices requests from the same list. Price edits go
through `models_registry.services`, which records a `PriceChange` for each.
"""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

from costswitch.money import money_field
from costswitch.ratelimit import per_minute_limit_field
from models_registry.choices import PriceSource, ProviderKind, ProviderStatus, TaskType, Tokenizer

SLUG_PATTERN = r"^[a-z0-9][a-z0-9._-]*$"
validate_registry_slug = RegexValidator(
    SLUG_PATTERN, "Use lowercase letters, digits, '.', '_' and '-', starting with a letter or digit."
)


def validate_quality_scores(value: object) -> None:
    """Scores are whole numbers 0-100, keyed by task type; a task type may be missing (unknown)."""
    if not isinstance(value, dict):
        raise ValidationError("Quality scores must be an object keyed by task type.")
    unknown = sorted(set(value) - set(TaskType.values))
    if unknown:
        raise ValidationError(f"Unknown task type(s): {', '.join(unknown)}.")
    for task, score in value.items():
        if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 100:
            raise ValidationError(f"Quality score for {task!r} must be a whole number from 0 to 100.")


class Provider(models.Model):
    """An API vendor or host. `base_url` is its OpenAI-compatible endpoint; the key stays in the env."""

    name = models.CharField(max_length=50, unique=True, validators=[validate_registry_slug])
    display_name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=ProviderKind.choices, default=ProviderKind.OTHER)
    base_url = models.URLField(max_length=300, blank=True)
    api_key_env = models.CharField(
        max_length=100,
        blank=True,
        validators=[
            RegexValidator(r"^[A-Z_][A-Z0-9_]*$", "An environment variable name, e.g. OPENAI_API_KEY.")
        ],
        help_text="Name of the environment variable holding the provider's API key (never the key itself).",
    )
    status = models.CharField(max_length=20, choices=ProviderStatus.choices, default=ProviderStatus.ACTIVE)
    pricing_url = models.URLField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.display_name or self.name


class ModelProfileQuerySet(models.QuerySet):
    def usable(self) -> "ModelProfileQuerySet":
        """Models a request may be routed to: active, from a provider that is not disabled."""
        return self.filter(is_active=True).exclude(provider__status=ProviderStatus.DISABLED)


class ModelProfile(models.Model):
    """One model as callers name it (`gpt-4o`), with its list prices per 1M tokens and what it can do."""

    id = models.CharField(primary_key=True, max_length=100, validators=[validate_registry_slug])
    provider = models.ForeignKey("models_registry.Provider", on_delete=models.PROTECT, related_name="models")
    provider_model_name = models.CharField(
        max_length=200,
        blank=True,
        help_text="The name the provider's API expects, when it differs from the id.",
    )
    display_name = models.CharField(max_length=200)
    family = models.CharField(max_length=100, blank=True)
    tokenizer = models.CharField(max_length=20, choices=Tokenizer.choices, default=Tokenizer.O200K_BASE)
    context_window = models.PositiveIntegerField()
    max_output_tokens = models.PositiveIntegerField()
    input_price_per_million = money_field()
    output_price_per_million = money_field()
    cached_input_price_per_million = money_field(
        null=True, blank=True, help_text="Price of cache-read input tokens; empty when the provider has none."
    )
    supports_tools = models.BooleanField(default=False)
    supports_vision = models.BooleanField(default=False)
    supports_json_mode = models.BooleanField(default=False)
    supports_streaming = models.BooleanField(default=True)
    quality_scores = models.JSONField(
        default=dict, blank=True, validators=[validate_quality_scores], help_text="0-100 per task type."
    )
    typical_latency_ms = models.PositiveIntegerField(
        null=True, blank=True, help_text="Typical time to first token."
    )
    is_active = models.BooleanField(default=True)
    requests_per_minute = per_minute_limit_field(
        "Requests per minute routed to this model (e.g. the provider account's quota); over it, "
        "selection falls back to another model."
    )
    tokens_per_minute = per_minute_limit_field("Estimated tokens per minute routed to this model.")
    fallbacks = models.ManyToManyField(
        "self",
        through="models_registry.ModelFallback",
        through_fields=("model", "fallback"),
        symmetrical=False,
        related_name="fallback_for",
        blank=True,
    )
    source_url = models.URLField(max_length=300, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ModelProfileQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(input_price_per_million__gte=0)
                & models.Q(output_price_per_million__gte=0)
                & (
                    models.Q(cached_input_price_per_million__isnull=True)
                    | models.Q(cached_input_price_per_million__gte=0)
                ),
                name="model_prices_not_negative",
            ),
            models.CheckConstraint(
                condition=models.Q(max_output_tokens__lte=models.F("context_window")),
                name="model_output_within_context",
            ),
        ]

    def __str__(self) -> str:
        return self.id

    def quality_for(self, task_type: str) -> int | None:
        return self.quality_scores.get(task_type)

    @property
    def api_model_name(self) -> str:
        return self.provider_model_name or self.id


class ModelFallback(models.Model):
    """One step of a model's fallback chain: where to go, in order, when the model is unavailable."""

    model = models.ForeignKey(
        "models_registry.ModelProfile", on_delete=models.CASCADE, related_name="fallback_links"
    )
    fallback = models.ForeignKey("models_registry.ModelProfile", on_delete=models.CASCADE, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["model", "position"]
        constraints = [
            models.UniqueConstraint(fields=["model", "fallback"], name="fallback_once_per_model"),
            models.UniqueConstraint(fields=["model", "position"], name="fallback_position_unique"),
            models.CheckConstraint(condition=~models.Q(model=models.F("fallback")), name="fallback_not_self"),
        ]

    def __str__(self) -> str:
        return f"{self.model_id} -> {self.fallback_id} (#{self.position})"


class PriceChangeQuerySet(models.QuerySet):
    def pending(self) -> "PriceChangeQuerySet":
        return self.filter(applied_at__isnull=True)


class PriceChange(models.Model):
    """Every edit of a model's prices: old and new prices, who, from where, effective when.

    A change with a future `effective_at` waits (`applied_at` empty) until the price job applies it.
    Rows are history: they are never edited except to stamp `applied_at`.
    """

    model = models.ForeignKey(
        "models_registry.ModelProfile", on_delete=models.CASCADE, related_name="price_changes"
    )
    old_input_price_per_million = money_field(null=True, blank=True)
    old_output_price_per_million = money_field(null=True, blank=True)
    old_cached_input_price_per_million = money_field(null=True, blank=True)
    input_price_per_million = money_field()
    output_price_per_million = money_field()
    cached_input_price_per_million = money_field(null=True, blank=True)
    source = models.CharField(max_length=20, choices=PriceSource.choices)
    source_detail = models.CharField(max_length=300, blank=True, help_text="File, webhook event id or note.")
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    effective_at = models.DateTimeField()
    applied_at = models.DateTimeField(null=True, blank=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    objects = PriceChangeQuerySet.as_manager()

    class Meta:
        ordering = ["-effective_at", "-id"]
        indexes = [models.Index(fields=["model", "-effective_at"])]

    def __str__(self) -> str:
        return f"{self.model_id} @ {self.effective_at:%Y-%m-%d %H:%M}"
