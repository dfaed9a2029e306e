from django.contrib import admin

from costswitch.models import InboundWebhook


class ReadOnlyAdminMixin:
    """Records of what happened (ledger rows, price history, webhook deliveries) can be looked at,
    never added, edited or deleted here."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(InboundWebhook)
class InboundWebhookAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The webhook inbox: deliveries are evidence of what was received and applied."""

    list_display = ["endpoint", "event_id", "status", "signed_at", "received_at", "processed_at"]
    list_filter = ["endpoint", "status"]
    search_fields = ["event_id"]
