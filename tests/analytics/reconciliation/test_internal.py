"""Internal reconciliation: open periods' cached spent/reserved recomputed from the ledger."""

import threading
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.utils import timezone

from analytics.models import Discrepancy, DiscrepancyKind, DiscrepancyStatus, RunKind
from analytics.reconciliation.internal import ledger_reconcile, ledger_reconcile_all
from budgets.models import BudgetPeriod
from budgets.principals import Principal
from budgets.selectors import ledger_drift
from budgets.services.ledger import UsageReport, reservation_authorize, usage_record_many
from tests.analytics.factories import budgets_for, charge, registry


@pytest.fixture
def acme(world):
    registry()
    budgets_for(world.org, world.alpha)
    return world


def test_drifted_aggregates_are_recorded_and_set_back_to_the_ledger(acme):
    charge(acme.org, "r-1", "0.40", team=acme.alpha, at=timezone.now())
    reservation_authorize(
        principal=Principal(organization=acme.org, team=acme.alpha, org_wide=True),
        request_id="h-1",
        amount=Decimal("2"),
    )
    team_period = BudgetPeriod.objects.get(budget__team=acme.alpha)
    org_period = BudgetPeriod.objects.get(budget__scope_type="organization")
    BudgetPeriod.objects.filter(pk=team_period.pk).update(spent=Decimal("9"))
    BudgetPeriod.objects.filter(pk=org_period.pk).update(reserved=Decimal("0.5"))

    run = ledger_reconcile(organization=acme.org)

    assert (run.kind, run.lines_seen, run.discrepancy_count, run.lines_matched) == (RunKind.INTERNAL, 2, 2, 0)
    reserved, spent = sorted(run.discrepancies.all(), key=lambda d: d.details["field"])
    assert (spent.kind, spent.period, spent.details["field"]) == (DiscrepancyKind.DRIFT, team_period, "spent")
    assert (spent.ours, spent.theirs, spent.difference) == (Decimal("9"), Decimal("0.40"), Decimal("-8.60"))
    assert (reserved.period, reserved.details["field"]) == (org_period, "reserved")
    assert (reserved.ours, reserved.theirs) == (Decimal("0.5"), Decimal("2"))
    assert {spent.status, reserved.status} == {DiscrepancyStatus.RESOLVED}
    team_period.refresh_from_db()
    org_period.refresh_from_db()
    assert (team_period.spent, org_period.reserved) == (Decimal("0.40"), Decimal("2"))
    assert ledger_drift() == []

    again = ledger_reconcile(organization=acme.org)
    assert again.discrepancy_count == 0 and again.lines_matched == 2


def test_closed_periods_and_other_organizations_are_left_alone(acme):
    charge(acme.org, "r-1", "0.40", team=acme.alpha, at=timezone.now())
    budgets_for(acme.other_org)
    charge(acme.other_org, "x-1", "0.10", at=timezone.now())
    closed = BudgetPeriod.objects.get(budget__team=acme.alpha)
    BudgetPeriod.objects.filter(pk=closed.pk).update(spent=Decimal("7"), closed_at=timezone.now())
    other = BudgetPeriod.objects.get(budget__organization=acme.other_org)
    BudgetPeriod.objects.filter(pk=other.pk).update(spent=Decimal("3"))

    run = ledger_reconcile(organization=acme.org)

    assert run.discrepancy_count == 0
    closed.refresh_from_db()
    assert closed.spent == Decimal("7")
    runs = ledger_reconcile_all()
    assert {r.organization_id: r.discrepancy_count for r in runs} == {acme.org.pk: 0, acme.other_org.pk: 1}


def test_a_redelivered_task_continues_its_own_run(acme):
    charge(acme.org, "r-1", "0.40", team=acme.alpha, at=timezone.now())
    BudgetPeriod.objects.filter(budget__team=acme.alpha).update(spent=Decimal("1"))

    first = ledger_reconcile(organization=acme.org, task_key="celery:abc")
    second = ledger_reconcile(organization=acme.org, task_key="celery:abc")

    assert first.pk == second.pk and second.discrepancy_count == 1
    assert Discrepancy.objects.count() == 1


@pytest.mark.concurrency
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks need PostgreSQL (make test starts one)"
)
def test_reconciling_while_traffic_flows_never_sees_drift_or_loses_a_charge(acme):
    """Writers charge the same periods while the reconciler recomputes them over and over: a
    reconciler that read without the period lock would see a charge half-written and "fix" it away."""
    principal = Principal(organization=acme.org, team=acme.alpha, org_wide=True)
    stop = threading.Event()
    errors: list[BaseException] = []
    per_writer = 60

    def write(writer: int) -> None:
        try:
            for n in range(per_writer):
                report = UsageReport(
                    request_id=f"w{writer}-{n}", cost=Decimal("0.01"), model="gpt-4o", team_id=acme.alpha.pk
                )
                usage_record_many(principal=principal, reports=[report])
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connections.close_all()

    def reconcile_loop() -> None:
        try:
            while not stop.is_set():
                ledger_reconcile(organization=acme.org)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    charge(acme.org, "warm-up", "0.01", team=acme.alpha, at=timezone.now())  # the periods exist
    reconciler = threading.Thread(target=reconcile_loop)
    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    reconciler.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join(timeout=120)
    stop.set()
    reconciler.join(timeout=120)

    assert errors == []
    assert not Discrepancy.objects.filter(kind=DiscrepancyKind.DRIFT).exists()
    expected = Decimal("0.01") * (4 * per_writer + 1)
    assert {p.spent for p in BudgetPeriod.objects.all()} == {expected}
    assert ledger_drift() == []
