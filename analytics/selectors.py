"""Reads for the reconciliation report. Only finance and admin members see it, and only their own
organization's runs, discrepancies and sync batches (another organization's are 404)."""

from django.db.models import QuerySet

from analytics.models import Discrepancy, ReconciliationRun, SyncBatch
from budgets.principals import Principal
from costswitch.errors import NotFound, PermissionDenied


def reconciliation_access_check(principal: Principal) -> None:
    """Money of the whole organization: finance and admins only, never an API key."""
    if principal.api_key is not None or not principal.org_wide:
        raise PermissionDenied("Only finance and admin members of the organization can see reconciliation.")


def runs_for_principal(principal: Principal) -> QuerySet[ReconciliationRun]:
    reconciliation_access_check(principal)
    return ReconciliationRun.objects.filter(organization=principal.organization).select_related("batch")


def run_get(*, principal: Principal, run_id: int) -> ReconciliationRun:
    run = runs_for_principal(principal).filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"Reconciliation run {run_id} not found.")
    return run


def discrepancies_for_principal(principal: Principal) -> QuerySet[Discrepancy]:
    reconciliation_access_check(principal)
    return Discrepancy.objects.filter(organization=principal.organization).select_related(
        "adjustment", "usage", "run"
    )


def batches_for_principal(principal: Principal) -> QuerySet[SyncBatch]:
    reconciliation_access_check(principal)
    return SyncBatch.objects.filter(organization=principal.organization).select_related("run")
