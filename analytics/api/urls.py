"""Reconciliation and cost-data API."""

from django.urls import path

from analytics.api import cost_analysis, views
from costswitch.api.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("reconciliation/runs", views.ReconciliationRunViewSet, basename="reconciliation-run")
router.register("reconciliation/discrepancies", views.DiscrepancyViewSet, basename="discrepancy")
router.register("reconciliation/batches", views.SyncBatchViewSet, basename="sync-batch")

urlpatterns = [
    path("reconciliation/imports", views.ImportView.as_view(), name="reconciliation-import"),
    path("webhooks/cost-data", views.CostDataWebhook.as_view(), name="webhook-cost-data"),
    *cost_analysis.urlpatterns,
    *router.urls,
]
