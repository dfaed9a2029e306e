"""Override requests over HTTP: ask (or self-grant in an emergency), list, look at, approve, reject,
revoke and review. Views validate, call one service or selector, serialize."""

import django_filters
from django.conf import settings
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from approvals import selectors, services
from approvals.models import (
    OverrideApproval,
    OverrideKind,
    OverrideRequest,
    OverrideState,
    ReviewState,
)
from budgets.principals import principal_from_request
from costswitch.api.filters import CamelCaseFilterSet, StrictBooleanFilter
from costswitch.api.routers import OptionalSlashRouter
from costswitch.api.serializers import MoneyField, StrictFieldsMixin, validated

# --- serializers ------------------------------------------------------------------------------------


class OverrideInputSerializer(StrictFieldsMixin, serializers.Serializer):
    budget_id = serializers.IntegerField(min_value=1)
    kind = serializers.ChoiceField(choices=OverrideKind.choices)
    models = serializers.ListField(
        child=serializers.CharField(max_length=100), required=False, default=list, max_length=50
    )
    cost_ceiling = MoneyField(required=False)
    extra_amount = MoneyField(required=False)
    reason = serializers.CharField(max_length=services.MAX_REASON_CHARS)
    duration_minutes = serializers.IntegerField(min_value=1)
    emergency = serializers.BooleanField(required=False, default=False)
    request_id = serializers.CharField(max_length=200, required=False, default="")


class ApproveInputSerializer(StrictFieldsMixin, serializers.Serializer):
    comment = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)


class RejectInputSerializer(StrictFieldsMixin, serializers.Serializer):
    comment = serializers.CharField(max_length=2000)


class RevokeInputSerializer(StrictFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class ReviewInputSerializer(StrictFieldsMixin, serializers.Serializer):
    decision = serializers.ChoiceField(choices=list(services.REVIEWS))
    comment = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)


class OverrideApprovalSerializer(serializers.ModelSerializer):
    approver = serializers.CharField(source="approver.username")
    approver_id = serializers.IntegerField()

    class Meta:
        model = OverrideApproval
        fields = ["approver_id", "approver", "decision", "comment", "created_at"]


class RequesterSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=["user", "apiKey"])
    id = serializers.IntegerField()
    name = serializers.CharField()


class OverrideOutputSerializer(serializers.ModelSerializer):
    budget_id = serializers.IntegerField()
    budget_name = serializers.CharField(source="budget.name")
    models = serializers.ListField(source="approved_models", child=serializers.CharField())
    currency = serializers.SerializerMethodField()
    requested_by = serializers.SerializerMethodField()
    covers = serializers.SerializerMethodField()
    approvals = OverrideApprovalSerializer(many=True)
    approvals_required = serializers.SerializerMethodField()
    decided_by = serializers.CharField(source="decided_by.username", default=None)
    reviewed_by = serializers.CharField(source="reviewed_by.username", default=None)
    extended_period_id = serializers.IntegerField()
    estimated_cost = MoneyField(
        source="cost_estimate",
        read_only=True,
        allow_null=True,
        help_text="What the refused request would have cost; for an override asked by hand, the "
        "ceiling or amount it asks for (null for models asked by hand).",
    )
    estimated_cost_basis = serializers.ChoiceField(
        source="cost_estimate_basis",
        read_only=True,
        choices=["refused_request", "asked_ceiling", "asked_amount", ""],
        help_text="Where estimatedCost comes from (empty when it is null).",
    )

    class Meta:
        model = OverrideRequest
        fields = [
            "id",
            "budget_id",
            "budget_name",
            "kind",
            "models",
            "cost_ceiling",
            "extra_amount",
            "estimated_cost",
            "estimated_cost_basis",
            "currency",
            "reason",
            "duration_minutes",
            "state",
            "emergency",
            "review_state",
            "reviewed_by",
            "reviewed_at",
            "review_comment",
            "requested_by",
            "covers",
            "request_id",
            "approvals",
            "approvals_required",
            "decided_by",
            "decided_at",
            "created_at",
            "expires_at",
            "ended_at",
            "extended_period_id",
        ]

    def get_currency(self, obj) -> str:
        return settings.COSTSWITCH_CURRENCY

    @extend_schema_field(RequesterSerializer)
    def get_requested_by(self, obj: OverrideRequest) -> dict:
        if obj.requested_by_key_id:
            key = obj.requested_by_key
            return {"type": "apiKey", "id": key.pk, "name": key.name}
        return {"type": "user", "id": obj.requested_by_id, "name": obj.requested_by.username}

    @extend_schema_field(
        serializers.DictField(child=serializers.IntegerField(allow_null=True), help_text="teamId, userId")
    )
    def get_covers(self, obj: OverrideRequest) -> dict:
        return {"team_id": obj.team_id, "user_id": obj.user_id}

    def get_approvals_required(self, obj: OverrideRequest) -> int:
        return services.approvals_required(obj, policies=self.context.setdefault("policies", {}))


