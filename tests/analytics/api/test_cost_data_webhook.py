"""`POST /api/v1/webhooks/cost-data`: signed provider usage, stored raw, reconciled by the worker.

Malformed, oversized, unsigned and replayed deliveries are refused and store nothing; a re-sent
event is acknowledged as a duplicate; a delivery that cannot be processed stays stored (failed,
with the reason) and one that was never processed is picked up again by the sweep. Nothing is
ever counted twice."""

import time
from datetime import timedelta
from decimal import Decimal

import pytest
import simplejson
from django.utils import timezone
from rest_framework.test import APIClient

from analytics.models import SyncBatch
from budgets.choices import UsageSource
from budgets.models import UsageRecord
from budgets.selectors import ledger_drift
from costswitch.models import InboundWebhook, WebhookStatus
from costswitch.webhooks import sign, webhooks_requeue_stuck
from tests.analytics.factories import AUG_1, budgets_for, charge, ledger_total, registry

URL = "/api/v1/webhooks/cost-data"
SECRET = "whsec-cost-data-0123456789"


@pytest.fixture(autouse=True)
def secret(settings):
    settings.COSTSWITCH_WEBHOOK_SECRET = SECRET


@pytest.fixture
def acme(world):
    registry()
    budgets_for(world.org, world.alpha)
    charge(world.org, "r-1", "0.30", team=world.alpha)
    return world


