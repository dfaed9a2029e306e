from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("budgets", "0004_apikey_rate_limits")]

    operations = []
