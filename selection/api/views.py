"""Selection over HTTP: estimate, select (admit), fallback chains, and the explainer."""

from datetime import timedelta

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response
from rest_framework.views import APIView

from budgets.principals import principal_from_request
from costswitch.api.serializers import validated
from costswitch.errors import NotFound, ValidationFailed
from selection import selectors
from selection.admission import admit
from selection.api import serializers as s
from selection.api.filters import DecisionFilterSet
from selection.estimates import estimate_request
from selection.models import Decision
from selection.snapshot import registry_snapshot

SELECT_PATH = "/api/v1/models/select"


class CostEstimateView(APIView):
    """Price a request on its model and alternatives before sending it; nothing is reserved."""

    @extend_schema(request=s.CostEstimateInputSerializer, responses={200: dict})
    def post(self, request):
        data = validated(s.CostEstimateInputSerializer, request.data)
        result = estimate_request(
            principal=principal_from_request(request),
            request=s.chat_request(data["request"]),
            alternatives=data["alternatives"],
        )
        return Response(s.estimate_body(result))


class ModelSelectView(APIView):
    """Choose a model for a request and hold its cost on the caller's budgets (`admit()`)."""

    @extend_schema(request=s.SelectInputSerializer, responses={201: dict})
    def post(self, request):
        data = validated(s.SelectInputSerializer, request.data)
        admission = admit(
            principal=principal_from_request(request), request=s.admission_request(data, path=SELECT_PATH)
        )
        code = status.HTTP_200_OK if admission.replayed else status.HTTP_201_CREATED
        return Response(s.select_body(admission.decision, replayed=admission.replayed), status=code)


class FallbackChainView(APIView):
    """A model's registered fallback chain, with each step's prices and whether it can serve now."""

    @extend_schema(responses={200: dict})
    def get(self, request, model_id: str):
        registry = registry_snapshot()
        model = registry.models.get(model_id)
        if model is None:
            raise NotFound(f"Model {model_id!r} not found.", code="unknown_model")
        steps = [registry.models[m] for m in model.fallbacks if m in registry.models]
        return Response(
            {
                "model_id": model.id,
                "usable": model.usable,
                "fallbacks": [
                    {
                        "position": position,
                        "model_id": step.id,
                        "provider": step.provider,
                        "provider_status": step.provider_status,
                        "usable": step.usable,
                        "input_price_per_million": step.input_price_per_million,
                        "output_price_per_million": step.output_price_per_million,
                        "context_window": step.context_window,
                    }
                    for position, step in enumerate(steps, start=1)
                ],
            }
        )


class ExplainerViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Why each decision came out as it did: candidates, scores, rejections, rules and budgets."""

    queryset = Decision.objects.none()
    lookup_value_regex = r"\d+"
    filterset_class = DecisionFilterSet

    def get_queryset(self):
        return selectors.decisions_for_principal(principal_from_request(self.request))

    @extend_schema(responses={200: dict})
    def retrieve(self, request, pk=None):
        decision = selectors.decision_get(principal=principal_from_request(request), decision_id=int(pk))
        return Response(s.explanation_body(decision))

    @extend_schema(responses={200: dict})
    @action(detail=False, url_path=r"request/(?P<request_id>[^/]+)")
    def by_request(self, request, request_id: str):
        decisions = self.get_queryset().filter(request_id=request_id)
        if not decisions:
            raise NotFound(f"No decision for request {request_id!r}.")
        return Response({"results": [s.explanation_body(d) for d in decisions]})

    @extend_schema(responses={200: dict})
    @action(detail=False)
    def recent(self, request):
        decisions = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response([s.explanation_body(d) for d in decisions])

    @extend_schema(responses={200: dict})
    @action(detail=False)
    def stats(self, request):
        since = _moment(request.query_params.get("since"), "since") or timezone.now() - timedelta(days=30)
        until = _moment(request.query_params.get("until"), "until") or timezone.now()
        if since >= until:
            raise ValidationFailed(
                "since must be before until.", details={"since": ["Must be before until."]}
            )
        decisions = self.filter_queryset(self.get_queryset()).filter(
            created_at__gte=since, created_at__lt=until
        )
        return Response({"since": since, "until": until, **selectors.decision_stats(decisions)})

    @extend_schema(request=s.SelectInputSerializer, responses={200: dict})
    @action(detail=False, methods=["post"])
    def generate(self, request):
        """Explain a hypothetical request: the same flow as select, nothing reserved or stored."""
        data = validated(s.SelectInputSerializer, request.data)
        admission = admit(
            principal=principal_from_request(request),
            request=s.admission_request(data, path=data["metadata"].get("path", SELECT_PATH)),
            reserve=False,
            record=False,
        )
        return Response(s.explanation_body(admission.decision))


def _moment(value: str | None, name: str):
    if value is None:
        return None
    moment = parse_datetime(value)
    if moment is None:
        raise ValidationFailed(f"{name} must be an ISO 8601 date-time.", details={name: ["Not a date-time."]})
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.utc)
    return moment
