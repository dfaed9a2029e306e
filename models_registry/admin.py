"""Django admin for providers and models. Price edits made here are recorded in the price history
through `models_registry.services`, with the admin user as the author."""

from django import forms
from django.contrib import admin
from django.db import models

from costswitch.admin import ReadOnlyAdminMixin
from models_registry.choices import PriceSource
from models_registry.models import ModelFallback, ModelProfile, PriceChange, Provider
from models_registry.services import PRICE_FIELDS, Prices, model_price_change, price_history_start

# URLs without a scheme are read as https (Django 6's default), not http.
HTTPS_URLS = {models.URLField: {"form_class": forms.URLField, "assume_scheme": "https"}}


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
    formfield_overrides = HTTPS_URLS
    list_display = ["name", "display_name", "kind", "status", "base_url", "api_key_env"]
    list_filter = ["kind", "status"]
    search_fields = ["name", "display_name"]


class ModelFallbackInline(admin.TabularInline):
    model = ModelFallback
    fk_name = "model"
    extra = 0
    autocomplete_fields = ["fallback"]
    ordering = ["position"]


class PriceChangeInline(ReadOnlyAdminMixin, admin.TabularInline):
    """The price history, newest first; read-only (history is never rewritten)."""

    model = PriceChange
    extra = 0
    fields = [
        "effective_at",
        "applied_at",
        "input_price_per_million",
        "output_price_per_million",
        "cached_input_price_per_million",
        "old_input_price_per_million",
        "old_output_price_per_million",
        "source",
        "source_detail",
        "changed_by",
    ]
    readonly_fields = fields
    ordering = ["-effective_at", "-id"]


@admin.register(ModelProfile)
class ModelProfileAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "provider",
        "input_price_per_million",
        "output_price_per_million",
        "cached_input_price_per_million",
        "context_window",
        "supports_tools",
        "supports_vision",
        "supports_json_mode",
        "is_active",
    ]
    list_filter = [
        "provider",
        "is_active",
        "supports_tools",
        "supports_vision",
        "supports_json_mode",
        "supports_streaming",
        "tokenizer",
    ]
    list_select_related = ["provider"]
    search_fields = ["id", "display_name", "family", "provider_model_name"]
    inlines = [ModelFallbackInline, PriceChangeInline]
    formfield_overrides = HTTPS_URLS
    readonly_fields = ["created_at", "updated_at"]

    def save_model(self, request, obj, form, change) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            price_history_start(model=obj, source=PriceSource.ADMIN, changed_by=request.user)
            return
        new_prices = Prices.of(obj)
        stored = ModelProfile.objects.get(pk=obj.pk)
        for name in PRICE_FIELDS:  # the service applies (and records) the price edit, not the form
            setattr(obj, name, getattr(stored, name))
        super().save_model(request, obj, form, change)
        model_price_change(model=obj, prices=new_prices, source=PriceSource.ADMIN, changed_by=request.user)


@admin.register(PriceChange)
class PriceChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "model",
        "effective_at",
        "applied_at",
        "input_price_per_million",
        "output_price_per_million",
        "source",
        "changed_by",
    ]
    list_filter = ["source", "model__provider"]
    list_select_related = ["model", "changed_by"]
    search_fields = ["model__id", "source_detail"]
