"""Test settings: the real settings, with Celery eager and a fast password hasher."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-not-secret")

from costswitch.settings import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Pages render without a `collectstatic` run (the manifest storage needs its manifest).
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
