import django_filters

from budgets.choices import PeriodKind, ReservationState, ScopeType, UsageSource
from budgets.models import Alert, AlertKind, Budget, Reservation, UsageRecord
from costswitch.api.filters import CamelCaseFilterSet, StrictBooleanFilter


class BudgetFilterSet(CamelCaseFilterSet):
    scope_type = django_filters.ChoiceFilter(choices=ScopeType.choices)
    period = django_filters.ChoiceFilter(choices=PeriodKind.choices)
    team = django_filters.NumberFilter(field_name="team_id")
    user = django_filters.NumberFilter(field_name="user_id")
    is_active = StrictBooleanFilter()
    name = django_filters.CharFilter(lookup_expr="icontains")

    class Meta:
        model = Budget
        fields = ["scope_type", "period", "team", "user", "is_active", "name"]


class UsageRecordFilterSet(CamelCaseFilterSet):
    model = django_filters.CharFilter()
    provider = django_filters.CharFilter()
    source = django_filters.ChoiceFilter(choices=UsageSource.choices)
    team = django_filters.NumberFilter(field_name="team_id")
    user = django_filters.NumberFilter(field_name="user_id")
    task_type = django_filters.CharFilter()
    project = django_filters.CharFilter()
    conversation_id = django_filters.CharFilter()
    request_id = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = UsageRecord
        fields = ["model", "provider", "source", "team", "user", "task_type", "project", "conversation_id"]


class ReservationFilterSet(CamelCaseFilterSet):
    state = django_filters.ChoiceFilter(choices=ReservationState.choices)
    request_id = django_filters.CharFilter()
    team = django_filters.NumberFilter(field_name="team_id")
    user = django_filters.NumberFilter(field_name="user_id")

    class Meta:
        model = Reservation
        fields = ["state", "request_id", "team", "user"]


class AlertFilterSet(CamelCaseFilterSet):
    budget = django_filters.NumberFilter(field_name="budget_id")
    kind = django_filters.ChoiceFilter(choices=AlertKind.choices)
    scope_type = django_filters.ChoiceFilter(field_name="budget__scope_type", choices=ScopeType.choices)
    # ?acknowledged=true: excludes the alerts with no acknowledgement time.
    acknowledged = StrictBooleanFilter(field_name="acknowledged_at", lookup_expr="isnull", exclude=True)
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Alert
        fields = ["budget", "kind", "scope_type", "acknowledged"]
