import django_filters

from analytics.models import (
    Discrepancy,
    DiscrepancyKind,
    DiscrepancyStatus,
    ReconciliationRun,
    RunKind,
    RunStatus,
    SyncBatch,
    SyncSource,
    SyncStatus,
)
from costswitch.api.filters import CamelCaseFilterSet


class ReconciliationRunFilterSet(CamelCaseFilterSet):
    kind = django_filters.ChoiceFilter(choices=RunKind.choices)
    status = django_filters.ChoiceFilter(choices=RunStatus.choices)
    source = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = ReconciliationRun
        fields = ["kind", "status", "source"]


class DiscrepancyFilterSet(CamelCaseFilterSet):
    status = django_filters.ChoiceFilter(choices=DiscrepancyStatus.choices)
    kind = django_filters.ChoiceFilter(choices=DiscrepancyKind.choices)
    run = django_filters.NumberFilter(field_name="run_id")
    model = django_filters.CharFilter()
    request_id = django_filters.CharFilter()

    class Meta:
        model = Discrepancy
        fields = ["status", "kind", "run", "model", "request_id"]


class SyncBatchFilterSet(CamelCaseFilterSet):
    provider = django_filters.CharFilter()
    source = django_filters.ChoiceFilter(choices=SyncSource.choices)
    status = django_filters.ChoiceFilter(choices=SyncStatus.choices)

    class Meta:
        model = SyncBatch
        fields = ["provider", "source", "status"]
