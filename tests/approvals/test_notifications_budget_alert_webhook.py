"""POST /api/v1/webhooks/budget-alert: an external system's alert, signed, stored raw, raised as an
`external` alert by the worker and notified to the budget's owners once."""

import json
import time
from decimal import Decimal

import pytest
from django.core import mail
from rest_framework.test import APIClient

from approvals.models import InboxEntry, Notification
from budgets.models import Alert
from costswitch.models import InboundWebhook
from costswitch.webhooks import sign
from tests.budgets.factories import team_budget

SECRET = "inbound-webhook-secret"
URL = "/api/v1/webhooks/budget-alert"


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.COSTSWITCH_WEBHOOK_SECRET = SECRET


def post(payload: dict, *, secret: str = SECRET, timestamp: int | None = None):
    body = json.dumps(payload).encode()
    timestamp = str(timestamp or int(time.time()))
    return APIClient().post(
        URL,
        data=body,
        content_type="application/json",
        HTTP_X_COSTSWITCH_TIMESTAMP=timestamp,
        HTTP_X_COSTSWITCH_SIGNATURE=sign(body, timestamp, secret),
    )


def test_an_external_alert_is_stored_raised_and_notified_once(world, django_capture_on_commit_callbacks):
    budget = team_budget(world.alpha, name="Alpha", limit=Decimal("100"))
    payload = {
        "eventId": "dd-1",
        "budgetId": budget.pk,
        "source": "datadog",
        "severity": "critical",
        "message": "Token spend on the alpha cluster tripled in an hour.",
        "data": {"monitorId": 42},
    }

    sent_at = int(time.time())
    with django_capture_on_commit_callbacks(execute=True):
        response = post(payload, timestamp=sent_at)
    assert response.status_code == 202, response.content
    assert response.json() == {"eventId": "dd-1", "status": "received"}

    [alert] = Alert.objects.filter(budget=budget)
    assert (alert.kind, alert.threshold, alert.message) == ("external", None, payload["message"])
    assert alert.data == {
        "source": "datadog",
        "severity": "critical",
        "event_id": "dd-1",
        "data": {"monitor_id": 42},
    }
    assert InboundWebhook.objects.get(endpoint="budget-alert").status == "processed"
    [notification] = Notification.objects.all()
    assert (notification.event, notification.subject) == ("external_alert", "Alpha: alert from datadog")
    assert list(InboxEntry.objects.values_list("user__username", flat=True)) == ["alice"]
    assert [m.to for m in mail.outbox] == [["alice@example.com"]]

    with django_capture_on_commit_callbacks(execute=True):
        replayed = post(payload, timestamp=sent_at)  # the same signed request again
        again = post(payload, timestamp=sent_at - 2)  # a sender retry, signed afresh
    assert (replayed.status_code, replayed.json()["code"]) == (409, "webhook_replayed")
    assert again.json() == {"eventId": "dd-1", "status": "duplicate"}
    assert Alert.objects.count() == 1 and Notification.objects.count() == 1


def test_a_bad_delivery_is_refused_before_anything_is_stored(world):
    budget = team_budget(world.alpha, limit=Decimal("100"))
    good = {"eventId": "x-1", "budgetId": budget.pk, "message": "m"}

    unknown = post({**good, "budgetId": 999999})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "unknown_budget")
    assert post({**good, "message": ""}).status_code == 400
    assert post({**good, "severity": "panic"}).json()["code"] == "invalid_severity"
    forged = post(good, secret="not-the-secret")
    assert (forged.status_code, forged.json()["code"]) == (401, "signature_invalid")
    assert not InboundWebhook.objects.exists()
    assert not Alert.objects.exists()
