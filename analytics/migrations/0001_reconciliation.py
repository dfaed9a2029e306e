from django.db import migrations


class Migration(migrations.Migration):
    initial = True

    dependencies = [("budgets", "0006_alerts")]

    operations = []
