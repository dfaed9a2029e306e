"""Rate limits at the API edge: an API key's requests per minute (also across two OS processes), and
floods of invalid API keys from one address."""

import math
import multiprocessing
import traceback

import pytest
from django.db import connection, connections
from django.test import RequestFactory, override_settings
from rest_framework import exceptions
from rest_framework.test import APIClient

from budgets.models import ApiKey
from costswitch.api.exception_handler import handle_exception
from costswitch.api.throttling import client_ip
from costswitch.errors import RateLimited
from costswitch.ratelimit import RedisLimiter
from tests.budgets.factories import make_api_key
from tests.costswitch.limiters import isolated_limiter

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def limiter():
    with isolated_limiter() as limiter:
        yield limiter


def client_from(address: str, secret: str | None = None) -> APIClient:
    client = APIClient(REMOTE_ADDR=address)
    if secret is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def limited_key(team, **limits) -> tuple[ApiKey, str]:
    api_key, secret = make_api_key(team=team)
    ApiKey.objects.filter(pk=api_key.pk).update(**limits)
    return api_key, secret


def assert_rate_limited(response, *, scope: str, limit: int | None) -> dict:
    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert retry_after >= 1
    body = response.json()
    assert body["status"] == 429
    assert body["code"] == "rate_limited"
    assert body["message"]
    details = body["details"]
    assert details["scope"] == scope
    assert details["limit"] == limit
    assert 0 < details["retryAfter"] <= retry_after
    assert retry_after == math.ceil(details["retryAfter"])
    return body


# --- requests per minute of an API key -------------------------------------------------------------


def test_a_key_gets_its_requests_per_minute_then_429(world):
    _, secret = limited_key(world.alpha, requests_per_minute=3)
    client = client_from("10.1.0.1", secret)
    assert [client.get("/api/v1/budgets").status_code for _ in range(3)] == [200, 200, 200]
    body = assert_rate_limited(client.get("/api/v1/budgets"), scope="api_key", limit=3)
    assert 19 < body["details"]["retryAfter"] <= 20  # one request every 20 s
    assert body["details"]["unit"] == "requests"
    assert "3 requests per minute" in body["message"]


def test_keys_are_limited_one_by_one(world):
    _, first = limited_key(world.alpha, requests_per_minute=1)
    _, second = limited_key(world.alpha, requests_per_minute=1)
    assert client_from("10.1.0.2", first).get("/api/v1/budgets").status_code == 200
    assert client_from("10.1.0.2", first).get("/api/v1/budgets").status_code == 429
    assert client_from("10.1.0.2", second).get("/api/v1/budgets").status_code == 200


def test_a_key_without_a_limit_is_not_throttled(world, team_key):
    client = client_from("10.1.0.3", team_key[1])
    assert {client.get("/api/v1/budgets").status_code for _ in range(5)} == {200}


def test_a_session_login_is_not_throttled_by_key_limits(world):
    client = APIClient()
    client.force_login(world.alice)
    assert {client.get("/api/v1/budgets").status_code for _ in range(3)} == {200}


# --- the exception handler --------------------------------------------------------------------------


def test_drf_throttled_answers_as_rate_limited():
    response = handle_exception(exceptions.Throttled(wait=2.2), {})
    assert response.status_code == 429
    assert response["Retry-After"] == "3"
    assert response.data["code"] == "rate_limited"
    assert response.data["details"]["retry_after"] == 3


def test_a_rate_limited_domain_error_carries_retry_after():
    error = RateLimited("Slow down.", retry_after=0.2, limit=5, scope="model")
    response = handle_exception(error, {})
    assert response.status_code == 429
    assert response["Retry-After"] == "1"
    assert response.data["details"] == {"retry_after": 0.2, "limit": 5, "scope": "model"}


# --- invalid API keys -------------------------------------------------------------------------------


