import socket
from types import SimpleNamespace

import pytest
from django.db import connection
from django.db.migrations import Migration
from django.test import override_settings

from costswitch import health

CHECK_NAMES = {"database", "cache", "broker", "migrations"}


@pytest.fixture(autouse=True)
def forget_migration_state():
    health._migrated_aliases.clear()
    yield
    health._migrated_aliases.clear()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_healthz_answers_without_database_cache_or_credentials(client):
    # No `db` fixture: any query would fail the test.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]
    assert not response.cookies


@pytest.mark.django_db
def test_readyz_reports_each_check_with_its_latency(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == CHECK_NAMES
    for result in body["checks"].values():
        assert result["ok"] is True
        assert result["latencyMs"] >= 0
        assert "error" not in result
    assert not response.cookies


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/readyz/"])
def test_probes_answer_any_host_header(client, path):
    # Load balancers probe with the instance's address, which is not in ALLOWED_HOSTS.
    assert client.get(path, HTTP_HOST="10.1.2.3:8000").status_code == 200


@pytest.mark.django_db
@override_settings(SECURE_SSL_REDIRECT=True)
def test_probes_over_plain_http_are_not_redirected(client):
    assert client.get("/readyz").status_code == 200
    assert client.get("/api/v1/budgets").status_code == 301


def test_probes_refuse_writes(client):
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405


@pytest.mark.django_db
def test_readyz_answers_head(client):
    assert client.head("/readyz").status_code == 200


@pytest.mark.django_db
def test_readyz_is_503_when_the_cache_is_down(client):
    dead_redis = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
        }
    }
    with override_settings(CACHES=dead_redis):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["cache"]["ok"] is False
    assert body["checks"]["cache"]["error"] == "ConnectionError"
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_readyz_is_503_when_the_broker_is_down_and_names_no_address(client):
    port = _closed_port()
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/0"):
        response = client.get("/readyz")
    assert response.status_code == 503
    broker = response.json()["checks"]["broker"]
    assert broker["ok"] is False
    assert broker["error"] == "ConnectionError"
    assert str(port) not in response.content.decode()


@pytest.mark.django_db
def test_readyz_connects_to_a_broker_other_than_redis(client):
    with override_settings(CELERY_BROKER_URL="memory://"):
        response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["broker"]["ok"] is True


class _PendingMigrations:
    """Stands in for MigrationExecutor on a database two migrations behind the code."""

    def __init__(self, connection):
        self.loader = SimpleNamespace(graph=SimpleNamespace(leaf_nodes=list))

    def migration_plan(self, targets):
        return [(Migration("0099_later", "budgets"), False), (Migration("0100_last", "budgets"), False)]


class _NoExecutor:
    def __init__(self, connection):
        raise AssertionError("the migration state should have been remembered")


@pytest.mark.django_db
def test_readyz_is_503_until_migrations_are_applied_and_then_remembers(client, monkeypatch):
    monkeypatch.setattr(health, "MigrationExecutor", _PendingMigrations)
    response = client.get("/readyz")
    assert response.status_code == 503
    migrations = response.json()["checks"]["migrations"]
    assert migrations["error"] == "2 unapplied migration(s), first budgets.0099_later"

    # An unready answer is not remembered: the next probe after `migrate` sees the real state.
    monkeypatch.undo()
    assert client.get("/readyz").status_code == 200

    # A ready one is: later probes do not load the migration graph again.
    monkeypatch.setattr(health, "MigrationExecutor", _NoExecutor)
    assert client.get("/readyz").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_readyz_reconnects_after_the_database_dropped_its_connection(client):
    assert client.get("/readyz").status_code == 200
    # What a PostgreSQL restart leaves behind: a persistent connection the server no longer knows.
    connection.ensure_connection()
    connection.connection.close()
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()


@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_when_the_database_is_unreachable(client):
    settings_dict = connection.settings_dict
    real_port = settings_dict["PORT"]
    connection.close()
    settings_dict["PORT"] = str(_closed_port())
    try:
        response = client.get("/readyz")
    finally:
        connection.close()
        settings_dict["PORT"] = real_port
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"]["ok"] is False
    assert checks["database"]["error"] == "OperationalError"
    assert checks["migrations"]["ok"] is False
    assert checks["cache"]["ok"] is True


@pytest.mark.django_db
def test_probes_stay_out_of_the_api_schema(client):
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert not {"/healthz", "/readyz"} & set(paths)
