"""Liveness and readiness probes for load balancers, orchestrators and systemd watchers.

`/healthz` answers as long as the process serves requests and touches nothing, so a slow database
never gets healthy processes restarted. `/readyz` says whether this process can do its work now:
the database answers a query, the cache a write and read, the Celery broker a connection, and every
migration this code knows is applied. A load balancer sends traffic only while it answers 200.

Both are served by HealthCheckMiddleware, first in MIDDLEWARE: probes often send the instance's IP
as Host (not in ALLOWED_HOSTS), never carry credentials, cookies or CSRF tokens, may arrive over
plain HTTP behind SECURE_SSL_REDIRECT, and must stay cheap, so they skip the rest of the stack.
"""

import logging
import secrets
import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.utils.cache import add_never_cache_headers
from kombu import Connection

logger = logging.getLogger(__name__)

# A probe must answer well inside a load balancer's probe timeout (typically 5 s) even when the
# broker host drops packets instead of refusing connections.
BROKER_TIMEOUT_SECONDS = 2.0

# Database aliases whose migrations were all applied when this process last looked. Only the
# positive answer is kept: once applied, the migrations this code ships stay applied (rolling one
# back is a deployment of older code, which starts new processes), while a missing one must be seen
# the moment `migrate` has run.
_migrated_aliases: set[str] = set()
_broker_clients: dict = {}


class NotReady(Exception):
    """A readiness check failed for a reason that is safe to show to anyone."""


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness: the process is up and serving. Touches no database, cache or broker."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return _json({"status": "ok"}, status=200)


def readyz(request: HttpRequest) -> HttpResponse:
    """Readiness: each dependency with ok, its latency in ms and, when it failed, why. 503 if any failed."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    checks = {name: _run(name, check) for name, check in CHECKS.items()}
    ready = all(result["ok"] for result in checks.values())
    return _json({"status": "ok" if ready else "unavailable", "checks": checks}, status=200 if ready else 503)


def check_database() -> None:
    connection = connections[DEFAULT_DB_ALIAS]
    try:
        _select_one(connection)
    except Exception:
        # A persistent connection (CONN_MAX_AGE) that PostgreSQL dropped in a restart fails once;
        # a fresh one tells whether the database is really unreachable.
        connection.close()
        _select_one(connection)


def check_cache() -> None:
    key = f"costswitch:readyz:{secrets.token_hex(8)}"
    token = secrets.token_hex(8)
    cache.set(key, token, timeout=10)
    try:
        if cache.get(key) != token:
            raise NotReady("the cache did not return what was written")
    finally:
        cache.delete(key)


def check_broker() -> None:
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://")) and ";" not in url:
        _redis_client(url).ping()
        return
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
    with Connection(url, connect_timeout=BROKER_TIMEOUT_SECONDS, transport_options=options) as broker:
        broker.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_SECONDS
        )


def check_migrations() -> None:
    if DEFAULT_DB_ALIAS in _migrated_aliases:
        return
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        first = plan[0][0]
        raise NotReady(f"{len(plan)} unapplied migration(s), first {first.app_label}.{first.name}")
    _migrated_aliases.add(DEFAULT_DB_ALIAS)


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "cache": check_cache,
    "broker": check_broker,
    "migrations": check_migrations,
}
PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {"/healthz": healthz, "/readyz": readyz}


class HealthCheckMiddleware:
    """Answers /healthz and /readyz before host validation, sessions, authentication and CSRF."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info.rstrip("/"))
        if probe is not None:
            return probe(request)
        return self.get_response(request)


def _run(name: str, check: Callable[[], None]) -> dict:
    started = time.perf_counter()
    try:
        check()
    except NotReady as exc:
        return {"ok": False, "latencyMs": _ms_since(started), "error": str(exc)}
    except Exception as exc:
        # The probe is public: it names the kind of failure; host names, ports and the rest of the
        # driver's message go to the log only.
        logger.warning("readiness check %s failed: %r", name, exc)
        return {"ok": False, "latencyMs": _ms_since(started), "error": type(exc).__name__}
    return {"ok": True, "latencyMs": _ms_since(started)}


def _select_one(connection) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _redis_client(url: str):
    """One client (and connection pool) per process, so a probe reuses its connection."""
    client = _broker_clients.get(url)
    if client is None:
        client = redis.Redis.from_url(
            url, socket_connect_timeout=BROKER_TIMEOUT_SECONDS, socket_timeout=BROKER_TIMEOUT_SECONDS
        )
        _broker_clients[url] = client
    return client


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _json(body: dict, *, status: int) -> JsonResponse:
    response = JsonResponse(body, status=status)
    add_never_cache_headers(response)
    return response
