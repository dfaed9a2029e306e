import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("budgets", "0005_period_carry_over")]

    operations = [
        migrations.CreateModel(
            name="Alert",
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
                            ("threshold", "Threshold crossed"),
                            ("forecast", "Projected to exceed the limit"),
                            ("exhausted", "Budget exhausted"),
                            ("external", "Reported by an external system"),
                        ],
                        max_length=20,
                    ),
                ),
                (
                    "threshold",
                    models.DecimalField(
                        blank=True,
                        decimal_places=2,
                        help_text="Percent of the limit; empty when n/a.",
                        max_digits=6,
                        null=True,
                    ),
                ),
                (
                    "percent_used",
                    models.DecimalField(
                        decimal_places=2,
                        help_text="Spent + reserved, in percent of the limit, when raised.",
                        max_digits=12,
                    ),
                ),
                ("message", models.TextField()),
                ("data", models.JSONField(blank=True, default=dict)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("acknowledged_at", models.DateTimeField(blank=True, null=True)),
                (
                    "acknowledged_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "budget",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="alerts",
                        to="budgets.budget",
                    ),
                ),
                (
                    "organization",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="alerts",
                        to="budgets.organization",
                    ),
                ),
                (
                    "period",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="alerts",
                        to="budgets.budgetperiod",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-pk"],
                "indexes": [
                    models.Index(fields=["organization", "created_at"], name="budgets_ale_organiz_e4a696_idx")
                ],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("threshold__isnull", False)),
                        fields=("period", "kind", "threshold"),
                        name="alert_once_per_threshold",
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(
                            ("threshold__isnull", True), models.Q(("kind", "external"), _negated=True)
                        ),
                        fields=("period", "kind"),
                        name="alert_once_per_period",
                    ),
                ],
            },
        ),
    ]
