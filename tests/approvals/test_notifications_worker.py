"""A real Celery worker (prefork, Redis broker) raises a missed threshold alert and delivers its
webhook to a real HTTP server on 127.0.0.1 that fails twice: the retries back off, the third try
is sent, signed, and nothing is sent again when the tasks are delivered again."""

import threading
import time
from datetime import timedelta
from decimal import Decimal
from http.server import ThreadingHTTPServer

import pytest
from celery import Celery
from django.db import connection

from approvals.models import Notification, NotificationDelivery, NotificationSubscription
from budgets.models import Alert
from budgets.principals import principal_for_user
from budgets.services.budgets import ThresholdSpec, budget_update
from tests.approvals.test_notifications import SECRET, _Hook, spend, verify
from tests.budgets.factories import team_budget
from tests.processes import CeleryWorker

pytestmark = [
    pytest.mark.concurrency,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (make test starts one)"),
]


@pytest.fixture
def hook_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.requests, server.failures = [], 2
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _wait_until(condition, what: str, worker: CeleryWorker, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout} s\n{worker.log_tail()}"
        time.sleep(0.1)


def test_the_worker_raises_the_alert_and_delivers_its_webhook_after_two_failures_once(
    world, redis_server, hook_server, tmp_path
):
    budget = team_budget(
        world.alpha, limit=Decimal("100"), thresholds=[ThresholdSpec(Decimal(90), ("notify",))]
    )
    spend(world, "60")
    # A 50% threshold added afterwards: no request crosses it, the worker's sweep finds it.
    budget_update(
        principal=principal_for_user(world.fiona),
        budget=budget,
        thresholds=[ThresholdSpec(Decimal(50), ("notify",)), ThresholdSpec(Decimal(90), ("notify",))],
    )
    url = f"http://127.0.0.1:{hook_server.server_port}/slack"
    NotificationSubscription.objects.create(budget=budget, channel="webhook", url=url, secret=SECRET)
    assert not Alert.objects.exists()

    worker = CeleryWorker(
        tmp_path,
        "notify",
        REDIS_URL=redis_server.url,
        COSTSWITCH_NOTIFY_RETRY_SECONDS="0.5",
        COSTSWITCH_NOTIFY_ALLOW_PRIVATE_HOSTS="1",
    )
    producer = Celery("notification-tests", broker=redis_server.url, set_as_current=False)
    try:
        worker.start()
        producer.send_task("budgets.tasks.raise_threshold_alerts")

        def sent() -> bool:
            return NotificationDelivery.objects.filter(status="sent").exists()

        _wait_until(sent, "the webhook delivery", worker)
        delivery = NotificationDelivery.objects.get()
        assert (delivery.channel, delivery.target, delivery.attempts) == ("webhook", url, 3)
        assert delivery.response_code == 200 and delivery.last_error == ""
        assert len(hook_server.requests) == 3
        # Backed off: 0.5 s, then 1 s between the tries.
        assert delivery.sent_at - delivery.created_at >= timedelta(seconds=1.4)

        # Everything delivered again (a redelivered message, a second sweep): nothing new is sent.
        again = [
            producer.send_task("approvals.tasks_notifications.deliver_notification", args=[delivery.pk]),
            producer.send_task("budgets.tasks.raise_threshold_alerts"),
        ]
        _wait_until(
            lambda: all(f"{result.id}] succeeded" in worker.log_path.read_text() for result in again),
            "the repeated tasks",
            worker,
        )
    finally:
        worker.kill_everything()
        producer.close()

    assert len(hook_server.requests) == 3
    assert Alert.objects.count() == 1 and Notification.objects.count() == 1
    for headers, body in hook_server.requests:
        assert verify(headers, body)
        assert headers["X-Costswitch-Event"] == "threshold_crossed"
    assert b'"text": "*' in hook_server.requests[-1][1]
