"""Reconciliation in Django admin: runs, discrepancies and sync batches are records of what was
found and done (read-only); provider account mappings are edited here."""

from django.contrib import admin

from analytics.models import DailySpendDay, Discrepancy, ExternalAccount, ReconciliationRun, SyncBatch
from costswitch.admin import ReadOnlyAdminMixin


@admin.register(ReconciliationRun)
class ReconciliationRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "organization",
        "kind",
        "source",
        "status",
        "lines_seen",
        "discrepancy_count",
        "adjusted_total",
        "created_at",
        "finished_at",
    ]
    list_filter = ["kind", "status", "source"]
    list_select_related = ["organization"]
    search_fields = ["task_key"]
    date_hierarchy = "created_at"


@admin.register(Discrepancy)
class DiscrepancyAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "organization",
        "kind",
        "status",
        "model",
        "request_id",
        "ours",
        "theirs",
        "difference",
        "adjustment",
        "created_at",
    ]
    list_filter = ["kind", "status"]
    list_select_related = ["organization", "adjustment"]
    search_fields = ["external_key", "request_id", "model"]
    raw_id_fields = ["run", "usage", "adjustment", "period"]


@admin.register(SyncBatch)
class SyncBatchAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "organization",
        "provider",
        "source",
        "format",
        "status",
        "rows_seen",
        "rows_matched",
        "rows_imported",
        "created_at",
    ]
    list_filter = ["provider", "source", "status"]
    list_select_related = ["organization"]
    search_fields = ["filename"]
    raw_id_fields = ["run", "inbound_webhook"]


@admin.register(ExternalAccount)
class ExternalAccountAdmin(admin.ModelAdmin):
    """Which team (and user) a provider project, API key or workspace is charged to when an export
    shows usage the ledger lacks."""

    list_display = ["external_id", "provider", "organization", "team", "user", "note"]
    list_filter = ["provider"]
    list_select_related = ["organization", "team", "user"]
    search_fields = ["external_id", "note"]
    autocomplete_fields = ["team", "user"]


@admin.register(DailySpendDay)
class DailySpendDayAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Which days the spend rollup holds, and when each was built (rebuilt by `rollup_spend`)."""

    list_display = ["organization", "day", "timezone", "built_at", "rows"]
    list_filter = ["organization"]
    date_hierarchy = "day"
