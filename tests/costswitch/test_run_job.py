from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from budgets.choices import ReservationState
from budgets.models import Reservation
from budgets.principals import principal_for_api_key
from budgets.services.ledger import reservation_authorize
from tests.budgets.factories import team_budget


def _expired_reservation(world, team_key) -> Reservation:
    team_budget(world.alpha, limit=Decimal("10"))
    hold = reservation_authorize(
        principal=principal_for_api_key(team_key[0]), request_id="r-job", amount=Decimal("1"), ttl_seconds=1
    ).reservation
    Reservation.objects.filter(pk=hold.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    return hold


def test_a_job_of_the_beat_schedule_runs_once_by_name(world, team_key):
    hold = _expired_reservation(world, team_key)
    out = StringIO()
    call_command("run_job", "expire-reservations", stdout=out)
    assert '"result": 1' in out.getvalue()
    hold.refresh_from_db()
    assert hold.state == ReservationState.EXPIRED


def test_a_dry_run_reports_and_changes_nothing(world, team_key):
    hold = _expired_reservation(world, team_key)
    out = StringIO()
    call_command("run_job", "expire-reservations", "--dry-run", stdout=out)
    assert out.getvalue().startswith("dry run, nothing changed:") and '"result": 1' in out.getvalue()
    hold.refresh_from_db()
    assert hold.state == ReservationState.PENDING


def test_the_list_names_every_job_and_an_unknown_one_is_refused(db):
    out = StringIO()
    call_command("run_job", "--list", stdout=out)
    assert "expire-overrides" in out.getvalue() and "approvals.tasks.expire_overrides" in out.getvalue()
    with pytest.raises(CommandError, match="Unknown job 'nope'"):
        call_command("run_job", "nope")
