from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("approvals", "0001_audit"),
        ("budgets", "0006_alerts"),
    ]

    operations = []
