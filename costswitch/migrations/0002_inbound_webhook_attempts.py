from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("costswitch", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="inboundwebhook",
            name="attempts",
            field=models.PositiveIntegerField(
                default=0,
                help_text="Times a processor ran on it and failed (the async path retries up to a limit).",
            ),
        ),
        migrations.AddIndex(
            model_name="inboundwebhook",
            index=models.Index(fields=["status", "received_at"], name="webhook_status_received"),
        ),
    ]
