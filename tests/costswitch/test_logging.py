"""Structured logs: the request id (taken or made, echoed), the context every record of a request
carries, redaction of keys and bearer tokens, and prompt text only for organizations that allow it."""

import io
import json
import logging
import re

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from costswitch import logs
from tests.conftest import client_for, client_with_key
from tests.models_registry.factories import ModelProfileFactory

SELECT = "/api/v1/models/select"
PROMPT = "What is the capital of Peru?"


@pytest.fixture
def json_logs():
    """Every record, as the production console handler writes it (JSON, context, redaction)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.ContextFilter())
    handler.addFilter(logs.RedactFilter())
    root = logging.getLogger()
    root.addHandler(handler)

    def lines(logger: str | None = None) -> list[dict]:
        entries = [json.loads(line) for line in stream.getvalue().splitlines()]
        return [e for e in entries if logger is None or e["logger"] == logger]

    lines.text = stream.getvalue
    yield lines
    root.removeHandler(handler)


@pytest.fixture
def registry():
    cache.clear()  # registry snapshots live in the cache
    ModelProfileFactory(id="only-model")
    yield
    cache.clear()


# --- request id -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_echoes_a_sane_request_id():
    response = APIClient().get("/api/v1/budgets", HTTP_X_REQUEST_ID="req-42.a:b_C")
    assert response["X-Request-ID"] == "req-42.a:b_C"


@pytest.mark.django_db
@pytest.mark.parametrize("given", [None, "", "x" * 129, "two words", "id\ninjected", "caf\u00e9"])
def test_it_makes_a_request_id_when_none_or_no_sane_one_is_given(given):
    headers = {} if given is None else {"HTTP_X_REQUEST_ID": given}
    response = APIClient().get("/api/v1/budgets", **headers)
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])


# --- context on every record ------------------------------------------------------------------------


def test_the_access_log_names_request_key_and_organization_never_the_key(team_key, json_logs):
    api_key, secret = team_key
    response = client_with_key(secret).get("/api/v1/budgets", HTTP_X_REQUEST_ID="trace-1")

    [access] = json_logs("costswitch.access")
    assert access["request_id"] == "trace-1" == response["X-Request-ID"]
    assert access["principal"] == api_key.prefix and access["organization"] == "acme"
    assert (access["method"], access["route"], access["path"], access["status"]) == (
        "GET",
        "api/v1/budgets",
        "/api/v1/budgets",
        200,
    )
    assert access["level"] == "INFO" and isinstance(access["duration_ms"], float)
    assert secret not in json_logs.text() and secret[len(api_key.prefix) :] not in json_logs.text()


def test_a_session_user_is_named_by_id(world, json_logs):
    client_for(world.fiona).get("/api/v1/budgets")
    [access] = json_logs("costswitch.access")
    assert (access["principal"], access["organization"]) == (f"user:{world.fiona.pk}", "acme")


def test_every_record_of_a_request_carries_its_context(team_key, json_logs):
    response = client_with_key(team_key[1]).get("/api/v1/budgets/999999")
    assert response.status_code == 404
    # Django logs the 404 after the middleware chain has returned: it still belongs to the request.
    [warning] = json_logs("django.request")
    assert warning["request_id"] == response["X-Request-ID"]
    assert warning["principal"] == team_key[0].prefix and warning["organization"] == "acme"


def test_a_selection_logs_its_decision_id(team_key, registry, json_logs):
    body = {"request": {"messages": [{"role": "user", "content": PROMPT}]}}
    response = client_with_key(team_key[1]).post(SELECT, body, format="json")
    assert response.status_code == 201
    [access] = json_logs("costswitch.access")
    assert access["decision_id"] == response.json()["decisionId"]


@pytest.mark.django_db
def test_the_context_does_not_outlive_its_request(json_logs):
    APIClient().get("/api/v1/budgets", HTTP_X_REQUEST_ID="over-and-done")
    logging.getLogger("tests.after").warning("later")
    [later] = json_logs("tests.after")
    assert "request_id" not in later


# --- redaction ------------------------------------------------------------------------------------


def test_api_keys_and_bearer_tokens_are_redacted(team_key, json_logs):
    api_key, secret = team_key
    log = logging.getLogger("tests.redaction")
    log.warning("key %s used", secret)
    log.warning("header was Authorization: Bearer %s", "eyJhbGciOi.payload.sig")
    try:
        raise ValueError(f"bad key {secret}")
    except ValueError:
        log.exception("failed")

    first, second, third = json_logs("tests.redaction")
    assert first["message"] == f"key {api_key.prefix}[REDACTED] used"
    assert second["message"] == "header was Authorization: Bearer [REDACTED]"
    assert "ValueError: bad key" in third["exc_info"]
    assert secret not in json_logs.text() and "eyJhbGciOi" not in json_logs.text()


def test_words_that_merely_contain_cs_are_kept(json_logs):
    logging.getLogger("tests.redaction").warning("docs_and_metrics_abcdefghijklmnopqrstuvwxyz")
    assert json_logs()[0]["message"] == "docs_and_metrics_abcdefghijklmnopqrstuvwxyz"


def test_the_json_formatter_keeps_scalar_extras_and_drops_objects():
    record = logging.makeLogRecord(
        {
            "name": "x",
            "levelno": logging.INFO,
            "levelname": "INFO",
            "msg": "m",
            "route": "r",
            "request": object(),
        }
    )
    entry = json.loads(logs.JsonFormatter().format(record))
    assert entry["route"] == "r" and "request" not in entry and entry["message"] == "m"


# --- prompts --------------------------------------------------------------------------------------


def test_prompts_are_not_logged_by_default(world, team_key, registry, json_logs):
    body = {"request": {"messages": [{"role": "user", "content": PROMPT}]}}
    assert client_with_key(team_key[1]).post(SELECT, body, format="json").status_code == 201
    assert json_logs("costswitch.prompts") == []
    assert PROMPT not in json_logs.text()


def test_prompts_are_logged_when_the_organization_allows_it(world, team_key, registry, json_logs):
    world.org.log_prompts = True
    world.org.save()
    body = {"request": {"messages": [{"role": "user", "content": PROMPT}]}}
    response = client_with_key(team_key[1]).post(SELECT, body, format="json")
    assert response.status_code == 201

    [prompt] = json_logs("costswitch.prompts")
    assert PROMPT in prompt["message"] and prompt["level"] == "DEBUG"
    assert prompt["request_id"] == response["X-Request-ID"] and prompt["organization"] == "acme"


# --- Celery ---------------------------------------------------------------------------------------


def test_the_celery_worker_logs_through_the_django_configuration():
    from celery import signals

    root = logging.getLogger()
    saved = root.handlers[:]
    try:
        # What a worker does at start-up; a receiver means Celery leaves logging alone.
        assert signals.setup_logging.send(
            sender=None, loglevel=logging.INFO, logfile=None, format="", colorize=False
        )
        formatters = {type(h.formatter) for h in root.handlers}
        filters = {type(f) for h in root.handlers for f in h.filters}
    finally:
        root.handlers[:] = saved
    assert logs.JsonFormatter in formatters  # settings_test runs with DEBUG off: JSON
    assert {logs.ContextFilter, logs.RedactFilter} <= filters


def test_keys_in_extra_fields_are_redacted_and_the_line_stays_json(team_key, json_logs):
    api_key, secret = team_key
    logging.getLogger("tests.redaction").warning(
        'said "Bearer abc"', extra={"path": f"/keys/{secret}", "note": 'Bearer x"y'}
    )
    [entry] = json_logs("tests.redaction")
    assert entry["path"] == f"/keys/{api_key.prefix}[REDACTED]"
    assert entry["message"] == 'said "Bearer [REDACTED]"' and entry["note"] == 'Bearer [REDACTED]"y'
