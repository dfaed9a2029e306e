"""Notifications: who hears about a budget event (defaults and per-budget subscriptions), what the
email says, the in-app inbox, and the subscription API's access rules."""

import hashlib
import hmac
import json
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import count

import pytest
from django.core import mail

from approvals.models import InboxEntry, Notification, NotificationDelivery, NotificationSubscription
from approvals.notifications import delivery_attempt, notify
from budgets.models import Alert
from budgets.principals import principal_for_user
from budgets.services.budgets import ThresholdSpec
from budgets.services.ledger import UsageReport, usage_record_many
from tests.budgets.factories import BudgetFactory, team_budget
from tests.conftest import client_for

_ids = count()
SECRET = "a-webhook-secret-of-some-length"


def spend(world, amount, *, team=None) -> None:
    usage_record_many(
        principal=principal_for_user(world.fiona),
        reports=[
            UsageReport(
                request_id=f"notify-spend-{next(_ids)}",
                cost=Decimal(amount),
                model="m",
                team_id=(team or world.alpha).pk,
            )
        ],
    )


def fifty():
    return [ThresholdSpec(Decimal(50), ("notify",)), ThresholdSpec(Decimal(80), ("notify", "prefer-cheaper"))]


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run on-commit work (alert announcements, deliveries) as a real commit would."""

    def run(action, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return action(*args, **kwargs)

    return run


def test_a_team_budget_without_subscriptions_notifies_its_team_leads_in_app_and_by_email(world, committed):
    budget = team_budget(world.alpha, name="Alpha monthly", limit=Decimal("200"), thresholds=fifty())

    committed(spend, world, "120")

    [notification] = Notification.objects.filter(budget=budget)
    alert = Alert.objects.get(budget=budget)
    assert (notification.event, notification.key) == ("threshold_crossed", f"alert:{alert.pk}")
    assert list(InboxEntry.objects.values_list("user__username", flat=True)) == ["alice"]
    [email] = mail.outbox
    assert email.to == ["alice@example.com"]
    assert email.subject == "Alpha monthly: 50% of the budget used"
    assert (
        "Budget 'Alpha monthly' has reached 50% of its limit (60% spent or reserved of 200 USD)" in email.body
    )
    assert "Threshold: 50.00%" in email.body
    assert "Budget: Alpha monthly (Team Alpha)" in email.body
    delivery = NotificationDelivery.objects.get(channel="email")
    assert (delivery.status, delivery.attempts, delivery.target) == ("sent", 1, "alice@example.com")


def test_an_organization_budget_notifies_finance_and_admins(world, committed):
    BudgetFactory(organization=world.org, limit=Decimal("100"), thresholds=fifty())

    committed(spend, world, "90")  # 50% and 80% crossed at once: two alerts, two notifications

    assert sorted(m.subject.split(": ", 1)[1] for m in mail.outbox) == [
        "50% of the budget used",
        "80% of the budget used",
    ]
    assert {tuple(m.to) for m in mail.outbox} == {("fiona@example.com",)}


def test_a_threshold_without_the_notify_action_raises_an_alert_but_tells_nobody(world, committed):
    budget = team_budget(
        world.alpha, limit=Decimal("100"), thresholds=[ThresholdSpec(Decimal(50), ("prefer-cheaper",))]
    )

    committed(spend, world, "60")

    assert Alert.objects.filter(budget=budget).count() == 1
    assert not Notification.objects.exists()
    assert mail.outbox == []


def test_per_budget_subscriptions_choose_recipients_channels_and_events(world, committed):
    budget = team_budget(world.alpha, limit=Decimal("100"), thresholds=fifty())
    response = client_for(world.alice).put(
        f"/api/v1/budgets/{budget.pk}/notifications",
        {
            "subscriptions": [
                {"channel": "email", "userId": world.bob.pk, "events": ["budget_exhausted"]},
                {"channel": "in_app", "userId": world.bob.pk},
                {"channel": "email", "userId": world.fiona.pk, "events": ["threshold_crossed"]},
            ]
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["usingDefaults"] is False

    committed(spend, world, "60")

    assert [m.to for m in mail.outbox] == [["fiona@example.com"]]  # alice (the default) is not told
    assert list(InboxEntry.objects.values_list("user__username", flat=True)) == ["bob"]
    committed(spend, world, "50")  # 80% and exhausted
    assert sorted(tuple(m.to) for m in mail.outbox) == [
        ("bob@example.com",),
        ("fiona@example.com",),
        ("fiona@example.com",),
    ]


def test_the_subscription_api_is_for_budget_owners_and_checks_recipients(world):
    budget = team_budget(world.alpha, limit=Decimal("100"))
    url = f"/api/v1/budgets/{budget.pk}/notifications"
    body = {"subscriptions": [{"channel": "email", "userId": world.bob.pk}]}

    assert client_for(world.bob).get(url).status_code == 403  # a member reads the budget, owns nothing
    assert client_for(world.bob).put(url, body, format="json").status_code == 403
    assert client_for(world.omar).get(url).status_code == 404
    assert client_for(world.carol).put(url, body, format="json").status_code == 404

    defaults = client_for(world.alice).get(url).json()
    assert defaults["usingDefaults"] is True
    assert [r["username"] for r in defaults["defaultRecipients"]] == ["alice"]

    def put(subscriptions):
        return client_for(world.fiona).put(url, {"subscriptions": subscriptions}, format="json")

    refused = put([{"channel": "email", "userId": world.carol.pk}])  # carol cannot see alpha's budget
    assert (refused.status_code, refused.json()["code"]) == (400, "recipient_cannot_see_budget")
    outsider = put([{"channel": "email", "userId": world.omar.pk}])
    assert (outsider.status_code, outsider.json()["code"]) == (400, "unknown_user")
    unsigned = put([{"channel": "webhook", "url": "https://hooks.example.com/x"}])
    assert (unsigned.status_code, unsigned.json()["code"]) == (400, "secret_required")
    mixed = put([{"channel": "email", "url": "https://hooks.example.com/x"}])
    assert mixed.status_code == 400 and mixed.json()["message"].startswith("subscriptions[0].")
    assert not NotificationSubscription.objects.exists()

    hook = {"channel": "webhook", "url": "https://hooks.example.com/x", "events": ["budget_exhausted"]}
    assert put([{**hook, "secret": SECRET}]).status_code == 200
    kept = put([hook]).json()  # the secret is never shown; leaving it out keeps it
    assert kept["subscriptions"][0]["hasSecret"] is True
    assert "secret" not in kept["subscriptions"][0]
    assert NotificationSubscription.objects.get().secret == SECRET
    assert put([]).json()["usingDefaults"] is True


def test_the_inbox_lists_the_callers_notifications_and_marks_them_read(world, committed):
    budget = team_budget(world.alpha, limit=Decimal("100"), thresholds=fifty())
    committed(spend, world, "60")
    [entry] = InboxEntry.objects.all()

    alice = client_for(world.alice)
    listed = alice.get("/api/v1/notifications?unread=true").json()["results"]
    assert [(n["id"], n["event"], n["budgetId"], n["read"]) for n in listed] == [
        (entry.pk, "threshold_crossed", budget.pk, False)
    ]
    assert client_for(world.bob).get("/api/v1/notifications").json()["results"] == []
    assert client_for(world.bob).post(f"/api/v1/notifications/{entry.pk}/read").status_code == 404

    read = alice.post(f"/api/v1/notifications/{entry.pk}/read")
    assert read.status_code == 200 and read.json()["read"] is True
    assert alice.get("/api/v1/notifications?unread=true").json()["results"] == []
    assert alice.post(f"/api/v1/notifications/{entry.pk}/read").json()["readAt"] == read.json()["readAt"]


def test_notify_with_a_key_tells_once(world, committed):
    budget = team_budget(world.alpha, limit=Decimal("100"))

    first = committed(
        notify, event="override_requested", budget=budget, subject="s", body="b", key="override:1"
    )
    again = committed(
        notify, event="override_requested", budget=budget, subject="s", body="b", key="override:1"
    )

    assert first.pk == again.pk
    assert len(mail.outbox) == 1


class _Hook(BaseHTTPRequestHandler):
    """Answers 500 to the first `failures` requests, then 200; records every request."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        server = self.server
        server.requests.append((dict(self.headers), body))
        self.send_response(500 if len(server.requests) <= server.failures else 200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def hook_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.requests, server.failures = [], 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def verify(headers: dict, body: bytes, secret: str = SECRET) -> bool:
    expected = hmac.new(
        secret.encode(), f"{headers['X-Costswitch-Timestamp']}.".encode() + body, hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(headers["X-Costswitch-Signature"], "sha256=" + expected)


def test_a_webhook_delivery_is_signed_slack_compatible_and_retried_with_backoff(
    world, hook_server, time_machine
):
    budget = team_budget(world.alpha, name="Alpha", limit=Decimal("100"))
    NotificationSubscription.objects.create(
        budget=budget,
        channel="webhook",
        url=f"http://127.0.0.1:{hook_server.server_port}/hook",
        secret=SECRET,
    )
    hook_server.failures = 1
    notification = notify(
        event="budget_exhausted", budget=budget, subject="Alpha: exhausted", body="No money left."
    )
    delivery = NotificationDelivery.objects.get(notification=notification)

    assert delivery_attempt(delivery_id=delivery.pk) == 30.0  # failed: try again in 30 s
    assert delivery_attempt(delivery_id=delivery.pk) is None  # not due yet: nothing is sent
    assert len(hook_server.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 1, 500)

    time_machine.move_to(delivery.next_attempt_at)
    assert delivery_attempt(delivery_id=delivery.pk) is None
    assert delivery_attempt(delivery_id=delivery.pk) is None  # sent: never again
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("sent", 2, 200)
    assert len(hook_server.requests) == 2

    headers, body = hook_server.requests[-1]
    assert verify(headers, body)
    payload = json.loads(body)
    assert payload["event"] == "budget_exhausted"
    assert payload["text"] == "*Alpha: exhausted*\nNo money left."
    assert payload["budget"] == {
        "id": budget.pk,
        "name": "Alpha",
        "scopeType": "team",
        "scopeId": world.alpha.pk,
        "organizationId": world.org.pk,
    }


def test_a_webhook_that_keeps_failing_is_given_up_after_the_last_attempt(
    world, hook_server, settings, time_machine
):
    settings.COSTSWITCH_NOTIFY_MAX_ATTEMPTS = 3
    budget = team_budget(world.alpha, limit=Decimal("100"))
    NotificationSubscription.objects.create(
        budget=budget, channel="webhook", url=f"http://127.0.0.1:{hook_server.server_port}/", secret=SECRET
    )
    hook_server.failures = 100
    delivery = NotificationDelivery.objects.get(
        notification=notify(event="budget_exhausted", budget=budget, subject="s", body="b")
    )

    waits = []
    for _ in range(3):
        waits.append(delivery_attempt(delivery_id=delivery.pk))
        delivery.refresh_from_db()
        if delivery.next_attempt_at:
            time_machine.move_to(delivery.next_attempt_at)

    assert waits == [30.0, 60.0, None]
    assert (delivery.status, delivery.attempts) == ("gave_up", 3)
    assert "HTTP 500" in delivery.last_error
    assert delivery_attempt(delivery_id=delivery.pk) is None
    assert len(hook_server.requests) == 3


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "10.1.2.3", "169.254.169.254", "[::1]", "192.168.0.10"]
)
def test_a_webhook_to_an_internal_address_is_refused_without_a_request(world, hook_server, settings, host):
    """Budget owners choose webhook URLs: they must not reach the metadata service or the private
    network through the worker."""
    settings.COSTSWITCH_NOTIFY_ALLOW_PRIVATE_HOSTS = False
    budget = team_budget(world.alpha, limit=Decimal("100"))
    port = hook_server.server_port
    NotificationSubscription.objects.create(
        budget=budget, channel="webhook", url=f"http://{host}:{port}/hook", secret=SECRET
    )
    delivery = NotificationDelivery.objects.get(
        notification=notify(event="budget_exhausted", budget=budget, subject="s", body="b")
    )

    assert delivery_attempt(delivery_id=delivery.pk) is None
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("gave_up", 1)
    assert "not a public address" in delivery.last_error
    assert hook_server.requests == []
