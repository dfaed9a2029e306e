"""Settings for every environment, read from environment variables (see README "Configuration").

The embedded default needs no servers: SQLite, local-memory cache and a filesystem Celery broker.
DATABASE_URL and REDIS_URL switch to PostgreSQL and Redis.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from costswitch.env import env_bool, env_float, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("COSTSWITCH_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY (or SECRET_KEY_FILE) must be set when DEBUG is off")
    SECRET_KEY = "dev-insecure-costswitch-key-do-not-use-in-production"  # DEBUG=1 only

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "costswitch",
    "models_registry",
    "budgets",
    "approvals",
    "selection",
    "analytics",
]

MIDDLEWARE = [
    # Probes first (costswitch/health.py): answered before host validation and SSL redirect, and kept
    # out of the access log and request metrics, which a probe every few seconds would only flood.
    "costswitch.health.HealthCheckMiddleware",
    # Outermost: the request id and latency cover every other middleware.
    "costswitch.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "costswitch.urls"
WSGI_APPLICATION = "costswitch.wsgi.application"
AUTH_USER_MODEL = "budgets.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'db.sqlite3'}"
# Health checks: a persistent connection is tested before a request reuses it, so after a PostgreSQL
# restart the next request reconnects instead of failing (README "Failure behaviour").
DATABASES = {
    "default": dj_database_url.parse(
        DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60), conn_health_checks=True
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # An unreachable server is a 503 within seconds, not a request hanging on the OS's TCP timeout.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
        "connect_timeout", env_int("DB_CONNECT_TIMEOUT", 3)
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # IMMEDIATE takes SQLite's write lock at BEGIN, so two ledger writers queue instead of failing
    # half-way with "database is locked".
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Celery -----------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    # A dead Redis must be a quick error: cache reads then fall back to PostgreSQL (costswitch/cache.py).
    _redis_timeout = env_float("REDIS_SOCKET_TIMEOUT", 0.5)
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": _redis_timeout, "socket_timeout": _redis_timeout},
        }
    }
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
    # A task taken by a worker that died without giving it back is delivered again after this many
    # seconds; longer than any task runs, or a slow task would run twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 300)}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
    _broker_dir = VAR_DIR / "celery-broker"
    # kombu's filesystem transport does not create its folders.
    for _folder in (_broker_dir, VAR_DIR / "celery-processed"):
        _folder.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir),
        "data_folder_out": str(_broker_dir),
        "processed_folder": str(VAR_DIR / "celery-processed"),
        # Without this kombu writes its exchange table to ./control in the working directory.
        "control_folder": str(VAR_DIR / "celery-control"),
        "store_processed": False,
    }
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
# With acks_late: a task whose worker process was killed goes back to the queue instead of being
# acknowledged as failed (tasks are idempotent, so running one again is safe).
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# A task running when the broker connection drops can no longer be acknowledged and will be delivered
# again: stop it rather than let two copies run (Celery 6's default).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "expire-reservations": {"task": "budgets.tasks.expire_reservations", "schedule": 60.0},
    # Approved overrides stop applying at their expiry by themselves; the sweep records the expiry
    # (audit, state) and takes back an expired extension's money within a minute.
    "expire-overrides": {"task": "approvals.tasks.expire_overrides", "schedule": 60.0},
    "apply-due-price-changes": {"task": "models_registry.tasks.apply_due_price_changes", "schedule": 60.0},
    # Budget alerts (budgets/services/alerts.py) and notifications (approvals/notifications.py).
    "raise-threshold-alerts": {"task": "budgets.tasks.raise_threshold_alerts", "schedule": 300.0},
    "raise-forecast-alerts": {"task": "budgets.tasks.raise_forecast_alerts", "schedule": 900.0},
    "retry-stalled-notifications": {
        "task": "approvals.tasks_notifications.retry_stalled_notifications",
        "schedule": 300.0,
    },
    # Local midnights fall on any quarter hour in UTC (+05:45, -09:30...), so no fixed crontab suits
    # every organization: a cheap sweep every 5 minutes closes ended periods and opens new ones within
    # 5 minutes of any boundary. Nothing waits on it: the request path opens a missing period itself.
    "roll-over-periods": {"task": "budgets.tasks.roll_over_periods", "schedule": 300.0},
    # Does nothing until COSTSWITCH_PRICE_CATALOG is set.
    "sync-prices": {"task": "models_registry.tasks.sync_prices", "schedule": 3600.0},
    "requeue-stuck-webhooks": {"task": "costswitch.tasks.requeue_stuck_webhooks", "schedule": 300.0},
    "reconcile-ledger": {"task": "analytics.tasks.reconcile_ledger", "schedule": 3600.0},
    # Per-request difficulty models from reported outcomes (selection/outcome_learning.py).
    "learn-from-outcomes": {"task": "selection.tasks.learn_from_outcomes", "schedule": 60.0},
    # Daily spend rollup (analytics/rollup.py): the last 2 ended days every 10 minutes, the last 35
    # daily (late settles and back-dated reconciliation adjustments). Today is read from the ledger.
    "rollup-spend-recent": {"task": "analytics.tasks.rollup_spend", "schedule": 600.0, "kwargs": {"days": 2}},
    "rollup-spend-deep": {
        "task": "analytics.tasks.rollup_spend",
        "schedule": 86400.0,
        "kwargs": {"days": 35},
    },
}

# tiktoken's encoding files ship with the code (see models_registry/encodings/README.md).
TIKTOKEN_CACHE_DIR = env_str("TIKTOKEN_CACHE_DIR", str(BASE_DIR / "models_registry" / "encodings"))
# tiktoken reads its cache folder from the environment only; without it, it downloads the files.
os.environ["TIKTOKEN_CACHE_DIR"] = TIKTOKEN_CACHE_DIR

# --- API ------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "costswitch.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["costswitch.api.renderers.CamelCaseDecimalJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["costswitch.api.parsers.CamelCaseDecimalJSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "costswitch.api.pagination.Pagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "costswitch.api.exception_handler.handle_exception",
    # Requests per minute of API keys that have a limit (README "Rate limits").
    "DEFAULT_THROTTLE_CLASSES": ["costswitch.api.throttling.ApiKeyRateThrottle"],
    "COERCE_DECIMAL_TO_STRING": False,
    "UNAUTHENTICATED_USER": None,
}
# Free-form JSON the caller owns keeps its keys as sent: metadata rules match on them, and tool and
# response schemas are forwarded to providers (`userId` must not become `user_id`).
JSON_CAMEL_CASE = {
    "JSON_UNDERSCOREIZE": {
        "no_underscore_before_number": False,
        "ignore_fields": ("metadata", "tools", "tool_calls", "response_format", "logit_bias"),
        "ignore_keys": None,
    }
}
SPECTACULAR_SETTINGS = {
    "TITLE": "costswitch API",
    "DESCRIPTION": "Cost-aware LLM model switching: budgets, spend ledger, reservations and usage.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "CAMELIZE_NAMES": True,
    # Choice sets that share a field name (`kind`) get names of their own.
    "ENUM_NAME_OVERRIDES": {
        "AlertKindEnum": "budgets.models.AlertKind",
        "OverrideKindEnum": "approvals.models.OverrideKind",
        "ReconciliationRunStatusEnum": "analytics.models.RunStatus",
        "SyncBatchStatusEnum": "analytics.models.SyncStatus",
        "DiscrepancyStatusEnum": "analytics.models.DiscrepancyStatus",
        "SyncSourceEnum": "analytics.models.SyncSource",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "drf_spectacular.contrib.djangorestframework_camel_case.camelize_serializer_fields",
    ],
}

# --- Product settings -----------------------------------------------------------------------------
COSTSWITCH_CURRENCY = env_str("COSTSWITCH_CURRENCY", "USD")
COSTSWITCH_RESERVATION_TTL_SECONDS = env_int("COSTSWITCH_RESERVATION_TTL_SECONDS", 600)
COSTSWITCH_MAX_BATCH_SIZE = env_int("COSTSWITCH_MAX_BATCH_SIZE", 1000)
# Prompts longer than this (characters, all messages together) are refused before counting tokens:
# the largest context windows (2M tokens) stay well inside it.
COSTSWITCH_MAX_PROMPT_CHARS = env_int("COSTSWITCH_MAX_PROMPT_CHARS", 8_000_000)
# Shared secret for signed inbound webhooks; webhooks answer 503 until it is set.
COSTSWITCH_WEBHOOK_SECRET = env_str("COSTSWITCH_WEBHOOK_SECRET", "")
COSTSWITCH_WEBHOOK_MAX_BYTES = env_int("COSTSWITCH_WEBHOOK_MAX_BYTES", 1024 * 1024)
# Notifications (README "Alerts and notifications"): email and webhook deliveries are tried this many
# times, waiting NOTIFY_RETRY_SECONDS, then twice as long after each failure; webhooks time out after
# NOTIFY_TIMEOUT_SECONDS.
COSTSWITCH_NOTIFY_MAX_ATTEMPTS = env_int("COSTSWITCH_NOTIFY_MAX_ATTEMPTS", 6)
COSTSWITCH_NOTIFY_RETRY_SECONDS = env_float("COSTSWITCH_NOTIFY_RETRY_SECONDS", 30.0)
COSTSWITCH_NOTIFY_TIMEOUT_SECONDS = env_float("COSTSWITCH_NOTIFY_TIMEOUT_SECONDS", 10.0)
# Notification webhooks to loopback, private, link-local or reserved addresses are refused unless
# this is set (a deployment whose receivers live on its own network; the test suite's local servers).
COSTSWITCH_NOTIFY_ALLOW_PRIVATE_HOSTS = env_bool("COSTSWITCH_NOTIFY_ALLOW_PRIVATE_HOSTS", False)
# Email: the console backend (mail printed to the log) unless EMAIL_BACKEND names another, e.g.
# django.core.mail.backends.smtp.EmailBackend with EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER,
# EMAIL_HOST_PASSWORD (or _FILE) and EMAIL_USE_TLS.
EMAIL_BACKEND = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "costswitch <costswitch@localhost>")
# Links in notification emails point here (e.g. https://costswitch.example.com); empty: no link.
COSTSWITCH_BASE_URL = env_str("COSTSWITCH_BASE_URL", "")
# Price sync (hourly): a catalog file path or http(s) URL, ours or LiteLLM's price file; empty: off.
COSTSWITCH_PRICE_CATALOG = env_str("COSTSWITCH_PRICE_CATALOG", "")
COSTSWITCH_PRICE_CATALOG_TIMEOUT = env_float("COSTSWITCH_PRICE_CATALOG_TIMEOUT", 30.0)
COSTSWITCH_PRICE_CATALOG_MAX_BYTES = env_int("COSTSWITCH_PRICE_CATALOG_MAX_BYTES", 50 * 1024 * 1024)
# Overrides (README "Overrides"): the longest an approved override may last, the longest an
# emergency self-grant may last, how long a request nobody decides stays pending, and the duration
# of an override a refused select request asks for without naming one (all in minutes).
COSTSWITCH_OVERRIDE_MAX_MINUTES = env_int("COSTSWITCH_OVERRIDE_MAX_MINUTES", 7 * 24 * 60)
COSTSWITCH_EMERGENCY_OVERRIDE_MAX_MINUTES = env_int("COSTSWITCH_EMERGENCY_OVERRIDE_MAX_MINUTES", 4 * 60)
COSTSWITCH_OVERRIDE_PENDING_MINUTES = env_int("COSTSWITCH_OVERRIDE_PENDING_MINUTES", 24 * 60)
COSTSWITCH_OVERRIDE_DEFAULT_MINUTES = env_int("COSTSWITCH_OVERRIDE_DEFAULT_MINUTES", 60)
# Selection: the strategy when neither the request nor a rule names one.
COSTSWITCH_DEFAULT_STRATEGY = env_str("COSTSWITCH_DEFAULT_STRATEGY", "balanced")
# The model a request without one would have gone to: the baseline its savings are measured against.
COSTSWITCH_DEFAULT_MODEL = env_str("COSTSWITCH_DEFAULT_MODEL", "gpt-4o")
# Price lines (USD per 1M input / output tokens) that split models into tiers for a request:
# dearer than the premium line is premium (needs an override above 85% of a budget), at most the
# simple line is a utility model.
COSTSWITCH_PREMIUM_PRICE_LINE = env_list("COSTSWITCH_PREMIUM_PRICE_LINE", "3,15")
COSTSWITCH_SIMPLE_PRICE_LINE = env_list("COSTSWITCH_SIMPLE_PRICE_LINE", "0.5,2")
# Above 95% a budget without its own per-request ceiling caps requests at this share of its limit.
COSTSWITCH_STRICT_COST_SHARE = env_str("COSTSWITCH_STRICT_COST_SHARE", "0.01")
# Reported outcomes older than this no longer shape the history score.
COSTSWITCH_HISTORY_WINDOW_DAYS = env_int("COSTSWITCH_HISTORY_WINDOW_DAYS", 30)
# Per-request difficulty learned from reported outcomes (selection/learning.py, docs/routing.md):
# off stores no text features and uses no learned estimate. Admission rechecks the trained weights'
# version at most every REFRESH seconds per process; training leaves ledger rows younger than LAG
# seconds for the next run. EXPLORATION_RATE: the share of "auto" requests whose requirement a cheaper
# eligible model nearly meets that go to it, so its outcomes are learned beyond the easy prompts.
COSTSWITCH_LEARNING_ENABLED = env_bool("COSTSWITCH_LEARNING_ENABLED", True)
COSTSWITCH_LEARNING_REFRESH_SECONDS = env_float("COSTSWITCH_LEARNING_REFRESH_SECONDS", 30.0)
COSTSWITCH_LEARNING_LAG_SECONDS = env_float("COSTSWITCH_LEARNING_LAG_SECONDS", 10.0)
COSTSWITCH_EXPLORATION_RATE = env_float("COSTSWITCH_EXPLORATION_RATE", 0.05)
# Each run that finds new outcomes rebuilds the organization's model of each LLM they concern from
# its newest LEARNING_WINDOW outcomes (bounds staleness and work), LEARNING_PASSES passes over them.
COSTSWITCH_LEARNING_WINDOW = env_int("COSTSWITCH_LEARNING_WINDOW", 20000)
COSTSWITCH_LEARNING_PASSES = env_int("COSTSWITCH_LEARNING_PASSES", 3)
# OpenAI-compatible gateway (README "Gateway"): seconds to connect to a provider, and the longest
# silence while waiting for its answer (a whole non-streamed answer, or the gap between two stream
# chunks); one pooled HTTP client per process keeps at most GATEWAY_MAX_CONNECTIONS open.
COSTSWITCH_GATEWAY_CONNECT_TIMEOUT = env_float("COSTSWITCH_GATEWAY_CONNECT_TIMEOUT", 5.0)
COSTSWITCH_GATEWAY_READ_TIMEOUT = env_float("COSTSWITCH_GATEWAY_READ_TIMEOUT", 120.0)
COSTSWITCH_GATEWAY_MAX_CONNECTIONS = env_int("COSTSWITCH_GATEWAY_MAX_CONNECTIONS", 100)
# Default cap (in COSTSWITCH_CURRENCY) on what one conversation may spend through the gateway;
# empty: no cap. A request's X-Costswitch-Conversation-Budget header may only lower it.
COSTSWITCH_CONVERSATION_BUDGET = env_str("COSTSWITCH_CONVERSATION_BUDGET", "")
# Rate limits (README "Rate limits"): malformed or unknown API keys allowed per client address per
# minute before the address is refused with 429 for a minute (0 turns the guard off), and how many
# reverse proxies in front of the app append to X-Forwarded-For (0: the client is REMOTE_ADDR).
INVALID_KEY_LIMIT_PER_MINUTE = env_int("INVALID_KEY_LIMIT_PER_MINUTE", 30)
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)

# --- Internationalisation, static -----------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"] if (BASE_DIR / "static").is_dir() else []
# Without DEBUG, whitenoise serves the hashed, compressed copies `collectstatic` wrote (cached by
# browsers for a year); with DEBUG, the source files as they are.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# --- Security (production is DEBUG off; `manage.py check --deploy` is clean) ----------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
# Browsers that saw this header over HTTPS refuse plain HTTP to the host for that long.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# TLS usually ends at the load balancer, which redirects HTTP itself. Django can redirect only when
# it tells HTTPS requests apart: TLS up to gunicorn, a proxy listed in FORWARDED_ALLOW_IPS (gunicorn
# then trusts its X-Forwarded-Proto), or SECURE_PROXY_SSL_HEADER.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
# "HTTP_X_FORWARDED_PROTO,https": only behind a proxy that always sets (overwrites) that header.
_proxy_ssl_header = env_list("SECURE_PROXY_SSL_HEADER")
if _proxy_ssl_header:
    if len(_proxy_ssl_header) != 2:
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER must be 'HEADER,value', e.g. HTTP_X_FORWARDED_PROTO,https"
        )
    SECURE_PROXY_SSL_HEADER = tuple(_proxy_ssl_header)
SILENCED_SYSTEM_CHECKS = []
if not SECURE_SSL_REDIRECT:
    # security.W008 wants Django to redirect HTTP to HTTPS; by default the load balancer does it
    # (README "Production"), and behind one that Django does not trust, every request looks like HTTP.
    SILENCED_SYSTEM_CHECKS.append("security.W008")
if not SECURE_HSTS_PRELOAD:
    # security.W021 wants HSTS preload: a submission of the whole registered domain to browsers'
    # built-in lists, hard to undo, that only the domain's owner can decide (SECURE_HSTS_PRELOAD=1).
    SILENCED_SYSTEM_CHECKS.append("security.W021")

# Request bodies: JSON API bodies larger than this are refused with 413 `request_too_large`
# (costswitch/api/parsers.py); form posts (admin) are also limited by field and file count.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 20 * 1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = env_int("DATA_UPLOAD_MAX_NUMBER_FIELDS", 1000)
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("DATA_UPLOAD_MAX_NUMBER_FILES", 10)

# --- Logs and metrics -----------------------------------------------------------------------------
LOG_FORMAT = env_str("LOG_FORMAT", "plain" if DEBUG else "json")
if LOG_FORMAT not in {"json", "plain"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or plain, got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "costswitch.logs.ContextFilter"},
        "redact": {"()": "costswitch.logs.RedactFilter"},
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {"()": "costswitch.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context", "redact"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    # Prompt text is logged only for organizations that allow it (Organization.log_prompts); set
    # this logger to INFO to keep prompts out of the logs whatever organizations allow.
    "loggers": {"costswitch.prompts": {"level": env_str("LOG_PROMPTS_LEVEL", "DEBUG")}},
}
# /metrics answers anyone unless this is set; then it wants `Authorization: Bearer <token>`.
METRICS_TOKEN = env_str("METRICS_TOKEN", "")
# Budgets (most used first) and organizations that get their own label in /metrics.
METRICS_MAX_BUDGETS = env_int("METRICS_MAX_BUDGETS", 100)