def event(event_id: str = "evt_1", **overrides) -> dict:
    body = {
        "eventId": event_id,
        "organization": "acme",
        "provider": "openai",
        "items": [
            {"requestId": "r-1", "model": "gpt-4o", "cost": Decimal("0.45"), "occurredAt": AUG_1.isoformat()},
            {"requestId": "r-9", "model": "gpt-4o", "cost": Decimal("0.70"), "occurredAt": AUG_1.isoformat()},
        ],
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def deliver(body, *, timestamp=None, signature=None, headers: dict | None = None):
    raw = body if isinstance(body, bytes) else simplejson.dumps(body, use_decimal=True).encode()
    timestamp = str(int(time.time())) if timestamp is None else str(timestamp)
    signature = sign(raw, timestamp, SECRET) if signature is None else signature
    sent = {"HTTP_X_COSTSWITCH_TIMESTAMP": timestamp, "HTTP_X_COSTSWITCH_SIGNATURE": signature}
    return APIClient().post(
        URL, data=raw, content_type="application/json", **(sent if headers is None else headers)
    )


def refused(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content
    assert (response.json()["status"], response.json()["code"]) == (status, code)
    assert not InboundWebhook.objects.exists() and not SyncBatch.objects.exists()


def test_a_delivery_is_stored_raw_then_reconciled(acme, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = deliver(event())

    assert response.status_code == 202, response.content
    assert response.json() == {"eventId": "evt_1", "status": "received"}
    assert callbacks  # processing happens after the delivery is committed
    webhook = InboundWebhook.objects.get()
    assert simplejson.loads(webhook.body)["eventId"] == "evt_1"  # the raw bytes as signed
    assert webhook.status == WebhookStatus.PROCESSED
    batch = SyncBatch.objects.get()
    assert webhook.result == {"batch_id": batch.pk, "run_id": batch.run_id}
    assert (batch.source, batch.inbound_webhook, batch.status, batch.raw) == (
        "webhook",
        webhook,
        "processed",
        "",
    )
    assert batch.run.discrepancies.count() == 2
    assert ledger_total(acme.org) == Decimal("1.15")
    assert ledger_drift() == []


def test_a_resent_event_is_a_duplicate_and_counts_once(acme, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        deliver(event())
    time.sleep(1)  # a sender retry a second later: a fresh timestamp, so a fresh signature
    with django_capture_on_commit_callbacks(execute=True):
        again = deliver(event())

    assert again.status_code == 202 and again.json()["status"] == "duplicate"
    assert InboundWebhook.objects.count() == 1 and SyncBatch.objects.count() == 1
    assert ledger_total(acme.org) == Decimal("1.15")


def test_the_same_event_under_a_new_id_changes_nothing_more(acme, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        deliver(event("evt_1"))
        deliver(event("evt_2"))

    assert SyncBatch.objects.count() == 2
    assert ledger_total(acme.org) == Decimal("1.15")
    assert UsageRecord.objects.filter(source=UsageSource.ADJUSTMENT).count() == 2


def test_a_replayed_delivery_is_refused(acme, django_capture_on_commit_callbacks):
    raw = simplejson.dumps(event(), use_decimal=True).encode()
    timestamp = str(int(time.time()))
    with django_capture_on_commit_callbacks(execute=True):
        deliver(raw, timestamp=timestamp)
    replay = deliver(raw, timestamp=timestamp)

    assert replay.status_code == 409 and replay.json()["code"] == "webhook_replayed"
    assert InboundWebhook.objects.count() == 1
    assert ledger_total(acme.org) == Decimal("1.15")


def test_unsigned_and_badly_signed_deliveries_are_refused(acme):
    refused(deliver(event(), headers={}), 401, "signature_missing")
    refused(deliver(event(), signature="sha256=" + "0" * 64), 401, "signature_invalid")
    refused(deliver(event(), timestamp=int(time.time()) - 3600), 401, "timestamp_out_of_tolerance")


def test_an_oversized_delivery_is_refused_before_it_is_read(acme, settings):
    settings.COSTSWITCH_WEBHOOK_MAX_BYTES = 200
    refused(deliver(event()), 413, "payload_too_large")


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "parse_error"),
        ([1, 2], "validation_error"),
        (event(eventId=None), "validation_error"),
        (event(organization=None), "cost_data_invalid"),
        (event(organization="nobody"), "unknown_organization"),
        (event(provider="acme-ai"), "unknown_provider"),
        (event(items=None), "cost_data_invalid"),
        (event(report={"data": []}), "cost_data_invalid"),
        (event(items=[{"model": "gpt-4o"}]), "no_usable_lines"),
        (event(items=None, report={"object": "page"}), "parse_error"),
    ],
)
def test_a_malformed_delivery_is_refused_and_stores_nothing(acme, body, code):
    refused(deliver(body), 400, code)
    assert ledger_total(acme.org) == Decimal("0.30")


def test_a_delivery_that_cannot_be_processed_stays_stored_with_the_reason(
    acme, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert deliver(event()).status_code == 202
    # Between receipt and processing the organization's slug changed: the event no longer applies.
    acme.org.slug = "acme-renamed"
    acme.org.save()
    for callback in callbacks:
        callback()

    webhook = InboundWebhook.objects.get()
    assert webhook.status == WebhookStatus.FAILED
    assert "unknown_organization" in webhook.error
    assert webhook.body and not SyncBatch.objects.exists()
    assert ledger_total(acme.org) == Decimal("0.30")


def test_a_delivery_never_processed_is_picked_up_by_the_sweep(acme, django_capture_on_commit_callbacks):
    # The broker was down: the delivery was stored, but its task never ran.
    with django_capture_on_commit_callbacks(execute=False):
        assert deliver(event()).status_code == 202
    webhook = InboundWebhook.objects.get()
    assert webhook.status == WebhookStatus.RECEIVED

    assert webhooks_requeue_stuck() == 0  # too recent: it may still be on its way
    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks_requeue_stuck(now=timezone.now() + timedelta(minutes=10)) == 1

    webhook.refresh_from_db()
    assert webhook.status == WebhookStatus.PROCESSED
    assert ledger_total(acme.org) == Decimal("1.15")
    # Sweeping again finds nothing, and processing again applies nothing.
    assert webhooks_requeue_stuck(now=timezone.now() + timedelta(minutes=10)) == 0
    assert ledger_total(acme.org) == Decimal("1.15")
