"""`manage.py expire_reservations`: the expiry sweep once, by hand; `--dry-run` changes nothing."""

import json
from datetime import timedelta
from decimal import Decimal
from io import StringIO

from django.core.management import call_command

from budgets.choices import ReservationState
from budgets.models import BudgetPeriod
from budgets.principals import principal_for_user
from budgets.services.ledger import reservation_authorize
from tests.budgets.factories import team_budget


def run(*args: str) -> str:
    out = StringIO()
    call_command("expire_reservations", *args, stdout=out)
    return out.getvalue().strip()


def test_it_expires_due_reservations_and_a_dry_run_changes_nothing(world, time_machine):
    budget = team_budget(world.alpha, limit=Decimal("10"), thresholds=[])
    time_machine.move_to("2026-03-10T12:00:00Z", tick=False)
    due = reservation_authorize(
        principal=principal_for_user(world.bob), request_id="due", amount=Decimal("2"), ttl_seconds=60
    ).reservation
    reservation_authorize(
        principal=principal_for_user(world.bob), request_id="later", amount=Decimal("3"), ttl_seconds=600
    )
    time_machine.shift(timedelta(seconds=61))

    assert run("--dry-run") == 'dry run, nothing changed: {"expired": 1}'
    due.refresh_from_db()
    assert due.state == ReservationState.PENDING
    assert BudgetPeriod.objects.get(budget=budget).reserved == Decimal("5")

    assert json.loads(run()) == {"expired": 1}
    due.refresh_from_db()
    assert due.state == ReservationState.EXPIRED
    assert BudgetPeriod.objects.get(budget=budget).reserved == Decimal("3")
    assert json.loads(run()) == {"expired": 0}
