"""The reconciliation report (runs, discrepancies, sync history), export uploads, and the signed
cost-data webhook. Views validate, call one service or selector, serialize."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics import selectors
from analytics.api import serializers as s
from analytics.api.filters import DiscrepancyFilterSet, ReconciliationRunFilterSet, SyncBatchFilterSet
from analytics.models import Discrepancy, ReconciliationRun, SyncBatch, SyncSource
from analytics.reconciliation.external import cost_data_check, sync_batch_create
from budgets.principals import principal_from_request
from costswitch.api.parsers import CamelCaseDecimalJSONParser
from costswitch.api.serializers import validated
from costswitch.webhooks import PayloadTooLarge, verify_delivery, webhook_store

# An uploaded export larger than this is refused (a month of hourly buckets is far smaller).
MAX_UPLOAD_BYTES = 10 * 1024 * 1024


class ReconciliationRunViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Reconciliation runs of the caller's organization (finance and admins)."""

    queryset = ReconciliationRun.objects.none()
    lookup_value_regex = r"\d+"
    serializer_class = s.RunSerializer
    filterset_class = ReconciliationRunFilterSet

    def get_queryset(self):
        return selectors.runs_for_principal(principal_from_request(self.request))


class DiscrepancyViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """What reconciliation found: open ones need a look, resolved ones were adjusted or fixed."""

    queryset = Discrepancy.objects.none()
    lookup_value_regex = r"\d+"
    serializer_class = s.DiscrepancySerializer
    filterset_class = DiscrepancyFilterSet

    def get_queryset(self):
        return selectors.discrepancies_for_principal(principal_from_request(self.request))


class SyncBatchViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Sync history: every imported export and cost-data delivery, and what became of it."""

    queryset = SyncBatch.objects.none()
    lookup_value_regex = r"\d+"
    serializer_class = s.SyncBatchSerializer
    filterset_class = SyncBatchFilterSet

    def get_queryset(self):
        return selectors.batches_for_principal(principal_from_request(self.request))


class ImportView(APIView):
    """`POST /api/v1/reconciliation/imports`: store an export and reconcile it in the worker (202)."""

    parser_classes = [CamelCaseDecimalJSONParser, MultiPartParser]

    @extend_schema(request=s.ImportInputSerializer, responses={202: s.ImportOutputSerializer})
    def post(self, request):
        principal = principal_from_request(request)
        selectors.reconciliation_access_check(principal)
        data = validated(s.ImportInputSerializer, request.data)
        filename = ""
        if data.get("file") is not None:
            upload = data["file"]
            if upload.size > MAX_UPLOAD_BYTES:
                raise PayloadTooLarge(f"Exports are limited to {MAX_UPLOAD_BYTES} bytes.")
            content, filename = upload.read(), upload.name or ""
        elif data.get("csv") is not None:
            content, data["format"] = data["csv"], "csv"
        else:
            content = data["report"] if data.get("report") is not None else data["items"]
        batch = sync_batch_create(
            organization=principal.organization,
            provider=data["provider"],
            source=SyncSource.UPLOAD,
            content=content,
            format=data["format"],
            filename=filename,
        )
        return Response(
            s.ImportOutputSerializer({"batch": batch, "run_id": batch.run_id}).data,
            status=status.HTTP_202_ACCEPTED,
        )


class CostDataWebhook(APIView):
    """`POST /api/v1/webhooks/cost-data`: a signed feed of provider usage (see costswitch.webhooks).
    A valid delivery is stored raw and acknowledged (202); the worker reconciles it."""

    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]

    @extend_schema(request=None, responses={202: dict})
    def post(self, request):
        delivery = verify_delivery(request)
        cost_data_check(delivery.payload)
        receipt = webhook_store(endpoint="cost-data", delivery=delivery)
        return Response(
            {
                "event_id": receipt.webhook.event_id,
                "status": "duplicate" if receipt.duplicate else receipt.webhook.status,
            },
            status=status.HTTP_202_ACCEPTED,
        )
