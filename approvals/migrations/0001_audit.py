from django.conf import settings
from django.db import migrations


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("budgets", "0004_apikey_rate_limits"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = []
