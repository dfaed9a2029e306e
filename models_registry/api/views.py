"""The model registry over HTTP: everyone authenticated reads, staff (Django admins) write."""

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from costswitch.api.serializers import validated
from costswitch.errors import NotFound, ValidationFailed
from costswitch.webhooks import verify_delivery, webhook_receive
from models_registry.api import serializers as s
from models_registry.api.filters import ModelProfileFilterSet
from models_registry.choices import PriceSource
from models_registry.models import ModelFallback, ModelProfile, Provider
from models_registry.services import (
    PRICE_FIELDS,
    Prices,
    model_archive,
    model_create,
    model_price_change,
    model_update,
)

PROFILE_INPUTS = {
    "provider_model_name": "provider_model_name",
    "display_name": "display_name",
    "family": "family",
    "tokenizer": "tokenizer",
    "context_window": "context_window",
    "max_output_tokens": "max_output_tokens",
    "typical_latency_ms": "typical_latency_ms",
    "requests_per_minute": "requests_per_minute",
    "tokens_per_minute": "tokens_per_minute",
    "active": "is_active",
    "source_url": "source_url",
    "notes": "notes",
}


class StaffWritesOnly(permissions.BasePermission):
    """The registry is shared by every organization, so only deployment staff may change it."""

    message = "Only staff (Django admin users) can change the model registry."

    def has_permission(self, request, view) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return bool(request.user and request.user.is_authenticated)
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)


class ProviderViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Provider.objects.all()
    serializer_class = s.ProviderSerializer
    lookup_field = "name"
    pagination_class = None


class ModelProfileViewSet(viewsets.ModelViewSet):
    """Models with list prices per 1M tokens. DELETE deactivates: usage and price history keep it."""

    queryset = ModelProfile.objects.select_related("provider").prefetch_related(
        Prefetch("fallback_links", queryset=ModelFallback.objects.order_by("position"))
    )
    serializer_class = s.ModelProfileSerializer
    filterset_class = ModelProfileFilterSet
    permission_classes = [StaffWritesOnly]
    lookup_value_regex = r"[a-z0-9][a-z0-9._-]*"
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_object(self):
        try:
            return self.get_queryset().get(pk=self.kwargs["pk"])
        except ModelProfile.DoesNotExist:
            raise NotFound(f"No model {self.kwargs['pk']!r} in the registry.", code="unknown_model") from None

    def _respond(self, model: ModelProfile, status_code=status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=model.pk)  # prices and fallbacks as stored
        return Response(s.ModelProfileSerializer(fresh).data, status=status_code)

    @extend_schema(request=s.ModelProfileCreateSerializer, responses={201: s.ModelProfileSerializer})
    def create(self, request):
        data = validated(s.ModelProfileCreateSerializer, request.data)
        if "effective_at" in data:
            raise ValidationFailed(
                "A new model's prices apply from now; schedule later changes with PATCH.",
                details={"effectiveAt": ["Not allowed when creating a model."]},
            )
        model = model_create(
            id=data["id"],
            provider=data["provider"],
            prices=_prices(data, None),
            profile=_profile(data),
            fallbacks=data.get("fallbacks", ()),
            source=PriceSource.API,
            changed_by=request.user,
        )
        return self._respond(model, status.HTTP_201_CREATED)

    @extend_schema(request=s.ModelProfileInputSerializer, responses=s.ModelProfileSerializer)
    def update(self, request, pk=None, partial=False):
        model = self.get_object()
        serializer = s.ModelProfileInputSerializer(instance=model, data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        prices = _prices(data, model)
        if "effective_at" in data and prices is None:
            raise ValidationFailed(
                "effectiveAt schedules a price change: send the new prices with it.",
                details={"effectiveAt": ["Only allowed together with a price."]},
            )
        if "id" in data and data["id"] != model.pk:
            raise ValidationFailed(
                "A model's id cannot change; create a new model instead.",
                code="id_immutable",
                details={"id": [data["id"]]},
            )
        model_update(
            model=model,
            profile=_profile(data),
            prices=prices,
            fallbacks=data.get("fallbacks"),
            provider=data.get("provider"),
            source=PriceSource.API,
            changed_by=request.user,
            effective_at=data.get("effective_at"),
        )
        return self._respond(model)

    def partial_update(self, request, pk=None):
        return self.update(request, pk=pk, partial=True)

    def destroy(self, request, pk=None):
        model_archive(model=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=s.PriceChangeSerializer(many=True))
    @action(detail=True, methods=["get"], url_path="price-history")
    def price_history(self, request, pk=None):
        model = self.get_object()
        changes = model.price_changes.select_related("changed_by")
        page = self.paginate_queryset(changes)
        return self.get_paginated_response(s.PriceChangeSerializer(page, many=True).data)


def _profile(data: dict) -> dict:
    profile = {target: data[source] for source, target in PROFILE_INPUTS.items() if source in data}
    if "capabilities" in data:
        profile.update(data["capabilities"])
    if "quality" in data:
        profile["quality_scores"] = dict(data["quality"])
    return profile


def _prices(data: dict, model: ModelProfile | None) -> Prices | None:
    """Prices as given, the missing ones taken from the model (PATCH may change one price)."""
    if model is not None and not any(name in data for name in PRICE_FIELDS):
        return None
    current = Prices.of(model) if model is not None else Prices(None, None, None)
    return Prices(*(data.get(name, getattr(current, name)) for name in PRICE_FIELDS))


class ModelCostUpdateWebhook(APIView):
    """`POST /api/v1/webhooks/model-cost-update`: a signed price feed (see costswitch.webhooks)."""

    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(request=s.ModelCostUpdateSerializer, responses={200: dict})
    def post(self, request):
        delivery = verify_delivery(request)
        data = validated(s.ModelCostUpdateSerializer, delivery.payload)
        models = ModelProfile.objects.in_bulk([update["model_id"] for update in data["updates"]])
        unknown = sorted({u["model_id"] for u in data["updates"]} - set(models))
        if unknown:
            raise NotFound(
                f"Unknown model(s): {', '.join(unknown)}; nothing was changed.",
                code="unknown_model",
                details={"models": unknown},
            )

        def apply() -> dict:
            outcome: dict[str, list[str]] = {"applied": [], "scheduled": [], "unchanged": []}
            for update in data["updates"]:
                model = models[update["model_id"]]
                change = model_price_change(
                    model=model,
                    prices=Prices(
                        update["input_price_per_million"],
                        update["output_price_per_million"],
                        update.get("cached_input_price_per_million", model.cached_input_price_per_million),
                    ),
                    source=PriceSource.WEBHOOK,
                    source_detail=f"{data.get('source') or 'webhook'} event {data['event_id']}",
                    effective_at=update.get("effective_at"),
                )
                key = "unchanged" if change is None else "applied" if change.applied_at else "scheduled"
                outcome[key].append(model.pk)
            return outcome

        receipt = webhook_receive(endpoint="model-cost-update", delivery=delivery, apply=apply)
        return Response(
            {
                "event_id": receipt.webhook.event_id,
                "status": "duplicate" if receipt.duplicate else receipt.webhook.status,
                **receipt.webhook.result,
            }
        )
