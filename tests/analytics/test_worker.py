"""Reconciliation and cost-data processing in a real Celery worker on a real Redis (not eager).

- A signed cost-data delivery is stored by the web process and reconciled by the worker.
- A worker SIGKILLed in the middle of a reconciliation batch: the task is delivered again to a new
  worker, and the outcome (ledger, discrepancies, compensating entries, run counts) equals a clean
  run of the same export.
"""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
import simplejson
from celery import Celery
from django.db import connection
from rest_framework.test import APIClient

from analytics.models import Discrepancy, RunStatus, SyncBatch, SyncStatus
from analytics.reconciliation.external import sync_batch_create, sync_batch_process
from budgets.models import BudgetPeriod, UsageRecord
from budgets.principals import Principal
from budgets.selectors import ledger_drift
from budgets.services.ledger import UsageReport, usage_record_many
from costswitch.celery import app
from costswitch.models import InboundWebhook, WebhookStatus
from costswitch.webhooks import sign
from tests.analytics.factories import AUG_1, budgets_for, ledger_total, registry
from tests.processes import CeleryWorker

pytestmark = [
    pytest.mark.concurrency,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (make test starts one)"),
]

SECRET = "whsec-worker-0123456789"
VISIBILITY_TIMEOUT = 2  # seconds: a task of a killed worker is delivered again this soon
LINES = 450


@pytest.fixture
def workers(tmp_path, redis_server):
    started: list[CeleryWorker] = []

    def start(name: str) -> CeleryWorker:
        worker = CeleryWorker(
            tmp_path,
            name,
            REDIS_URL=redis_server.url,
            CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT),
            COSTSWITCH_WEBHOOK_SECRET=SECRET,
        )
        started.append(worker)
        worker.start()
        return worker

    start.logs = lambda: "\n".join(f"--- {w.name}\n{w.log_tail()}" for w in started)
    try:
        yield start
    finally:
        for worker in started:
            worker.kill_everything()


@pytest.fixture
def producer(redis_server):
    client = Celery("reconciliation-tests", broker=redis_server.url)
    try:
        yield client
    finally:
        client.close()


