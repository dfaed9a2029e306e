"""Failure behaviour (README "Production" > "Failure behaviour"), with real processes and servers.

- Redis stopped (or hung) in the middle of a concurrent run: no budget goes over its limit, every
  answer is an admission, a budget refusal or a 503 that reserved nothing, and the app uses Redis
  again once it is back, without a restart.
- PostgreSQL restarted: 503 JSON meanwhile, quickly; requests recover on their own.
- A Celery worker killed mid-task: the task is delivered again and its effect happens once.

Each test starts its own redis-server and app (gunicorn, two workers) or Celery workers; the
PostgreSQL test stops and starts the suite's throwaway server (scripts/testservices.py) and only
that one. Slow: 2-8 s each, about 25 s together.
"""

import os
import signal
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import redis
import simplejson
from celery import Celery
from django.db import connection, connections
from django.db.models import Sum

from budgets.choices import ReservationState
from budgets.models import ApiKey, BudgetPeriod, Reservation, ReservationHold, UsageCharge, UsageRecord
from budgets.selectors import ledger_drift
from costswitch.cache import RETRY_SECONDS
from tests.budgets.factories import make_api_key, team_budget
from tests.models_registry.factories import ModelProfileFactory
from tests.processes import CeleryWorker, PostgresServer, ProdProfile

pytestmark = [
    pytest.mark.concurrency,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (make test starts one)"),
]

MODEL = "fixed-price"
PROMPT = [{"role": "user", "content": "Name the capital of Peru."}]
# A select holds 1,000 output tokens at $10 per 1M, plus a few input tokens: just over 0.01.
MAX_TOKENS = 1000
THREADS = 8
# Answers slower than this during an outage count as hangs.
OUTAGE_ANSWER_SECONDS = 5.0


@dataclass
class Answer:
    request_id: str
    started: float
    seconds: float
    status: int
    code: str | None
    settle_status: int | None = None


def _post(client: httpx.Client, path: str, body: dict) -> httpx.Response:
    # simplejson with use_decimal writes money as exact JSON numbers, never through a float.
    return client.post(path, content=simplejson.dumps(body, use_decimal=True))


