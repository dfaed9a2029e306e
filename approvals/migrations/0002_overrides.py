import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0001_audit"),
        ("budgets", "0006_alerts"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="OverrideRequest",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("models", "Premium or restricted models"),
                            ("cost_ceiling", "Higher per-request cost ceiling"),
                            ("unblock", "Pass a blocked budget (critical systems)"),
                            ("extension", "Budget extension (extra money)"),
                        ],
                        max_length=20,
                    ),
                ),
                (
                    "approved_models",
                    models.JSONField(
                        blank=True, default=list, help_text="Model ids approved by name (kind models)."
                    ),
                ),
                (
                    "cost_ceiling",
                    models.DecimalField(
                        blank=True,
                        decimal_places=9,
                        help_text="The per-request ceiling asked for.",
                        max_digits=20,
                        null=True,
                    ),
                ),
                (
                    "extra_amount",
                    models.DecimalField(
                        blank=True,
                        decimal_places=9,
                        help_text="Extra money for the budget's period.",
                        max_digits=20,
                        null=True,
                    ),
                ),
                ("reason", models.TextField()),
                (
                    "duration_minutes",
                    models.PositiveIntegerField(help_text="How long the override lasts once approved."),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("approved", "Approved"),
                            ("rejected", "Rejected"),
                            ("expired", "Expired"),
                            ("revoked", "Revoked"),
                        ],
                        default="pending",
                        max_length=20,
                    ),
                ),
                (
                    "emergency",
                    models.BooleanField(
                        default=False, help_text="Self-granted at once; reviewed afterwards."
                    ),
                ),
                (
                    "review_state",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("", "Not reviewed (not an emergency)"),
                            ("pending_review", "Pending review"),
                            ("accepted", "Accepted"),
                            ("flagged", "Flagged"),
                        ],
                        default="",
                        max_length=20,
                    ),
                ),
                ("reviewed_at", models.DateTimeField(blank=True, null=True)),
                ("review_comment", models.TextField(blank=True)),
                (
                    "request_id",
                    models.CharField(
                        blank=True,
                        help_text="The selection request whose refusal asked for this override.",
                        max_length=200,
                    ),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("decided_at", models.DateTimeField(blank=True, null=True)),
                (
                    "expires_at",
                    models.DateTimeField(
                        help_text="When a pending request lapses, or when an approved override ends."
                    ),
                ),
                ("ended_at", models.DateTimeField(blank=True, help_text="Expired or revoked at.", null=True)),
                (
                    "budget",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="override_requests",
                        to="budgets.budget",
                    ),
                ),
                (
                    "decided_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "extended_period",
                    models.ForeignKey(
                        blank=True,
                        help_text="The period whose limit an approved extension raised.",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="budgets.budgetperiod",
                    ),
                ),
                (
                    "organization",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="override_requests",
                        to="budgets.organization",
                    ),
                ),
                (
                    "requested_by",
                    models.ForeignKey(
                        blank=True,
                        help_text="The person who asked (empty when an API key asked).",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="override_requests",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "requested_by_key",
                    models.ForeignKey(
                        blank=True,
                        help_text="The API key that asked (empty when a person asked in the web UI).",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="override_requests",
                        to="budgets.apikey",
                    ),
                ),
                (
                    "reviewed_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "team",
                    models.ForeignKey(
                        blank=True,
                        help_text="Covers every caller charging this team (a team service key asked).",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="budgets.team",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        help_text="Covers this person's calls, with a session or her own keys (a person asked).",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-pk"],
                "permissions": [("grant_emergency_override", "Can self-grant an emergency override")],
            },
        ),
        migrations.CreateModel(
            name="OverrideApproval",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "decision",
                    models.CharField(choices=[("approve", "Approve"), ("reject", "Reject")], max_length=10),
                ),
                ("comment", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "approver",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="override_approvals",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "override",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="approvals",
                        to="approvals.overriderequest",
                    ),
                ),
            ],
            options={
                "ordering": ["override_id", "created_at", "pk"],
            },
        ),
        migrations.CreateModel(
            name="ApprovalPolicy",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "two_approvers_above",
                    models.DecimalField(
                        blank=True,
                        decimal_places=9,
                        help_text="Budget extensions of more than this amount need two different approvers (empty: one approver is always enough).",
                        max_digits=20,
                        null=True,
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "organization",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="approval_policy",
                        to="budgets.organization",
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "approval policies",
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            ("two_approvers_above__isnull", True),
                            ("two_approvers_above__gte", 0),
                            _connector="OR",
                        ),
                        name="policy_amount_not_negative",
                    )
                ],
            },
        ),
        migrations.AddIndex(
            model_name="overriderequest",
            index=models.Index(
                condition=models.Q(("state", "approved")),
                fields=["budget", "expires_at"],
                name="override_in_force",
            ),
        ),
        migrations.AddIndex(
            model_name="overriderequest",
            index=models.Index(
                condition=models.Q(("state__in", ["pending", "approved"])),
                fields=["expires_at"],
                name="override_due",
            ),
        ),
        migrations.AddIndex(
            model_name="overriderequest",
            index=models.Index(fields=["organization", "state", "created_at"], name="override_org_state"),
        ),
        migrations.AddConstraint(
            model_name="overriderequest",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("requested_by__isnull", False), ("requested_by_key__isnull", False), _connector="OR"
                ),
                name="override_has_requester",
            ),
        ),
        migrations.AddConstraint(
            model_name="overriderequest",
            constraint=models.CheckConstraint(
                condition=models.Q(("team__isnull", False), ("user__isnull", False), _connector="OR"),
                name="override_covers_someone",
            ),
        ),
        migrations.AddConstraint(
            model_name="overriderequest",
            constraint=models.CheckConstraint(
                condition=models.Q(("extra_amount__isnull", True), ("extra_amount__gt", 0), _connector="OR"),
                name="override_extra_amount_positive",
            ),
        ),
        migrations.AddConstraint(
            model_name="overriderequest",
            constraint=models.CheckConstraint(
                condition=models.Q(("cost_ceiling__isnull", True), ("cost_ceiling__gt", 0), _connector="OR"),
                name="override_cost_ceiling_positive",
            ),
        ),
        migrations.AddConstraint(
            model_name="overrideapproval",
            constraint=models.UniqueConstraint(
                fields=("override", "approver"), name="approval_unique_approver"
            ),
        ),
    ]
