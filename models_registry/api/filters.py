import django_filters
from django.db.models import Q
from rest_framework.exceptions import ValidationError

from costswitch.api.filters import CamelCaseFilterSet, StrictBooleanFilter
from models_registry.choices import Tokenizer
from models_registry.models import ModelProfile

CAPABILITY_FIELDS = {
    "tools": "supports_tools",
    "vision": "supports_vision",
    "json_mode": "supports_json_mode",
    "jsonMode": "supports_json_mode",
    "streaming": "supports_streaming",
}


class CharInFilter(django_filters.BaseInFilter, django_filters.CharFilter):
    """Comma-separated names, each checked like a CharFilter (a NUL byte is a 400, not a database error)."""


class ModelProfileFilterSet(CamelCaseFilterSet):
    """`?provider=openai,anthropic&capability=tools,vision&maxInputPrice=3&active=true`"""

    provider = CharInFilter(field_name="provider__name")
    family = django_filters.CharFilter()
    tokenizer = django_filters.ChoiceFilter(choices=Tokenizer.choices)
    capability = django_filters.CharFilter(
        method="filter_capability", help_text="tools, vision, jsonMode, streaming"
    )
    min_input_price = django_filters.NumberFilter(field_name="input_price_per_million", lookup_expr="gte")
    max_input_price = django_filters.NumberFilter(field_name="input_price_per_million", lookup_expr="lte")
    min_output_price = django_filters.NumberFilter(field_name="output_price_per_million", lookup_expr="gte")
    max_output_price = django_filters.NumberFilter(field_name="output_price_per_million", lookup_expr="lte")
    min_context_window = django_filters.NumberFilter(field_name="context_window", lookup_expr="gte")
    active = StrictBooleanFilter(field_name="is_active")
    search = django_filters.CharFilter(method="filter_search")

    class Meta:
        model = ModelProfile
        fields = ["provider", "family", "tokenizer", "active"]

    def filter_capability(self, queryset, name, value):
        """Every listed capability is required (comma-separated)."""
        wanted = [item.strip() for item in value.split(",") if item.strip()]
        unknown = [item for item in wanted if item not in CAPABILITY_FIELDS]
        if unknown:
            raise ValidationError({"capability": [f"Unknown capability: {', '.join(unknown)}."]})
        return queryset.filter(**{CAPABILITY_FIELDS[item]: True for item in wanted})

    def filter_search(self, queryset, name, value):
        return queryset.filter(
            Q(id__icontains=value) | Q(display_name__icontains=value) | Q(family__icontains=value)
        )
