from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("budgets", "0004_apikey_rate_limits")]

    operations = [
        migrations.AddField(
            model_name="budget",
            name="carry_over",
            field=models.CharField(
                choices=[("none", "None"), ("unused", "Unused amount (up to the cap)")],
                default="none",
                help_text="What a new period inherits from the one before it: nothing, or what was left unused.",
                max_length=20,
            ),
        ),
        migrations.AddField(
            model_name="budget",
            name="carry_over_cap",
            field=models.DecimalField(
                blank=True,
                decimal_places=9,
                help_text="At most this much is carried into a period (empty: no cap).",
                max_digits=20,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="budgetperiod",
            name="carried_over",
            field=models.DecimalField(
                decimal_places=9,
                default=0,
                help_text="Unused amount inherited from the period before; fixed when the period opens.",
                max_digits=20,
            ),
        ),
        migrations.AlterField(
            model_name="budgetperiod",
            name="limit",
            field=models.DecimalField(
                decimal_places=9, help_text="The budget's limit plus `carried_over`.", max_digits=20
            ),
        ),
        migrations.AddConstraint(
            model_name="budget",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("carry_over_cap__isnull", True),
                    models.Q(("carry_over", "unused"), ("carry_over_cap__gte", 0)),
                    _connector="OR",
                ),
                name="budget_carry_over_cap_valid",
            ),
        ),
        migrations.AddConstraint(
            model_name="budgetperiod",
            constraint=models.CheckConstraint(
                condition=models.Q(("carried_over__gte", 0)), name="period_carried_over_not_negative"
            ),
        ),
    ]