def _client(app: ProdProfile, secret: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    return httpx.Client(base_url=f"{app.base_url}/api/v1", headers=headers, timeout=30)


def _select(client: httpx.Client, request_id: str) -> httpx.Response:
    body = {"request": {"model": MODEL, "maxTokens": MAX_TOKENS, "messages": PROMPT}, "requestId": request_id}
    return _post(client, "/models/select", body)


def _code(response: httpx.Response) -> str | None:
    """The error code of a JSON error body; fails the test on a body that is not our JSON."""
    if response.status_code < 400:
        return None
    assert response.headers["content-type"].startswith("application/json"), response.text[:500]
    body = response.json()
    assert body["status"] == response.status_code and body["message"], body
    return body["code"]


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text[:500]
    assert _code(response) == "service_unavailable"
    assert response.headers["retry-after"] == "1"


def _ready(app: ProdProfile) -> bool:
    return httpx.get(f"{app.base_url}/readyz", timeout=5).status_code == 200


@pytest.fixture
def app(tmp_path, redis_server):
    """gunicorn with two workers on the test database and the test's own Redis; not started yet."""
    profile = ProdProfile(tmp_path, web_only=True, REDIS_URL=redis_server.url)
    try:
        yield profile
    finally:
        profile.kill_everything()


@pytest.fixture
def fixed_price_model(db):
    return ModelProfileFactory(
        id=MODEL, input_price_per_million=Decimal("1"), output_price_per_million=Decimal("10")
    )


@pytest.mark.parametrize("outage", ["stopped", "hung"])
def test_redis_down_mid_run_never_overspends_and_is_used_again_when_back(
    world, redis_server, app, fixed_price_model, outage
):
    """ "stopped": connections are refused. "hung": connections are accepted and nothing answers, which
    without socket timeouts would hang every request."""
    limit = Decimal("0.45")  # about 60 admissions of the 80 requests: refusals before and after the stop
    budget = team_budget(world.alpha, limit=limit, thresholds=[])
    api_key, secret = make_api_key(team=world.alpha)
    # A request limit puts every request through the Redis rate limiter too, which fails open.
    ApiKey.objects.filter(pk=api_key.pk).update(requests_per_minute=1_000_000)
    team_budget(world.beta, limit=Decimal("10"), thresholds=[])
    _, beta_secret = make_api_key(team=world.beta)
    app.start()
    app.wait_until_ready()

    requests = 80
    completed = 0
    completed_lock = threading.Lock()
    half_way = threading.Event()

    def one(n: int) -> Answer:
        nonlocal completed
        with _client(app, secret) as client:
            started = time.monotonic()
            response = _select(client, f"redis-{n}")
            answer = Answer(
                f"redis-{n}", started, time.monotonic() - started, response.status_code, _code(response)
            )
            if response.status_code == 201 and n % 2 == 0:  # settle half, at half the hold
                body = simplejson.loads(response.content, use_decimal=True)
                cost = body["estimatedCost"]["amount"] / 2
                settled = _post(client, f"/reservations/{body['reservationId']}/settle", {"cost": cost})
                answer.settle_status = settled.status_code
                _code(settled)
        with completed_lock:
            completed += 1
            if completed == requests // 2:
                half_way.set()
        return answer

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(one, n) for n in range(requests)]
        assert half_way.wait(timeout=120), app.log_tail()
        if outage == "stopped":
            redis_server.stop()
        else:
            redis_server.pause()
        stopped_at = time.monotonic()
        answers = [future.result() for future in futures]

    statuses = Counter(a.status for a in answers)
    assert set(statuses) <= {201, 402, 503}, statuses
    assert all(a.code in (None, "budget_exceeded", "service_unavailable") for a in answers)
    assert all(a.settle_status in (None, 201, 503) for a in answers)
    during = [a for a in answers if a.started > stopped_at]
    assert len(during) >= 20, "too few requests ran while Redis was down"
    assert {201, 402} <= {a.status for a in during}, Counter(a.status for a in during)
    assert all(a.seconds < OUTAGE_ANSWER_SECONDS for a in during)
    assert "reading PostgreSQL instead" in app.log_path.read_text(), "the outage was never noticed"

    # The ledger: within the limit, aggregates equal to the rows, and a 503 or 402 reserved nothing.
    period = BudgetPeriod.objects.get(budget=budget)
    held = ReservationHold.objects.filter(period=period, reservation__state=ReservationState.PENDING)
    pending = Reservation.objects.filter(team=world.alpha, state=ReservationState.PENDING)
    assert period.reserved == (held.aggregate(total=Sum("amount"))["total"] or 0)
    assert period.reserved == (pending.aggregate(total=Sum("amount"))["total"] or 0)
    assert period.spent == UsageCharge.objects.filter(period=period).aggregate(total=Sum("amount"))["total"]
    assert period.spent + period.reserved <= limit
    assert ledger_drift() == []
    admitted = {a.request_id for a in answers if a.status == 201}
    assert (
        set(Reservation.objects.filter(organization=world.org).values_list("request_id", flat=True))
        == admitted
    )

    # Still down after the pause a process takes from Redis: it tries again, fails, and still serves.
    time.sleep(RETRY_SECONDS + 0.5)
    with _client(app, beta_secret) as client:
        for n in range(4):
            started = time.monotonic()
            response = _select(client, f"still-down-{n}")
            assert response.status_code == 201, response.text
            assert time.monotonic() - started < OUTAGE_ANSWER_SECONDS

    # Redis back: the app uses it again within seconds, without a restart.
    if outage == "stopped":
        redis_server.start()
    else:
        redis_server.resume()
    cache = redis.Redis.from_url(redis_server.url)
    deadline = time.monotonic() + 15
    with _client(app, beta_secret) as client:
        while True:
            response = _select(client, f"back-{time.monotonic_ns()}")
            assert response.status_code == 201, response.text
            # Django's key for selection.snapshot.REGISTRY_VERSION_KEY (version 1, no prefix).
            if cache.exists(":1:selection:registry-version") and _ready(app):
                break
            assert time.monotonic() < deadline, "the app did not use Redis again"
            time.sleep(0.2)
    cache.close()
    assert app.process.poll() is None


