from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0002_overrides"),
        ("budgets", "0006_alerts"),
    ]

    operations = []
