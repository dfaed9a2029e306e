"""The webhook inbox: every accepted inbound webhook, stored raw, so nothing is lost or applied twice."""

from django.db import models


class WebhookStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    FAILED = "failed", "Failed"


class InboundWebhook(models.Model):
    """One signed delivery. `signature` is unique (a replayed delivery is refused) and so is
    (`endpoint`, `event_id`) (a re-sent event is acknowledged but not applied again)."""

    endpoint = models.CharField(max_length=50)
    event_id = models.CharField(max_length=200)
    signature = models.CharField(max_length=64, unique=True)
    signed_at = models.DateTimeField()
    body = models.TextField()
    status = models.CharField(max_length=20, choices=WebhookStatus.choices, default=WebhookStatus.RECEIVED)
    result = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(
        default=0, help_text="Times a processor ran on it and failed (the async path retries up to a limit)."
    )
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "event_id"], name="webhook_event_once")]
        indexes = [models.Index(fields=["status", "received_at"], name="webhook_status_received")]

    def __str__(self) -> str:
        return f"{self.endpoint}:{self.event_id}"
