"""The audit log over HTTP, read-only: `/api/v1/audit` (filtered, paginated) and `/api/v1/audit/{id}`.

Who reads what is `approvals.audit.audit_entries_for_principal`: finance and admins their
organization's entries, team leads those about their teams; members and API keys are refused.
"""

import re

import django_filters
from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import mixins, serializers, viewsets

from approvals.audit import audit_entries_for_principal, audit_entry_get
from approvals.models import AuditActorType, AuditEntry
from budgets.principals import principal_from_request
from costswitch.api.filters import CamelCaseFilterSet
from costswitch.api.routers import OptionalSlashRouter

_ACTOR = re.compile(r"(?P<type>user|api_key):(?P<id>\d+)|system")


class AuditActorSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=AuditActorType.choices)
    id = serializers.CharField(help_text="The user's or API key's id; empty for the system.")
    label = serializers.CharField(help_text="Username, or the key's visible prefix and name.")


class AuditEntrySerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()
    before = serializers.JSONField(
        read_only=True, allow_null=True, help_text="The changed fields before (a delete: all of them)."
    )
    after = serializers.JSONField(
        read_only=True, allow_null=True, help_text="The changed fields after (a create: all of them)."
    )

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "sequence",
            "occurred_at",
            "actor",
            "action",
            "object_type",
            "object_id",
            "object_repr",
            "organization_id",
            "team_id",
            "subject_user_id",
            "before",
            "after",
            "reason",
            "request_id",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields

    @extend_schema_field(AuditActorSerializer)
    def get_actor(self, entry: AuditEntry) -> dict:
        return {"type": entry.actor_type, "id": entry.actor_id, "label": entry.actor_label}


def _validate_actor(value: str) -> None:
    if not _ACTOR.fullmatch(value):
        raise ValidationError("Expected user:<id>, api_key:<id> or system.")


class AuditEntryFilterSet(CamelCaseFilterSet):
    action = django_filters.CharFilter()
    object_type = django_filters.CharFilter(help_text="app_label.model, e.g. budgets.budget")
    object_id = django_filters.CharFilter()
    actor = django_filters.CharFilter(
        method="filter_actor", validators=[_validate_actor], help_text="user:<id>, api_key:<id> or system"
    )
    actor_type = django_filters.ChoiceFilter(choices=AuditActorType.choices)
    team = django_filters.NumberFilter(field_name="team_id")
    request_id = django_filters.CharFilter()
    since = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = AuditEntry
        fields = ["action", "object_type", "object_id", "actor_type", "request_id"]

    def filter_actor(self, queryset, name, value):
        match = _ACTOR.fullmatch(value)
        if match.group("type") is None:
            return queryset.filter(actor_type=AuditActorType.SYSTEM)
        return queryset.filter(actor_type=match.group("type"), actor_id=match.group("id"))


class AuditEntryViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The tamper-evident audit log: who changed what, when, why, in which request. Newest first."""

    queryset = AuditEntry.objects.none()  # for the schema; requests use get_queryset
    serializer_class = AuditEntrySerializer
    filterset_class = AuditEntryFilterSet
    lookup_value_regex = r"\d+"

    def get_queryset(self):
        return audit_entries_for_principal(principal_from_request(self.request))

    def get_object(self):
        return audit_entry_get(
            principal=principal_from_request(self.request), entry_id=int(self.kwargs["pk"])
        )


router = OptionalSlashRouter()
router.register("audit", AuditEntryViewSet, basename="audit")

urlpatterns = router.urls