def test_postgresql_restart_answers_503_meanwhile_and_requests_recover_on_their_own(
    world, app, fixed_price_model
):
    budget = team_budget(world.alpha, limit=Decimal("100"), thresholds=[])
    _, secret = make_api_key(team=world.alpha)
    postgres = PostgresServer.for_test_database()
    app.start()
    app.wait_until_ready()

    def select(request_id: str) -> tuple[httpx.Response, float]:
        with _client(app, secret) as client:
            started = time.monotonic()
            response = _select(client, request_id)
            return response, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=4) as pool:
        before = list(pool.map(select, [f"before-{n}" for n in range(8)]))
    assert [response.status_code for response, _ in before] == [201] * 8

    connections.close_all()  # PostgreSQL is about to drop this process's connection too
    postgres.stop()
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            during = list(pool.map(select, [f"during-{n}" for n in range(8)]))
        with _client(app, secret) as client:
            listed = client.get("/budgets")
        # A page outside the API: the admin reads the session from the database.
        page = httpx.get(f"{app.base_url}/admin/", cookies={"sessionid": "x" * 32}, timeout=30)
    finally:
        if not postgres.running():
            postgres.start()
    back_at = time.monotonic()

    for response, seconds in during:
        _assert_unavailable(response)
        assert seconds < OUTAGE_ANSWER_SECONDS
    _assert_unavailable(listed)
    _assert_unavailable(page)

    # Back: every request succeeds again, without restarting anything.
    with ThreadPoolExecutor(max_workers=4) as pool:
        after = list(pool.map(select, [f"after-{n}" for n in range(12)]))
    assert [response.status_code for response, _ in after] == [201] * 12, [r.text for r, _ in after]
    assert time.monotonic() - back_at < 10
    assert app.process.poll() is None

    requested = Reservation.objects.filter(organization=world.org).values_list("request_id", flat=True)
    assert sorted(requested) == sorted([f"before-{n}" for n in range(8)] + [f"after-{n}" for n in range(12)])
    period = BudgetPeriod.objects.get(budget=budget)
    assert (
        period.reserved
        == ReservationHold.objects.filter(period=period).aggregate(total=Sum("amount"))["total"]
    )
    assert ledger_drift() == []


VISIBILITY_TIMEOUT = 2  # seconds; production keeps the default 300


def _journal(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(event, int(pid)) for event, pid in (line.split() for line in path.read_text().splitlines())]


def _wait_until(condition, what: str, *, timeout: float, logs=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s\n{logs()}"
        time.sleep(0.1)


def test_a_task_whose_worker_is_killed_is_delivered_again_and_charges_once(world, redis_server, tmp_path):
    budget = team_budget(world.alpha, limit=Decimal("100"), thresholds=[])
    api_key, _ = make_api_key(team=world.alpha)
    producer = Celery("failure-tests", broker=redis_server.url, set_as_current=False)
    workers: list[CeleryWorker] = []

    def start_worker(name: str) -> CeleryWorker:
        worker = CeleryWorker(
            tmp_path,
            name,
            include="tests.load.celery_tasks",
            REDIS_URL=redis_server.url,
            CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
        )
        workers.append(worker)
        worker.start()
        return worker

    def logs() -> str:
        return "\n".join(f"--- {w.name}\n{w.log_tail()}" for w in workers)

    def charge(request_id: str, cost: str, hold_seconds: float = 60) -> Path:
        """Send the task; returns once its first delivery has charged (committed) and holds."""
        journal = tmp_path / f"{request_id}.journal"
        producer.send_task(
            "tests.load.celery_tasks.charge_usage",
            kwargs={
                "api_key_id": api_key.pk,
                "request_id": request_id,
                "cost": cost,
                "journal": str(journal),
                "hold_seconds": hold_seconds,
            },
        )
        _wait_until(
            lambda: UsageRecord.objects.filter(request_id=request_id).exists(),
            f"{request_id} charged",
            timeout=60,
            logs=logs,
        )
        return journal

    try:
        first = start_worker("first")

        # The pool process running the task is killed: the worker puts the task back (reject on
        # worker lost) and a new pool process runs it again at once.
        journal = charge("task-pool-killed", "0.25")
        [(_, pool_pid)] = _journal(journal)
        os.kill(pool_pid, signal.SIGKILL)
        _wait_until(lambda: len(_journal(journal)) == 3, "the redelivered run", timeout=30, logs=logs)
        events = _journal(journal)
        assert [event for event, _ in events] == ["start", "start", "done"]
        assert events[1][1] != pool_pid

        # The whole worker is killed (a lost machine): nobody puts the task back, and another worker
        # takes it once the visibility timeout has passed.
        journal = charge("task-worker-killed", "0.5")
        first.kill_everything()
        time.sleep(VISIBILITY_TIMEOUT + 0.5)
        start_worker("second")
        _wait_until(lambda: len(_journal(journal)) == 3, "the redelivered run", timeout=60, logs=logs)
        assert [event for event, _ in _journal(journal)] == ["start", "start", "done"]

        # Redis (the broker) restarted under a running worker: it reconnects on its own.
        redis_server.stop()
        time.sleep(1)
        redis_server.start()
        journal = charge("task-after-broker-restart", "0.125", hold_seconds=0)
        _wait_until(lambda: len(_journal(journal)) == 2, "the task after the restart", timeout=60, logs=logs)
    finally:
        for worker in workers:
            worker.kill_everything()
        producer.close()

    assert UsageRecord.objects.filter(request_id="task-pool-killed").count() == 1
    assert UsageRecord.objects.filter(request_id="task-worker-killed").count() == 1
    period = BudgetPeriod.objects.get(budget=budget)
    assert period.spent == Decimal("0.875")
    assert ledger_drift() == []