@override_settings(INVALID_KEY_LIMIT_PER_MINUTE=3)
def test_a_flood_of_unknown_keys_is_refused_and_then_valid_keys_too(
    world, team_key, django_assert_num_queries
):
    attacker = "10.2.0.1"
    statuses = [client_from(attacker, f"cs_guess{n}").get("/api/v1/budgets").status_code for n in range(3)]
    assert statuses == [401, 401, 401]
    body = assert_rate_limited(
        client_from(attacker, "cs_guess3").get("/api/v1/budgets"), scope="client_ip", limit=3
    )
    assert "invalid API keys" in body["message"]
    # While over, even a right guess gets 429, refused before the key is looked up.
    with django_assert_num_queries(0):
        response = client_from(attacker, team_key[1]).get("/api/v1/budgets")
    assert_rate_limited(response, scope="client_ip", limit=3)
    # Other addresses are not affected.
    assert client_from("10.2.0.2", team_key[1]).get("/api/v1/budgets").status_code == 200
    assert client_from("10.2.0.2", "cs_wrong").get("/api/v1/budgets").status_code == 401


@override_settings(INVALID_KEY_LIMIT_PER_MINUTE=2)
def test_malformed_keys_count_as_invalid(world):
    client = client_from("10.2.0.3", "not-a-key")
    assert [client.get("/api/v1/budgets").status_code for _ in range(3)] == [401, 401, 429]


@override_settings(INVALID_KEY_LIMIT_PER_MINUTE=2)
def test_valid_keys_do_not_count_as_invalid(world, team_key):
    client = client_from("10.2.0.4", team_key[1])
    assert {client.get("/api/v1/budgets").status_code for _ in range(4)} == {200}


@override_settings(INVALID_KEY_LIMIT_PER_MINUTE=0)
def test_the_invalid_key_guard_can_be_turned_off(world):
    client = client_from("10.2.0.5", "cs_guess")
    assert {client.get("/api/v1/budgets").status_code for _ in range(4)} == {401}


@override_settings(INVALID_KEY_LIMIT_PER_MINUTE=2, TRUSTED_PROXY_COUNT=1)
def test_behind_a_proxy_the_forwarded_client_is_counted(world):
    def attempt(forwarded_for):
        return client_from("192.0.2.10", "cs_guess").get(
            "/api/v1/budgets", HTTP_X_FORWARDED_FOR=forwarded_for
        )

    assert attempt("spoofed, 10.3.0.1").status_code == 401
    assert attempt("other-spoof, 10.3.0.1").status_code == 401
    assert attempt("10.3.0.1").status_code == 429
    assert attempt("10.3.0.2").status_code == 401  # another client behind the same proxy


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "expected"),
    [
        (0, "1.1.1.1", "192.0.2.1"),  # no trusted proxy: the header is the client's word, ignored
        (1, "6.6.6.6, 1.1.1.1", "1.1.1.1"),
        (2, "6.6.6.6, 1.1.1.1, 10.0.0.5", "1.1.1.1"),
        (2, "1.1.1.1", "1.1.1.1"),  # fewer hops than proxies: the leftmost there is
        (1, "", "192.0.2.1"),
    ],
)
def test_client_ip(proxies, forwarded_for, expected):
    request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.1", HTTP_X_FORWARDED_FOR=forwarded_for)
    with override_settings(TRUSTED_PROXY_COUNT=proxies):
        assert client_ip(request) == expected


# --- across two OS processes ------------------------------------------------------------------------

LIMIT = 12
REQUESTS_PER_PROCESS = 20


def _hammer(secret: str, results) -> None:
    try:
        client = client_from("10.4.0.1", secret)
        outcomes = []
        for _ in range(REQUESTS_PER_PROCESS):
            response = client.get("/api/v1/budgets")
            outcomes.append((response.status_code, response.headers.get("Retry-After")))
        results.put(outcomes)
    except Exception:
        results.put(traceback.format_exc())
    finally:
        connection.close()


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (make test starts one)")
def test_two_processes_allow_exactly_the_keys_limit_between_them(world, limiter):
    if not isinstance(limiter, RedisLimiter):
        pytest.skip("needs Redis (make test starts one)")
    _, secret = limited_key(world.alpha, requests_per_minute=LIMIT)
    connections.close_all()  # children open their own connections
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [context.Process(target=_hammer, args=(secret, results)) for _ in range(2)]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert all(isinstance(outcome, list) for outcome in outcomes), outcomes
    statuses = [status for outcome in outcomes for status, _ in outcome]
    assert statuses.count(200) == LIMIT
    assert statuses.count(429) == 2 * REQUESTS_PER_PROCESS - LIMIT
    assert all(int(retry) >= 1 for outcome in outcomes for status, retry in outcome if status == 429)
