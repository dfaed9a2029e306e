"""`manage.py roll_over_periods`: the rollover job once, by hand; `--dry-run` changes nothing."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

from django.core.management import call_command

from budgets.choices import CarryOver
from budgets.models import BudgetPeriod
from budgets.services.periods import period_get_or_open
from tests.budgets.factories import team_budget

END_OF_MARCH = datetime(2026, 4, 1, tzinfo=UTC)


def run(*args: str) -> tuple[str, dict]:
    out = StringIO()
    call_command("roll_over_periods", *args, stdout=out)
    text = out.getvalue().strip()
    return text, json.loads(text.split(": ", 1)[1] if text.startswith("dry run") else text)


def test_it_rolls_over_and_a_dry_run_changes_nothing(world, time_machine):
    budget = team_budget(
        world.alpha,
        limit=Decimal("50"),
        carry_over=CarryOver.UNUSED,
        starts_at=datetime(2026, 1, 1, tzinfo=UTC),
        thresholds=[],
    )
    march = period_get_or_open(budget=budget, moment=END_OF_MARCH - timedelta(days=1))
    time_machine.move_to(END_OF_MARCH + timedelta(minutes=2), tick=False)

    text, dry = run("--dry-run")

    assert text.startswith("dry run, nothing changed: ")
    assert (dry["closed"], dry["opened"], dry["carried"]) == (1, 1, "50.000000000")
    assert list(BudgetPeriod.objects.filter(budget=budget)) == [march]
    march.refresh_from_db()
    assert march.closed_at is None

    _, done = run()

    assert (done["closed"], done["opened"], done["carried"]) == (1, 1, "50.000000000")
    april = BudgetPeriod.objects.get(budget=budget, starts_at=END_OF_MARCH)
    assert done["opened_periods"] == [april.pk]
    assert (april.carried_over, april.limit) == (Decimal("50"), Decimal("100"))
    _, again = run()
    assert (again["closed"], again["opened"]) == (0, 0)
