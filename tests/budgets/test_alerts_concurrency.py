"""200 concurrent requests (4 OS processes x 50 clients, 8 threads each) cross one threshold on
real PostgreSQL: exactly one alert is raised and exactly one notification is sent for it."""

import multiprocessing
import traceback
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from django.db import connection, connections

from approvals.models import InboxEntry, Notification, NotificationDelivery
from budgets.models import Alert, ApiKey, BudgetPeriod
from budgets.principals import principal_for_api_key
from budgets.services.budgets import ThresholdSpec
from budgets.services.ledger import UsageReport, reservation_authorize, reservation_settle
from tests.budgets.factories import make_api_key, team_budget

PROCESSES = 4
CLIENTS_PER_PROCESS = 50
THREADS_PER_PROCESS = 8

pytestmark = [
    pytest.mark.concurrency,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (make test starts one)"),
]


def _client(api_key_id: int, seed: int) -> str:
    """Authorize 1 and settle it at 1: every client moves the budget by exactly one."""
    try:
        principal = principal_for_api_key(
            ApiKey.objects.select_related("organization", "team").get(pk=api_key_id)
        )
        reservation = reservation_authorize(
            principal=principal, request_id=f"cross-{seed}", amount=Decimal("1")
        ).reservation
        reservation_settle(
            principal=principal,
            reservation_id=reservation.pk,
            report=UsageReport(request_id=reservation.request_id, cost=Decimal("1"), model="m"),
        )
        return "settled"
    except Exception:
        return "error: " + traceback.format_exc()
    finally:
        connection.close()


def _process(api_key_id: int, process_index: int, results) -> None:
    seeds = [process_index * 1000 + n for n in range(CLIENTS_PER_PROCESS)]
    with ThreadPoolExecutor(max_workers=THREADS_PER_PROCESS) as pool:
        results.put(list(pool.map(lambda seed: _client(api_key_id, seed), seeds)))


def test_a_threshold_crossed_by_200_concurrent_requests_raises_one_alert_and_one_notification(world):
    # 200 requests of 1 on a limit of 250: the 125th committed unit crosses 50%, once.
    budget = team_budget(
        world.alpha, limit=Decimal("250"), thresholds=[ThresholdSpec(Decimal(50), ("notify",))]
    )
    api_key, _ = make_api_key(team=world.alpha)

    connections.close_all()  # children open their own connections
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [
        context.Process(target=_process, args=(api_key.pk, index, results)) for index in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    outcomes = [outcome for _ in processes for outcome in results.get(timeout=240)]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    errors = [outcome for outcome in outcomes if outcome.startswith("error")]
    assert not errors, f"{len(errors)} clients failed, first: {errors[0] if errors else None}"
    assert outcomes.count("settled") == PROCESSES * CLIENTS_PER_PROCESS
    assert BudgetPeriod.objects.get(budget=budget).spent == Decimal(200)

    [alert] = Alert.objects.filter(budget=budget)
    assert (alert.kind, alert.threshold) == ("threshold", Decimal(50))
    assert alert.percent_used == Decimal(50)  # raised by the very request that crossed it
    [notification] = Notification.objects.filter(budget=budget)
    assert (notification.event, notification.key) == ("threshold_crossed", f"alert:{alert.pk}")
    # alice leads alpha: the default recipient, in-app and by email, once each.
    assert list(InboxEntry.objects.values_list("user__username", flat=True)) == ["alice"]
    deliveries = NotificationDelivery.objects.filter(notification=notification)
    assert sorted(deliveries.values_list("channel", "target", "status", "attempts")) == [
        ("email", "alice@example.com", "sent", 1),
        ("in_app", str(world.alice.pk), "sent", 1),
    ]