# --- filters ----------------------------------------------------------------------------------------


class OverrideFilterSet(CamelCaseFilterSet):
    state = django_filters.ChoiceFilter(choices=OverrideState.choices)
    kind = django_filters.ChoiceFilter(choices=OverrideKind.choices)
    budget = django_filters.NumberFilter(field_name="budget_id")
    emergency = StrictBooleanFilter()
    review_state = django_filters.ChoiceFilter(choices=[c for c in ReviewState.choices if c[0]])
    mine = StrictBooleanFilter(method="filter_mine", help_text="Only the caller's own requests.")
    request_id = django_filters.CharFilter()

    class Meta:
        model = OverrideRequest
        fields = ["state", "kind", "budget", "emergency", "review_state", "request_id"]

    def filter_mine(self, queryset, name: str, value: bool):
        principal = principal_from_request(self.request)
        if principal.api_key is not None:
            own = {"requested_by_key": principal.api_key}
        else:
            own = {"requested_by": principal.user, "requested_by_key__isnull": True}
        return queryset.filter(**own) if value else queryset.exclude(**own)


# --- views ------------------------------------------------------------------------------------------


class OverrideViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Overrides on the budgets the caller can see, and its own requests. Approvers (team leads,
    finance, admins) decide; critical systems may self-grant an emergency override."""

    queryset = OverrideRequest.objects.none()  # for the schema; requests use get_queryset
    lookup_value_regex = r"\d+"
    serializer_class = OverrideOutputSerializer
    filterset_class = OverrideFilterSet

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no caller
            return OverrideRequest.objects.none()
        return selectors.overrides_for_principal(principal_from_request(self.request))

    def get_object(self):
        return selectors.override_get(
            principal=principal_from_request(self.request), override_id=int(self.kwargs["pk"])
        )

    def _output(self, override: OverrideRequest, code: int = status.HTTP_200_OK) -> Response:
        fresh = selectors.override_get(
            principal=principal_from_request(self.request), override_id=override.pk
        )
        return Response(OverrideOutputSerializer(fresh).data, status=code)

    @extend_schema(request=OverrideInputSerializer, responses={201: OverrideOutputSerializer})
    def create(self, request):
        data = validated(OverrideInputSerializer, request.data)
        ask = services.OverrideAsk(
            kind=data["kind"],
            reason=data["reason"],
            duration_minutes=data["duration_minutes"],
            models=tuple(data["models"]),
            cost_ceiling=data.get("cost_ceiling"),
            extra_amount=data.get("extra_amount"),
        )
        grant = services.override_emergency_grant if data["emergency"] else services.override_request
        override = grant(
            principal=principal_from_request(request),
            budget_id=data["budget_id"],
            ask=ask,
            request_id=data["request_id"],
        )
        return self._output(override, status.HTTP_201_CREATED)

    @extend_schema(request=ApproveInputSerializer, responses=OverrideOutputSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        data = validated(ApproveInputSerializer, request.data)
        override = services.override_approve(
            principal=principal_from_request(request), override_id=int(pk), comment=data["comment"]
        )
        return self._output(override)

    @extend_schema(request=RejectInputSerializer, responses=OverrideOutputSerializer)
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        data = validated(RejectInputSerializer, request.data)
        override = services.override_reject(
            principal=principal_from_request(request), override_id=int(pk), comment=data["comment"]
        )
        return self._output(override)

    @extend_schema(request=RevokeInputSerializer, responses=OverrideOutputSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request, pk=None):
        data = validated(RevokeInputSerializer, request.data)
        override = services.override_revoke(
            principal=principal_from_request(request), override_id=int(pk), reason=data["reason"]
        )
        return self._output(override)

    @extend_schema(request=ReviewInputSerializer, responses=OverrideOutputSerializer)
    @action(detail=True, methods=["post"])
    def review(self, request, pk=None):
        data = validated(ReviewInputSerializer, request.data)
        override = services.override_review(
            principal=principal_from_request(request),
            override_id=int(pk),
            decision=data["decision"],
            comment=data["comment"],
        )
        return self._output(override)


router = OptionalSlashRouter()
router.register("overrides", OverrideViewSet, basename="override")

urlpatterns = router.urls
