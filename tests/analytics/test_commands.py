"""Operator commands: run reconciliation once by hand, with --dry-run rolling everything back."""

import json
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from analytics.models import Discrepancy, ReconciliationRun, SyncBatch
from budgets.models import BudgetPeriod, UsageRecord
from tests.analytics.factories import budgets_for, charge, ledger_total, registry

EXPORTS = Path(__file__).resolve().parents[1] / "data" / "usage_exports"


@pytest.fixture
def acme(world):
    registry()
    budgets_for(world.org, world.alpha)
    return world


def run(*args) -> tuple[str, dict]:
    out = StringIO()
    call_command(*args, stdout=out)
    text = out.getvalue().strip()
    return text, json.loads(text.split(": ", 1)[1] if text.startswith("dry run") else text)


def test_reconcile_ledger_fixes_drift_and_dry_run_only_reports_it(acme):
    charge(acme.org, "r-1", "0.40", team=acme.alpha, at=timezone.now())
    BudgetPeriod.objects.filter(budget__team=acme.alpha).update(spent=Decimal("5"))

    text, dry = run("reconcile_ledger", "--dry-run", "--organization", "acme")

    assert text.startswith("dry run, nothing changed")
    assert dry["runs"][0]["drifted"] == 1
    assert BudgetPeriod.objects.get(budget__team=acme.alpha).spent == Decimal("5")
    assert not ReconciliationRun.objects.exists() and not Discrepancy.objects.exists()

    _, done = run("reconcile_ledger")
    assert [(r["organization"], r["drifted"]) for r in done["runs"]] == [("acme", 1)]
    assert BudgetPeriod.objects.get(budget__team=acme.alpha).spent == Decimal("0.40")


def test_import_usage_reconciles_a_file_and_dry_run_writes_nothing(acme):
    path = str(EXPORTS / "openai_usage.csv")

    _, dry = run(
        "import_usage", path, "--provider", "openai", "--organization", "acme", "--format", "csv", "--dry-run"
    )

    assert (dry["lines"], dry["discrepancies"], dry["adjusted"]) == (3, 3, 3)
    assert not SyncBatch.objects.exists() and not UsageRecord.objects.exists()

    _, done = run("import_usage", path, "--provider", "openai", "--organization", "acme")
    assert done["adjustedTotal"] == "4.555000000"
    assert ledger_total(acme.org) == Decimal("4.555")
    assert SyncBatch.objects.get().source == "file"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--organization", "nobody"], "Unknown organization"),
        (["--organization", "acme", "--format", "json"], "not valid JSON"),
    ],
)
def test_import_usage_refuses_bad_input(acme, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("import_usage", str(EXPORTS / "openai_usage.csv"), "--provider", "openai", *args)
    assert not SyncBatch.objects.exists()


def test_import_usage_refuses_a_missing_file(acme, tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        call_command(
            "import_usage", str(tmp_path / "nope.csv"), "--provider", "openai", "--organization", "acme"
        )
