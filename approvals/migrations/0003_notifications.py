import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0002_overrides"),
        ("budgets", "0006_alerts"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Notification",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "event",
                    models.CharField(
                        choices=[
                            ("threshold_crossed", "Threshold crossed"),
                            ("forecast_exceeds", "Projected to exceed the limit"),
                            ("budget_exhausted", "Budget exhausted"),
                            ("external_alert", "Alert from an external system"),
                            ("override_requested", "Override requested"),
                            ("override_decided", "Override approved or rejected"),
                            ("emergency_override_used", "Emergency override used"),
                        ],
                        max_length=40,
                    ),
                ),
                ("subject", models.CharField(max_length=300)),
                ("body", models.TextField()),
                ("data", models.JSONField(blank=True, default=dict)),
                ("key", models.CharField(blank=True, max_length=200)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "budget",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="notifications",
                        to="budgets.budget",
                    ),
                ),
                (
                    "organization",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="budgets.organization",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-pk"],
            },
        ),
        migrations.CreateModel(
            name="InboxEntry",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("read_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="inbox",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "notification",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="inbox",
                        to="approvals.notification",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "inbox entries",
                "ordering": ["-created_at", "-pk"],
            },
        ),
        migrations.CreateModel(
            name="NotificationSubscription",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "channel",
                    models.CharField(
                        choices=[("in_app", "In-app"), ("email", "Email"), ("webhook", "Webhook")],
                        max_length=20,
                    ),
                ),
                ("url", models.URLField(blank=True, max_length=2000)),
                (
                    "secret",
                    models.CharField(
                        blank=True, help_text="Signs webhook deliveries (HMAC-SHA256).", max_length=200
                    ),
                ),
                (
                    "events",
                    models.JSONField(
                        blank=True, default=list, help_text="Events to send; empty means every event."
                    ),
                ),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "budget",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="notification_subscriptions",
                        to="budgets.budget",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="notification_subscriptions",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["budget_id", "channel", "pk"],
            },
        ),
        migrations.CreateModel(
            name="NotificationDelivery",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "channel",
                    models.CharField(
                        choices=[("in_app", "In-app"), ("email", "Email"), ("webhook", "Webhook")],
                        max_length=20,
                    ),
                ),
                ("target", models.CharField(max_length=2000)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("sent", "Sent"),
                            ("failed", "Failed (will retry)"),
                            ("gave_up", "Gave up"),
                        ],
                        default="pending",
                        max_length=20,
                    ),
                ),
                ("attempts", models.PositiveIntegerField(default=0)),
                ("last_error", models.TextField(blank=True)),
                ("response_code", models.PositiveSmallIntegerField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("next_attempt_at", models.DateTimeField(blank=True, null=True)),
                ("sent_at", models.DateTimeField(blank=True, null=True)),
                (
                    "notification",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="approvals.notification",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "subscription",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="approvals.notificationsubscription",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "notification deliveries",
                "ordering": ["-created_at", "-pk"],
            },
        ),
        migrations.AddConstraint(
            model_name="notification",
            constraint=models.UniqueConstraint(
                condition=models.Q(("key", ""), _negated=True),
                fields=("key",),
                name="notification_unique_key",
            ),
        ),
        migrations.AddIndex(
            model_name="inboxentry",
            index=models.Index(fields=["user", "created_at"], name="approvals_i_user_id_a92302_idx"),
        ),
        migrations.AddConstraint(
            model_name="inboxentry",
            constraint=models.UniqueConstraint(
                fields=("notification", "user"), name="inbox_unique_notification_user"
            ),
        ),
        migrations.AddConstraint(
            model_name="notificationsubscription",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("channel__in", ["in_app", "email"]), ("url", ""), ("user__isnull", False)),
                    models.Q(
                        ("channel", "webhook"), ("user__isnull", True), models.Q(("url", ""), _negated=True)
                    ),
                    _connector="OR",
                ),
                name="subscription_target_matches_channel",
            ),
        ),
        migrations.AddConstraint(
            model_name="notificationsubscription",
            constraint=models.UniqueConstraint(
                condition=models.Q(("user__isnull", False)),
                fields=("budget", "channel", "user"),
                name="subscription_unique_user_channel",
            ),
        ),
        migrations.AddConstraint(
            model_name="notificationsubscription",
            constraint=models.UniqueConstraint(
                condition=models.Q(("channel", "webhook")),
                fields=("budget", "url"),
                name="subscription_unique_webhook",
            ),
        ),
        migrations.AddIndex(
            model_name="notificationdelivery",
            index=models.Index(fields=["status", "next_attempt_at"], name="approvals_n_status_7ff6b8_idx"),
        ),
        migrations.AddConstraint(
            model_name="notificationdelivery",
            constraint=models.UniqueConstraint(
                fields=("notification", "channel", "target"), name="delivery_unique_channel_target"
            ),
        ),
    ]
