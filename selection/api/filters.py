import django_filters

from costswitch.api.filters import CamelCaseFilterSet
from selection.choices import DecisionOutcome
from selection.models import Decision


class DecisionFilterSet(CamelCaseFilterSet):
    model = django_filters.CharFilter(field_name="selected_model")
    outcome = django_filters.ChoiceFilter(choices=DecisionOutcome.choices)
    task_type = django_filters.CharFilter()
    refusal_code = django_filters.CharFilter()
    rule = django_filters.CharFilter(field_name="rule_name")
    team_id = django_filters.NumberFilter()
    user_id = django_filters.NumberFilter()
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")

    class Meta:
        model = Decision
        fields = []
