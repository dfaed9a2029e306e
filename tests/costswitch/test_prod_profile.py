"""The production profile (`make prod`: scripts/prod.sh) on 127.0.0.1 against the test's PostgreSQL
and Redis: gunicorn with two worker processes, a Celery worker and beat, DEBUG off.

It must become ready, serve metrics and hashed static files, and charge one budget chain
(organization -> team -> user) through both worker processes to the exact cent: every budget's
`spent` equals the sum charged and the ledger equals the period aggregates. TERM stops it all.
"""

import os
import random
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import simplejson
from django.db import connection

from budgets.models import BudgetPeriod, UsageCharge, UsageRecord
from budgets.selectors import ledger_drift
from tests.budgets.factories import BudgetFactory, make_api_key, team_budget, user_budget
from tests.processes import ProdProfile

REPO = Path(__file__).resolve().parents[2]
USAGE_REPORTS = 60
RESERVATIONS = 30
BATCHES = 10
THREADS = 8


@pytest.fixture
def prod(tmp_path):
    """The production profile, not started yet; whatever the test leaves running is killed."""
    profile = ProdProfile(tmp_path)
    try:
        yield profile
    finally:
        profile.kill_everything()


def _post(client: httpx.Client, path: str, body: dict) -> httpx.Response:
    # simplejson with use_decimal writes money as exact JSON numbers, never through a float.
    return client.post(path, content=simplejson.dumps(body, use_decimal=True))


def _money(rng: random.Random) -> Decimal:
    return Decimal(rng.randint(1, 50_000_000)) / Decimal(1_000_000_000)  # up to 0.05, 9 decimals


def _charge_one(base_url: str, secret: str, kind: str, n: int) -> Decimal:
    """One client's work; returns what it charged (retries included, which must charge nothing)."""
    rng = random.Random(f"{kind}-{n}")
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    with httpx.Client(base_url=f"{base_url}/api/v1", headers=headers, timeout=30) as client:
        if kind == "usage":
            cost = _money(rng)
            body = {"requestId": f"use-{n}", "model": "gpt-4o-mini", "cost": cost, "inputTokens": 900}
            first = _post(client, "/usage", body)
            assert first.status_code == 201, first.text
            if n % 4 == 0:  # a retried report is answered, not charged again
                again = _post(client, "/usage", body)
                assert again.status_code == 200 and again.json()["replayed"] is True, again.text
            return cost
        if kind == "reservation":
            cost = _money(rng)
            held = _post(
                client, "/reservations", {"requestId": f"res-{n}", "amount": cost * 2, "model": "gpt-4o"}
            )
            assert held.status_code == 201, held.text
            settled = _post(client, f"/reservations/{held.json()['reservationId']}/settle", {"cost": cost})
            assert settled.status_code == 201, settled.text
            return cost
        costs = [_money(rng) for _ in range(3)]
        items = [{"requestId": f"batch-{n}-{i}", "model": "m", "cost": c} for i, c in enumerate(costs)]
        batch = _post(client, "/usage", {"items": items})
        assert batch.status_code == 201 and batch.json()["created"] == 3, batch.text
        return sum(costs, Decimal(0))


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (make test starts one)")
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (make test starts one)")
def test_the_production_profile_serves_and_charges_one_chain_exactly_through_two_workers(world, prod):
    budgets = [
        BudgetFactory(organization=world.org, limit=Decimal("1000")),
        team_budget(world.alpha, limit=Decimal("1000")),
        user_budget(world.bob, limit=Decimal("1000")),
    ]
    _, secret = make_api_key(user=world.bob)  # spends from bob -> alpha -> Acme
    prod.start()

    ready = prod.wait_until_ready()
    assert ready["status"] == "ok"
    assert all(check["ok"] for check in ready["checks"].values()), ready
    assert httpx.get(f"{prod.base_url}/healthz").json() == {"status": "ok"}

    metrics = httpx.get(f"{prod.base_url}/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")

    # DEBUG is off and whitenoise serves the hashed, compressed copies collectstatic wrote.
    login = httpx.get(f"{prod.base_url}/admin/login/")
    assert login.status_code == 200
    stylesheet = re.search(r"/static/admin/css/base\.[0-9a-f]{12}\.css", login.text)
    assert stylesheet, "the admin page should link the hashed stylesheet"
    css = httpx.get(f"{prod.base_url}{stylesheet.group(0)}", headers={"Accept-Encoding": "gzip"})
    assert css.status_code == 200
    assert "immutable" in css.headers["cache-control"]
    missing = httpx.get(f"{prod.base_url}/no-such-page")
    assert missing.status_code == 404
    assert "DEBUG = True" not in missing.text

    work = (
        [("usage", n) for n in range(USAGE_REPORTS)]
        + [("reservation", n) for n in range(RESERVATIONS)]
        + [("batch", n) for n in range(BATCHES)]
    )
    random.Random(7).shuffle(work)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        charged = list(pool.map(lambda job: _charge_one(prod.base_url, secret, *job), work))
    total = sum(charged, Decimal(0))

    deadline = time.monotonic() + 10  # gunicorn writes its access line just after the response
    while len(prod.worker_pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    pids = prod.worker_pids()
    assert len(pids) >= 2, f"every request was served by the same process: {pids}"
    for pid in pids:
        assert b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()

    # TERM stops gunicorn, the Celery worker and beat cleanly, and leaves no process behind.
    prod.process.send_signal(signal.SIGTERM)
    assert prod.process.wait(timeout=60) == 143, prod.log_tail()
    deadline = time.monotonic() + 10
    while prod.group_alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not prod.group_alive(), "processes of the production profile outlived it"

    expected_records = USAGE_REPORTS + RESERVATIONS + 3 * BATCHES
    assert UsageRecord.objects.count() == expected_records
    for budget in budgets:
        period = BudgetPeriod.objects.get(budget=budget)
        assert period.spent == total, budget.scope_type
        assert period.reserved == 0
        assert UsageCharge.objects.filter(period=period).count() == expected_records
    assert ledger_drift() == []


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("DATABASE_URL", "DATABASE_URL is required"),
        ("REDIS_URL", "REDIS_URL is required"),
        ("SECRET_KEY", "SECRET_KEY or SECRET_KEY_FILE is required"),
    ],
)
def test_prod_refuses_to_start_without_what_it_needs(tmp_path, missing, message):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "SECRET_KEY": "x" * 50,
        "COSTSWITCH_VAR_DIR": str(tmp_path),
    }
    del env[missing]
    result = subprocess.run(["bash", "scripts/prod.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert message in result.stderr


def test_prod_wants_postgresql(tmp_path):
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "SECRET_KEY": "x" * 50,
    }
    result = subprocess.run(["bash", "scripts/prod.sh"], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert "DATABASE_URL must point at PostgreSQL" in result.stderr
