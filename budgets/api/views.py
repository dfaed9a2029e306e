"""Budgets, status, usage and reservations over HTTP. Views validate, call one service, serialize."""

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from budgets import selectors
from budgets.api import serializers as s
from budgets.api.filters import AlertFilterSet, BudgetFilterSet, ReservationFilterSet, UsageRecordFilterSet
from budgets.choices import UsageSource
from budgets.models import Alert, Budget, Reservation, ReservationHold, UsageRecord
from budgets.principals import principal_from_request
from budgets.services import alerts as alert_services
from budgets.services import budgets as budget_services
from budgets.services import ledger
from costswitch.api.serializers import validated
from costswitch.errors import ValidationFailed


class BudgetViewSet(viewsets.ModelViewSet):
    """Budgets on organization, team and user scopes. DELETE archives: the ledger keeps pointing at it."""

    queryset = Budget.objects.none()  # for the schema; requests use get_queryset
    lookup_value_regex = r"\d+"
    serializer_class = s.BudgetOutputSerializer
    filterset_class = BudgetFilterSet
    http_method_names = ["get", "post", "put", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return selectors.budgets_for_principal(principal_from_request(self.request)).prefetch_related(
            "thresholds"
        )

    def get_object(self):
        return selectors.budget_get(
            principal=principal_from_request(self.request), budget_id=self.kwargs["pk"]
        )

    @extend_schema(request=s.BudgetInputSerializer, responses={201: s.BudgetOutputSerializer})
    def create(self, request):
        data = validated(s.BudgetInputSerializer, request.data)
        budget = budget_services.budget_create(
            principal=principal_from_request(request),
            name=data["name"],
            scope_type=data["scope_type"],
            scope_id=data["scope_id"],
            limit=data["limit"],
            period=data["period"],
            currency=data.get("currency"),
            starts_at=data.get("start_date"),
            ends_at=data.get("end_date"),
            thresholds=data["thresholds"],
            restricted_models=data.get("restricted_models"),
            max_cost_per_request=data.get("max_cost_per_request"),
            carry_over=data["carry_over"],
            carry_over_cap=data.get("carry_over_cap"),
        )
        return Response(s.BudgetOutputSerializer(budget).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=s.BudgetUpdateSerializer, responses=s.BudgetOutputSerializer)
    def update(self, request, pk=None, partial=False):
        budget = self.get_object()
        data = dict(validated(s.BudgetUpdateSerializer, request.data))
        budget = budget_services.budget_update(
            principal=principal_from_request(request), budget=budget, **data
        )
        return Response(
            s.BudgetOutputSerializer(
                selectors.budget_get(principal=principal_from_request(request), budget_id=budget.pk)
            ).data
        )

    def partial_update(self, request, pk=None):
        return self.update(request, pk=pk, partial=True)

    def destroy(self, request, pk=None):
        budget_services.budget_archive(principal=principal_from_request(request), budget=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(responses=s.BudgetStatusSerializer)
    @action(detail=True, methods=["get"])
    def status(self, request, pk=None):
        return Response(s.BudgetStatusSerializer(selectors.budget_status(budget=self.get_object())).data)


class ScopeStatusView(APIView):
    """Seed 001: a scope's budgets, the aggregate status and the restrictions in force for it."""

    @extend_schema(responses=s.ScopeStatusSerializer, operation_id="budgets_scope_status")
    def get(self, request, scope_type: str, scope_id: int):
        report = selectors.scope_status(
            principal=principal_from_request(request), scope_type=scope_type, scope_id=scope_id
        )
        return Response(s.ScopeStatusSerializer(report).data)


class UsageViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The ledger, read-only, plus reporting: one record, `{"items": [...]}` or a list (up to 1,000)."""

    queryset = UsageRecord.objects.none()
    lookup_value_regex = r"\d+"
    serializer_class = s.UsageOutputSerializer
    filterset_class = UsageRecordFilterSet

    def get_queryset(self):
        return selectors.usage_for_principal(principal_from_request(self.request))

    @extend_schema(request=s.UsageInputSerializer, responses={201: s.UsageOutputSerializer})
    def create(self, request):
        body = request.data
        batch = isinstance(body, list) or (isinstance(body, dict) and "items" in body)
        if batch:
            items = validated(
                s.UsageBatchInputSerializer, {"items": body} if isinstance(body, list) else body
            )
            items = items["items"]
        else:
            if not isinstance(body, dict):
                raise ValidationFailed('Expected a usage object, a list, or {"items": [...]}.')
            body = dict(body)
            idempotency_key = request.headers.get("Idempotency-Key")
            if idempotency_key and "request_id" not in body:
                body["request_id"] = idempotency_key
            items = [validated(s.UsageInputSerializer, body)]
        reports = [ledger.UsageReport(**{k: v for k, v in item.items() if k != "currency"}) for item in items]
        result = ledger.usage_record_many(
            principal=principal_from_request(request),
            reports=reports,
            source=UsageSource.BATCH if batch else UsageSource.DIRECT,
        )
        code = status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        if not batch:
            data = s.UsageOutputSerializer(result.records[0]).data
            return Response({**data, "replayed": result.replayed > 0}, status=code)
        return Response(
            {
                "created": result.created,
                "replayed": result.replayed,
                "items": s.UsageOutputSerializer(result.records, many=True).data,
            },
            status=code,
        )


class ReservationViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Two-phase spend: authorize (POST) holds the maximum cost; settle or release finishes it."""

    queryset = Reservation.objects.none()
    lookup_value_regex = r"\d+"
    serializer_class = s.ReservationOutputSerializer
    filterset_class = ReservationFilterSet

    def get_queryset(self):
        holds = ReservationHold.objects.select_related("period")
        return selectors.reservations_for_principal(principal_from_request(self.request)).prefetch_related(
            Prefetch("holds", queryset=holds)
        )

    def _output(self, reservation, **extra) -> dict:
        reservation = self.get_queryset().get(pk=reservation.pk)
        return {**s.ReservationOutputSerializer(reservation).data, **extra}

    @extend_schema(request=s.AuthorizeInputSerializer, responses={201: s.ReservationOutputSerializer})
    def create(self, request):
        data = validated(s.AuthorizeInputSerializer, request.data)
        result = ledger.reservation_authorize(principal=principal_from_request(request), **data)
        code = status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED
        return Response(self._output(result.reservation, replayed=result.replayed), status=code)

    @extend_schema(request=s.SettleInputSerializer, responses={201: s.UsageOutputSerializer})
    @action(detail=True, methods=["post"])
    def settle(self, request, pk=None):
        data = validated(s.SettleInputSerializer, request.data)
        result = ledger.reservation_settle(
            principal=principal_from_request(request),
            reservation_id=_int_id(pk),
            report=ledger.UsageReport(request_id="", **data),
        )
        # A retried settle answers like a retried usage report: 200 and replayed, nothing charged.
        code = status.HTTP_200_OK if result.replayed else status.HTTP_201_CREATED
        return Response(
            {**s.UsageOutputSerializer(result.usage).data, "replayed": result.replayed}, status=code
        )

    @extend_schema(request=None, responses=s.ReservationOutputSerializer)
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        reservation = ledger.reservation_release(
            principal=principal_from_request(request), reservation_id=_int_id(pk)
        )
        return Response(self._output(reservation))


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Alerts raised on the budgets the caller can see; their owners acknowledge them."""

    queryset = Alert.objects.none()
    lookup_value_regex = r"\d+"
    serializer_class = s.BudgetAlertOutputSerializer
    filterset_class = AlertFilterSet

    def get_queryset(self):
        return alert_services.alerts_for_principal(principal_from_request(self.request))

    @extend_schema(request=None, responses=s.BudgetAlertOutputSerializer)
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        alert = alert_services.alert_acknowledge(
            principal=principal_from_request(request), alert_id=_int_id(pk)
        )
        return Response(s.BudgetAlertOutputSerializer(alert).data)


def _int_id(pk) -> int:
    try:
        return int(pk)
    except (TypeError, ValueError):
        raise ValidationError({"id": ["Must be an integer."]}) from None
