from django.contrib import admin

from costswitch.models import InboundWebhook


@admin.register(InboundWebhook)
class InboundWebhookAdmin(admin.ModelAdmin):
    """The webhook inbox, read-only: deliveries are evidence of what was received and applied."""

    list_display = ["endpoint", "event_id", "status", "signed_at", "received_at", "processed_at"]
    list_filter = ["endpoint", "status"]
    search_fields = ["event_id"]
    readonly_fields = [field.name for field in InboundWebhook._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
