from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("budgets", "0004_apikey_rate_limits"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("sequence", models.PositiveBigIntegerField(editable=False, unique=True)),
                ("occurred_at", models.DateTimeField(editable=False)),
                (
                    "actor_type",
                    models.CharField(
                        choices=[("user", "User"), ("api_key", "API key"), ("system", "System")],
                        editable=False,
                        max_length=20,
                    ),
                ),
                ("actor_id", models.CharField(blank=True, editable=False, max_length=64)),
                ("actor_label", models.CharField(blank=True, editable=False, max_length=200)),
                ("action", models.CharField(editable=False, max_length=100)),
                (
                    "object_type",
                    models.CharField(editable=False, help_text="app_label.model", max_length=100),
                ),
                ("object_id", models.CharField(blank=True, editable=False, max_length=100)),
                ("object_repr", models.CharField(blank=True, editable=False, max_length=200)),
                ("organization_id", models.BigIntegerField(blank=True, editable=False, null=True)),
                ("team_id", models.BigIntegerField(blank=True, editable=False, null=True)),
                (
                    "subject_user_id",
                    models.BigIntegerField(
                        blank=True,
                        editable=False,
                        help_text="The user the object belongs to, if any.",
                        null=True,
                    ),
                ),
                ("before", models.JSONField(blank=True, editable=False, null=True)),
                ("after", models.JSONField(blank=True, editable=False, null=True)),
                ("reason", models.TextField(blank=True, editable=False)),
                ("request_id", models.CharField(blank=True, editable=False, max_length=200)),
                ("prev_hash", models.CharField(editable=False, max_length=64)),
                ("hash", models.CharField(editable=False, max_length=64, unique=True)),
            ],
            options={
                "verbose_name_plural": "audit entries",
                "ordering": ["-sequence"],
                "indexes": [
                    models.Index(fields=["organization_id", "-sequence"], name="audit_org_seq"),
                    models.Index(fields=["object_type", "object_id"], name="audit_object"),
                    models.Index(fields=["request_id"], name="audit_request"),
                    models.Index(fields=["actor_type", "actor_id"], name="audit_actor"),
                ],
            },
        ),
    ]