def wait_until(condition, what: str, *, timeout: float, logs=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s\n{logs()}"
        time.sleep(0.05)


def test_a_cost_data_delivery_is_reconciled_by_a_real_worker(world, settings, redis_server, workers):
    registry()
    budgets_for(world.org, world.alpha)
    usage_record_many(
        principal=Principal(organization=world.org, org_wide=True),
        reports=[UsageReport(request_id="r-1", cost=Decimal("0.30"), model="gpt-4o", occurred_at=AUG_1)],
    )
    settings.COSTSWITCH_WEBHOOK_SECRET = SECRET
    body = {
        "eventId": "evt-worker-1",
        "organization": world.org.slug,
        "provider": "openai",
        "items": [
            {"requestId": "r-1", "model": "gpt-4o", "cost": Decimal("0.45"), "occurredAt": AUG_1.isoformat()},
            {"requestId": "r-2", "model": "gpt-4o", "cost": Decimal("0.70"), "occurredAt": AUG_1.isoformat()},
        ],
    }
    raw = simplejson.dumps(body, use_decimal=True).encode()
    timestamp = str(int(time.time()))
    worker = workers("web-hook")
    # The web process hands the stored delivery to the real broker (test settings run Celery eagerly).
    saved = {"task_always_eager": app.conf.task_always_eager, "broker_url": app.conf.broker_url}
    app.conf.update(task_always_eager=False, broker_url=redis_server.url)
    try:
        response = APIClient().post(
            "/api/v1/webhooks/cost-data",
            data=raw,
            content_type="application/json",
            HTTP_X_COSTSWITCH_TIMESTAMP=timestamp,
            HTTP_X_COSTSWITCH_SIGNATURE=sign(raw, timestamp, SECRET),
        )
    finally:
        app.conf.update(**saved)
        app.pool.force_close_all()

    assert response.status_code == 202, response.content
    assert InboundWebhook.objects.count() == 1  # stored before it was processed
    wait_until(
        lambda: SyncBatch.objects.filter(status=SyncStatus.PROCESSED).exists(),
        "the batch processed by the worker",
        timeout=60,
        logs=worker.log_tail,
    )
    assert InboundWebhook.objects.get().status == WebhookStatus.PROCESSED
    assert ledger_total(world.org) == Decimal("1.15")
    assert ledger_drift() == []


def _ledger_and_export(org, team) -> list[dict]:
    """LINES request ids: a third match, a third cost more at the provider, a third we never saw;
    plus records the provider never billed."""
    reports, lines = [], []
    for n in range(LINES):
        at = AUG_1 + timedelta(seconds=n)
        if n % 3 != 0:
            reports.append(
                UsageReport(
                    request_id=f"r-{n}", cost=Decimal("0.01"), model="gpt-4o", occurred_at=at, team_id=team.pk
                )
            )
        cost = {0: "0.02", 1: "0.015", 2: "0.01"}[n % 3]
        lines.append({"request_id": f"r-{n}", "model": "gpt-4o", "cost": cost, "occurred_at": at.isoformat()})
    reports += [
        UsageReport(
            request_id=f"extra-{n}",
            cost=Decimal("0.05"),
            model="gpt-4o",
            occurred_at=AUG_1 + timedelta(seconds=n),
            team_id=team.pk,
        )
        for n in range(10)
    ]
    usage_record_many(principal=Principal(organization=org, org_wide=True), reports=reports)
    return lines


def _outcome(batch: SyncBatch) -> dict:
    """What a reconciliation did, in terms that do not depend on row ids or on the organization."""
    batch.refresh_from_db()
    run = batch.run
    run.refresh_from_db()
    org = batch.organization
    discrepancies = sorted(
        (d.kind, d.request_id, d.ours, d.theirs, d.difference, d.adjustment.cost if d.adjustment else None)
        for d in Discrepancy.objects.filter(organization=org).select_related("adjustment")
    )
    adjustments = sorted(
        (u.request_id.startswith("recon-"), u.cost, u.team_id is not None)
        for u in UsageRecord.objects.filter(organization=org, source="adjustment")
    )
    spent = sorted(
        (p.budget.scope_type, p.spent)
        for p in BudgetPeriod.objects.filter(budget__organization=org).select_related("budget")
    )
    counts = (
        run.status,
        run.lines_seen,
        run.lines_matched,
        run.discrepancy_count,
        run.adjusted_count,
        run.adjusted_total,
        run.ours_total,
        run.theirs_total,
        batch.status,
        batch.rows_seen,
        batch.rows_imported,
    )
    return {
        "ledger": ledger_total(org),
        "spent": spent,
        "discrepancies": discrepancies,
        "adjustments": adjustments,
        "counts": counts,
    }


def test_a_worker_killed_mid_batch_ends_as_a_clean_run(world, producer, workers):
    registry()
    budgets_for(world.org, world.alpha)
    budgets_for(world.other_org, world.other_team)
    export = _ledger_and_export(world.org, world.alpha)
    assert _ledger_and_export(world.other_org, world.other_team) == export

    # The clean run: the same export, the same ledger, in another organization, straight through.
    clean = sync_batch_create(
        organization=world.other_org, provider="openai", source="upload", content=export, enqueue=False
    )
    sync_batch_process(batch_id=clean.pk)

    batch = sync_batch_create(
        organization=world.org, provider="openai", source="upload", content=export, enqueue=False
    )
    first = workers("first")
    producer.send_task("analytics.tasks.process_sync_batch", args=[batch.pk])
    wait_until(
        lambda: Discrepancy.objects.filter(run_id=batch.run_id).count() >= 30,
        "the batch half-way",
        timeout=90,
        logs=first.log_tail,
    )
    first.kill_everything()
    done_before_kill = Discrepancy.objects.filter(run_id=batch.run_id).count()
    batch.refresh_from_db()
    assert batch.status == SyncStatus.RECEIVED, "the batch finished before the worker was killed"
    assert 30 <= done_before_kill < LINES * 2 // 3

    time.sleep(VISIBILITY_TIMEOUT + 0.5)
    second = workers("second")
    wait_until(
        lambda: SyncBatch.objects.get(pk=batch.pk).status == SyncStatus.PROCESSED,
        "the redelivered batch",
        timeout=120,
        logs=second.log_tail,
    )

    killed, straight = _outcome(batch), _outcome(clean)
    assert killed == straight
    assert killed["counts"][0] == RunStatus.SUCCEEDED
    assert len(killed["discrepancies"]) == LINES * 2 // 3 + 10
    assert ledger_drift() == []
