"""Reconciliation API shapes."""

from rest_framework import serializers

from analytics.models import Discrepancy, ExportProvider, ReconciliationRun, SyncBatch
from costswitch.api.serializers import StrictFieldsMixin


class SyncBatchSerializer(serializers.ModelSerializer):
    run_id = serializers.IntegerField()
    inbound_webhook_id = serializers.IntegerField(allow_null=True)

    class Meta:
        model = SyncBatch
        fields = [
            "id",
            "provider",
            "source",
            "format",
            "filename",
            "status",
            "rows_seen",
            "rows_matched",
            "rows_imported",
            "errors",
            "run_id",
            "inbound_webhook_id",
            "created_at",
            "processed_at",
        ]


class RunBatchSerializer(serializers.ModelSerializer):
    class Meta:
        model = SyncBatch
        fields = ["id", "provider", "source", "format", "filename", "status", "rows_seen", "rows_imported"]


class RunSerializer(serializers.ModelSerializer):
    batch = RunBatchSerializer(
        read_only=True, allow_null=True, help_text="The export behind an external run."
    )

    class Meta:
        model = ReconciliationRun
        fields = [
            "id",
            "kind",
            "source",
            "status",
            "created_at",
            "started_at",
            "finished_at",
            "lines_seen",
            "lines_matched",
            "discrepancy_count",
            "adjusted_count",
            "ours_total",
            "theirs_total",
            "adjusted_total",
            "error",
            "batch",
        ]


class DiscrepancySerializer(serializers.ModelSerializer):
    run_id = serializers.IntegerField()
    usage_id = serializers.IntegerField(allow_null=True)
    usage_request_id = serializers.CharField(source="usage.request_id", allow_null=True, default=None)
    period_id = serializers.IntegerField(allow_null=True)
    adjustment_id = serializers.IntegerField(allow_null=True)
    adjustment_request_id = serializers.CharField(
        source="adjustment.request_id", allow_null=True, default=None
    )

    class Meta:
        model = Discrepancy
        fields = [
            "id",
            "run_id",
            "kind",
            "status",
            "external_key",
            "request_id",
            "model",
            "window_start",
            "window_end",
            "usage_id",
            "usage_request_id",
            "period_id",
            "ours",
            "theirs",
            "difference",
            "adjustment_id",
            "adjustment_request_id",
            "details",
            "created_at",
            "resolved_at",
            "resolution",
        ]


class ImportInputSerializer(StrictFieldsMixin, serializers.Serializer):
    """An export to reconcile: a file (multipart), or in a JSON body one of `report` (a provider's
    JSON report), `items` (costswitch lines) or `csv` (CSV text)."""

    provider = serializers.ChoiceField(choices=ExportProvider.choices)
    format = serializers.ChoiceField(choices=[("csv", "CSV"), ("json", "JSON")], required=False, default="")
    file = serializers.FileField(required=False)
    report = serializers.JSONField(required=False)
    items = serializers.ListField(child=serializers.DictField(), required=False)
    csv = serializers.CharField(required=False, trim_whitespace=False)

    def validate(self, data: dict) -> dict:
        given = [name for name in ("file", "report", "items", "csv") if data.get(name) is not None]
        if len(given) != 1:
            raise serializers.ValidationError("Send exactly one of file, report, items or csv.")
        return data


class ImportOutputSerializer(serializers.Serializer):
    batch = SyncBatchSerializer()
    run_id = serializers.IntegerField()
