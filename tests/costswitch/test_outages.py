"""PostgreSQL or Redis out of reach: 503 `service_unavailable` JSON with `Retry-After`, from API views
and plain Django pages alike; other errors keep their status."""

import sqlite3
from unittest import mock

import psycopg
import pytest
import redis
from django.db import InterfaceError, OperationalError
from django.test import Client

from costswitch.outages import unavailable_service
from tests.conftest import client_with_key


def db_error(cause: Exception) -> OperationalError:
    """What Django raises for a driver error: its own class, the driver's error as the cause."""
    error = OperationalError(str(cause))
    error.__cause__ = cause
    return error


@pytest.mark.parametrize(
    ("error", "service"),
    [
        (redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused."), "Redis"),
        (redis.TimeoutError("Timeout reading from socket"), "Redis"),
        (db_error(psycopg.OperationalError("connection failed: Connection refused")), "database"),
        (
            db_error(psycopg.errors.AdminShutdown("terminating connection due to administrator command")),
            "database",
        ),
        (db_error(psycopg.errors.CannotConnectNow("the database system is starting up")), "database"),
        (db_error(psycopg.errors.TooManyConnections("too many clients already")), "database"),
        (InterfaceError("connection already closed"), "database"),
        (db_error(psycopg.errors.DeadlockDetected("deadlock detected")), None),
        (db_error(psycopg.errors.QueryCanceled("canceling statement due to statement timeout")), None),
        (db_error(sqlite3.OperationalError("database is locked")), None),
        (redis.ResponseError("WRONGTYPE"), None),
        (ValueError("no"), None),
    ],
)
def test_only_connection_failures_count_as_an_outage(error, service):
    assert unavailable_service(error) == service


@pytest.fixture
def key_client(world, team_key):
    return client_with_key(team_key[1])


def select(client):
    body = {"request": {"messages": [{"role": "user", "content": "hi"}]}}
    return client.post("/api/v1/models/select", body, format="json")


def assert_unavailable(response, what: str) -> None:
    assert response.status_code == 503
    assert response["Content-Type"].startswith("application/json")
    assert response["Retry-After"] == "1"
    body = response.json()
    assert body["status"] == 503 and body["code"] == "service_unavailable"
    assert what in body["message"]


def test_an_api_view_answers_503_when_the_database_is_unreachable(key_client):
    lost = db_error(psycopg.OperationalError("connection failed: Connection refused"))
    with mock.patch("selection.api.views.admit", side_effect=lost):
        assert_unavailable(select(key_client), "The database is unreachable")


def test_an_api_view_answers_503_when_redis_is_unreachable(key_client):
    with mock.patch("selection.api.views.admit", side_effect=redis.ConnectionError("Connection refused")):
        assert_unavailable(select(key_client), "Redis is unreachable")


@pytest.mark.django_db
def test_a_page_outside_the_api_answers_503_json_rather_than_an_html_500():
    client = Client(raise_request_exception=False)
    lost = db_error(psycopg.OperationalError("server closed the connection unexpectedly"))
    with mock.patch("costswitch.views.render", side_effect=lost):
        assert_unavailable(client.get("/"), "The database is unreachable")


def test_any_other_error_under_the_api_is_a_json_500(key_client):
    key_client.raise_request_exception = False
    deadlock = db_error(psycopg.errors.DeadlockDetected("deadlock detected"))
    with mock.patch("selection.api.views.admit", side_effect=deadlock):
        response = select(key_client)
    assert response.status_code == 500
    assert response.json() == {
        "status": 500,
        "code": "server_error",
        "message": "Something went wrong on our side.",
    }
