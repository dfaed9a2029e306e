"""Notifications to budget owners: who hears about what (subscriptions), what was said
(notifications and the in-app inbox) and how each channel delivered it (the delivery log)."""

from django.db import models
from django.db.models import Q

__all__ = [
    "DeliveryStatus",
    "InboxEntry",
    "Notification",
    "NotificationChannel",
    "NotificationDelivery",
    "NotificationEvent",
    "NotificationSubscription",
]


class NotificationEvent(models.TextChoices):
    THRESHOLD_CROSSED = "threshold_crossed", "Threshold crossed"
    FORECAST_EXCEEDS = "forecast_exceeds", "Projected to exceed the limit"
    BUDGET_EXHAUSTED = "budget_exhausted", "Budget exhausted"
    EXTERNAL_ALERT = "external_alert", "Alert from an external system"
    OVERRIDE_REQUESTED = "override_requested", "Override requested"
    OVERRIDE_DECIDED = "override_decided", "Override approved or rejected"
    EMERGENCY_OVERRIDE_USED = "emergency_override_used", "Emergency override used"


class NotificationChannel(models.TextChoices):
    IN_APP = "in_app", "In-app"
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed (will retry)"
    GAVE_UP = "gave_up", "Gave up"


class NotificationSubscription(models.Model):
    """One recipient of a budget's notifications on one channel: a user (in-app or email) or a
    webhook URL with the secret its deliveries are signed with. `events` empty means all events.
    A budget without subscriptions notifies its default owners (see approvals.notifications)."""

    budget = models.ForeignKey(
        "budgets.Budget", on_delete=models.CASCADE, related_name="notification_subscriptions"
    )
    channel = models.CharField(max_length=20, choices=NotificationChannel.choices)
    user = models.ForeignKey(
        "budgets.User",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="notification_subscriptions",
    )
    url = models.URLField(max_length=2000, blank=True)
    secret = models.CharField(max_length=200, blank=True, help_text="Signs webhook deliveries (HMAC-SHA256).")
    events = models.JSONField(default=list, blank=True, help_text="Events to send; empty means every event.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["budget_id", "channel", "pk"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(channel__in=["in_app", "email"], user__isnull=False, url="")
                    | Q(channel="webhook", user__isnull=True) & ~Q(url="")
                ),
                name="subscription_target_matches_channel",
            ),
            models.UniqueConstraint(
                fields=["budget", "channel", "user"],
                condition=Q(user__isnull=False),
                name="subscription_unique_user_channel",
            ),
            models.UniqueConstraint(
                fields=["budget", "url"], condition=Q(channel="webhook"), name="subscription_unique_webhook"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.user or self.url}"

    def wants(self, event: str) -> bool:
        return not self.events or event in self.events


class Notification(models.Model):
    """One event on one budget, told to its recipients. `key` makes telling it idempotent: a second
    notify with the same key (an alert announced twice) returns the first notification."""

    organization = models.ForeignKey("budgets.Organization", on_delete=models.CASCADE, related_name="+")
    budget = models.ForeignKey("budgets.Budget", on_delete=models.CASCADE, related_name="notifications")
    event = models.CharField(max_length=40, choices=NotificationEvent.choices)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    key = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["key"], condition=~Q(key=""), name="notification_unique_key")
        ]

    def __str__(self) -> str:
        return self.subject


class InboxEntry(models.Model):
    """A notification in one user's in-app inbox, with its read state."""

    notification = models.ForeignKey("approvals.Notification", on_delete=models.CASCADE, related_name="inbox")
    user = models.ForeignKey("budgets.User", on_delete=models.CASCADE, related_name="inbox")
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(fields=["notification", "user"], name="inbox_unique_notification_user")
        ]
        indexes = [models.Index(fields=["user", "created_at"])]
        verbose_name_plural = "inbox entries"

    def __str__(self) -> str:
        return f"{self.notification} for {self.user}"


class NotificationDelivery(models.Model):
    """The delivery log: one row per notification, channel and target (a user id for in-app, an
    address, a URL), with every attempt counted. A row that is `sent` is never sent again."""

    notification = models.ForeignKey(
        "approvals.Notification", on_delete=models.CASCADE, related_name="deliveries"
    )
    channel = models.CharField(max_length=20, choices=NotificationChannel.choices)
    target = models.CharField(max_length=2000)
    user = models.ForeignKey(
        "budgets.User", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    subscription = models.ForeignKey(
        "approvals.NotificationSubscription",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    status = models.CharField(max_length=20, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["notification", "channel", "target"], name="delivery_unique_channel_target"
            )
        ]
        indexes = [models.Index(fields=["status", "next_attempt_at"])]
        verbose_name_plural = "notification deliveries"

    def __str__(self) -> str:
        return f"{self.get_channel_display()} to {self.target}: {self.get_status_display()}"
