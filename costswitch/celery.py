import os

from celery import Celery

from costswitch.logs import connect_celery_logging
from costswitch.metrics import connect_celery_signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "costswitch.settings")

app = Celery("costswitch")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# The worker logs through settings.LOGGING (JSON, request context, redaction), not Celery's handlers;
# task outcomes are counted for /metrics wherever tasks run.
connect_celery_logging()
connect_celery_signals()
