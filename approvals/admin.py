"""Django admin for the approvals app. The audit log is read-only here: it can be searched and
looked at, never added to, edited or deleted (`manage.py verify_audit` checks it was not)."""

from django.contrib import admin, messages

from approvals.models import (
    ApprovalPolicy,
    AuditEntry,
    InboxEntry,
    Notification,
    NotificationDelivery,
    NotificationSubscription,
    OverrideApproval,
    OverrideRequest,
)
from approvals.services import (
    override_approve,
    override_reject,
    override_review,
    override_revoke,
)
from budgets.principals import principal_for_user
from costswitch.admin import ReadOnlyAdminMixin
from costswitch.errors import DomainError


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "sequence",
        "occurred_at",
        "actor_type",
        "actor_label",
        "action",
        "object_type",
        "object_repr",
        "organization_id",
        "request_id",
    ]
    list_display_links = ["sequence", "action"]
    list_filter = ["actor_type", "object_type"]
    search_fields = ["=object_id", "object_repr", "actor_label", "=request_id", "reason", "action"]
    date_hierarchy = "occurred_at"
    # The log grows without bound: skip the second COUNT(*) over the whole table.
    show_full_result_count = False
    fields = [
        "sequence",
        "occurred_at",
        "actor_type",
        "actor_id",
        "actor_label",
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
    readonly_fields = fields


# --- Overrides ----------------------------------------------------------------------------------------


class OverrideApprovalInline(admin.TabularInline):
    model = OverrideApproval
    extra = 0
    can_delete = False
    fields = ["approver", "decision", "comment", "created_at"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _override_action(verb: str, call, description: str):
    """An admin action deciding each selected override through the service, as the admin user (a
    principal of her organization: the same rules as the API, self-approval refused included)."""

    def run(modeladmin, request, queryset):
        done = 0
        for override in queryset:
            try:
                call(principal=principal_for_user(request.user), override_id=override.pk)
                done += 1
            except DomainError as error:
                modeladmin.message_user(request, f"Override {override.pk}: {error.message}", messages.ERROR)
        if done:
            modeladmin.message_user(request, f"{verb} {done} override(s).", messages.SUCCESS)

    run.__name__ = f"override_{verb.lower()}"
    run.short_description = description
    return run


@admin.register(OverrideRequest)
class OverrideRequestAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: decisions go through `approvals.services` (the actions below), never a field edit."""

    list_display = [
        "id",
        "organization",
        "budget",
        "kind",
        "state",
        "emergency",
        "review_state",
        "requested_by",
        "requested_by_key",
        "created_at",
        "expires_at",
    ]
    list_filter = ["state", "kind", "emergency", "review_state", "organization"]
    list_select_related = ["organization", "budget", "requested_by", "requested_by_key"]
    search_fields = ["=id", "reason", "request_id", "budget__name"]
    inlines = [OverrideApprovalInline]
    actions = [
        _override_action(
            "Approved", lambda **kw: override_approve(comment="Approved in the admin.", **kw), "Approve"
        ),
        _override_action(
            "Rejected", lambda **kw: override_reject(comment="Rejected in the admin.", **kw), "Reject"
        ),
        _override_action(
            "Revoked", lambda **kw: override_revoke(reason="Revoked in the admin.", **kw), "Revoke"
        ),
        _override_action(
            "Accepted", lambda **kw: override_review(decision="accept", **kw), "Review: accept emergency"
        ),
        _override_action(
            "Flagged", lambda **kw: override_review(decision="flag", **kw), "Review: flag emergency"
        ),
    ]


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(admin.ModelAdmin):
    list_display = ["organization", "two_approvers_above", "updated_at"]
    list_select_related = ["organization"]


# --- Notifications: subscriptions are edited here; what was sent is a read-only log ---------------


@admin.register(NotificationSubscription)
class NotificationSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["budget", "channel", "user", "url", "events", "created_at"]
    list_filter = ["channel"]
    search_fields = ["budget__name", "user__username", "url"]
    list_select_related = ["budget", "user"]
    raw_id_fields = ["budget", "user"]


class NotificationDeliveryInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = NotificationDelivery
    fields = ["channel", "target", "status", "attempts", "response_code", "last_error", "sent_at"]
    readonly_fields = fields
    extra = 0


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "event", "subject", "budget"]
    list_filter = ["event"]
    search_fields = ["subject", "budget__name", "=key"]
    date_hierarchy = "created_at"
    list_select_related = ["budget"]
    inlines = [NotificationDeliveryInline]


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "channel", "target", "status", "attempts", "response_code", "sent_at"]
    list_filter = ["status", "channel"]
    search_fields = ["target", "last_error"]
    date_hierarchy = "created_at"
    list_select_related = ["notification"]


@admin.register(InboxEntry)
class InboxEntryAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "user", "notification", "read_at"]
    search_fields = ["user__username", "notification__subject"]
    list_select_related = ["user", "notification"]
