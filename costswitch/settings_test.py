"""Test settings: the real settings, with Celery eager and a fast password hasher."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-not-secret")

from costswitch.settings import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Webhook receivers in the tests are small servers on 127.0.0.1 (tests/approvals checks the refusal).
COSTSWITCH_NOTIFY_ALLOW_PRIVATE_HOSTS = True
# Pages render without a `collectstatic` run (the manifest storage needs its manifest).
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
