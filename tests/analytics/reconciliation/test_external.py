"""External reconciliation: provider exports against the ledger, fixed by compensating entries."""

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from analytics.models import Discrepancy, DiscrepancyKind, DiscrepancyStatus, RunStatus, SyncStatus
from budgets.choices import UsageSource
from budgets.models import BudgetPeriod, UsageCharge, UsageRecord
from budgets.selectors import ledger_drift
from tests.analytics.factories import (
    AUG_1,
    AUG_2,
    ExternalAccountFactory,
    budgets_for,
    charge,
    ledger_total,
    period_spent,
    reconcile,
    registry,
)

EXPORTS = Path(__file__).resolve().parents[2] / "data" / "usage_exports"


@pytest.fixture
def acme(world):
    registry()
    budgets_for(world.org, world.alpha, world.beta)
    return world


def line(request_id: str, cost: str, at=AUG_1, model: str = "gpt-4o") -> dict:
    return {"request_id": request_id, "model": model, "cost": Decimal(cost), "occurred_at": at.isoformat()}


def found(run) -> dict[str, list[Discrepancy]]:
    kinds: dict[str, list[Discrepancy]] = {}
    for discrepancy in run.discrepancies.order_by("pk"):
        kinds.setdefault(discrepancy.kind, []).append(discrepancy)
    return kinds


def charged_periods(usage: UsageRecord) -> set[int]:
    return set(UsageCharge.objects.filter(usage=usage).values_list("period_id", flat=True))


def test_lines_are_matched_by_request_id_and_differences_are_adjusted_with_new_entries(acme):
    r1 = charge(acme.org, "r-1", "0.50", team=acme.alpha)
    r2 = charge(acme.org, "r-2", "0.30", team=acme.alpha)
    r3 = charge(acme.org, "r-3", "0.20", team=acme.beta)
    before = {r.pk: (r.cost, r.occurred_at) for r in UsageRecord.objects.all()}

    batch = reconcile(
        acme.org,
        "openai",
        [line("r-1", "0.50"), line("r-2", "0.45"), line("r-4", "0.70", at=AUG_1 + timedelta(hours=1))],
    )

    run = batch.run
    run.refresh_from_db()
    kinds = found(run)
    assert sorted(kinds) == [
        DiscrepancyKind.COST_DIFFERS,
        DiscrepancyKind.MISSING_HERE,
        DiscrepancyKind.MISSING_THERE,
    ]

    (differs,) = kinds[DiscrepancyKind.COST_DIFFERS]
    assert (differs.usage, differs.ours, differs.theirs, differs.difference) == (
        r2,
        Decimal("0.30"),
        Decimal("0.45"),
        Decimal("0.15"),
    )
    assert differs.status == DiscrepancyStatus.RESOLVED
    adjustment = differs.adjustment
    assert (adjustment.source, adjustment.cost, adjustment.team, adjustment.occurred_at) == (
        UsageSource.ADJUSTMENT,
        Decimal("0.15"),
        acme.alpha,
        r2.occurred_at,
    )
    # The difference goes to the periods the original charge went to (team alpha's and the org's).
    assert charged_periods(adjustment) == charged_periods(r2) and len(charged_periods(r2)) == 2

    (missing,) = kinds[DiscrepancyKind.MISSING_HERE]
    assert (missing.request_id, missing.ours, missing.theirs) == ("r-4", Decimal("0"), Decimal("0.70"))
    # Unmapped provider usage is the organization's: charged to the org budget only.
    assert missing.adjustment.team is None and missing.adjustment.cost == Decimal("0.70")
    org_period = BudgetPeriod.objects.get(budget__scope_type="organization")
    assert charged_periods(missing.adjustment) == {org_period.pk}

    (there,) = kinds[DiscrepancyKind.MISSING_THERE]
    assert (there.usage, there.ours, there.difference, there.status) == (
        r3,
        Decimal("0.20"),
        Decimal("-0.20"),
        DiscrepancyStatus.OPEN,
    )
    assert there.adjustment is None  # recorded, not adjusted

    assert (run.status, run.lines_seen, run.lines_matched, run.discrepancy_count, run.adjusted_count) == (
        RunStatus.SUCCEEDED,
        3,
        2,
        3,
        2,
    )
    assert (run.theirs_total, run.ours_total, run.adjusted_total) == (
        Decimal("1.65"),
        Decimal("0.80"),
        Decimal("0.85"),
    )
    assert (batch.status, batch.rows_seen, batch.rows_matched, batch.rows_imported) == (
        SyncStatus.PROCESSED,
        3,
        2,
        1,
    )
    # Old rows untouched, the ledger grew by exactly the adjustments, and every cache equals it.
    assert {r.pk: (r.cost, r.occurred_at) for r in UsageRecord.objects.filter(pk__in=before)} == before
    assert ledger_total(acme.org) == Decimal("1.85")
    assert period_spent(acme.org)
    assert ledger_drift() == []
    assert r1.pk not in {d.usage_id for d in run.discrepancies.all()}


def test_importing_the_same_export_twice_adjusts_nothing_the_second_time(acme):
    charge(acme.org, "r-2", "0.30", team=acme.alpha)
    charge(acme.org, "r-3", "0.20", team=acme.beta)
    export = [line("r-2", "0.45"), line("r-4", "0.70")]
    reconcile(acme.org, "openai", export)
    total, spent = ledger_total(acme.org), period_spent(acme.org)

    again = reconcile(acme.org, "openai", export)

    again.run.refresh_from_db()
    assert again.run.discrepancy_count == 0 and again.run.adjusted_count == 0
    assert again.run.lines_matched == 2
    assert (ledger_total(acme.org), period_spent(acme.org)) == (total, spent)
    assert Discrepancy.objects.count() == 3
    assert UsageRecord.objects.filter(source=UsageSource.ADJUSTMENT).count() == 2


def test_a_corrected_export_adjusts_by_the_new_difference_even_downwards(acme):
    charge(acme.org, "r-2", "0.30", team=acme.alpha)
    reconcile(acme.org, "openai", [line("r-2", "0.45")])

    corrected = reconcile(acme.org, "openai", [line("r-2", "0.40")])

    (differs,) = corrected.run.discrepancies.all()
    assert (differs.ours, differs.theirs, differs.difference) == (
        Decimal("0.45"),
        Decimal("0.40"),
        Decimal("-0.05"),
    )
    assert differs.adjustment.cost == Decimal("-0.05")
    assert ledger_total(acme.org) == Decimal("0.40")
    assert ledger_drift() == []


def test_bucket_lines_compare_the_window_total_and_map_projects_to_teams(acme):
    ExternalAccountFactory(organization=acme.org, external_id="proj_beta", team=acme.beta)
    # Aug 1: gpt-4o of team alpha, 0.25 short of OpenAI's 3.25; no gpt-4o-mini at all.
    charge(
        acme.org,
        "a-1",
        "1.75",
        team=acme.alpha,
        at=AUG_1 + timedelta(hours=3),
        input_tokens=500_000,
        output_tokens=50_000,
    )
    charge(
        acme.org,
        "a-2",
        "1.25",
        team=acme.alpha,
        at=AUG_1 + timedelta(hours=9),
        input_tokens=500_000,
        output_tokens=50_000,
    )
    # Aug 2: exactly OpenAI's 1.20.
    charge(
        acme.org,
        "b-1",
        "1.20",
        team=acme.alpha,
        at=AUG_2 + timedelta(hours=1),
        input_tokens=400_000,
        output_tokens=20_000,
    )

    batch = reconcile(acme.org, "openai", (EXPORTS / "openai_completions_usage.json").read_bytes())

    kinds = found(batch.run)
    assert sorted(kinds) == [DiscrepancyKind.COST_DIFFERS, DiscrepancyKind.MISSING_HERE]
    (differs,) = kinds[DiscrepancyKind.COST_DIFFERS]
    assert (differs.model, differs.window_start, differs.window_end) == ("gpt-4o-2024-08-06", AUG_1, AUG_2)
    assert (differs.ours, differs.theirs, differs.difference) == (
        Decimal("3.00"),
        Decimal("3.25"),
        Decimal("0.25"),
    )
    assert differs.details["records"] == 2
    # Both records were team alpha's: the difference goes to alpha's and the org's periods.
    a1 = UsageRecord.objects.get(request_id="a-1")
    assert differs.adjustment.team == acme.alpha
    assert charged_periods(differs.adjustment) == charged_periods(a1)

    (missing,) = kinds[DiscrepancyKind.MISSING_HERE]
    # gpt-4o-mini priced from the registry: 500k input at $0.15 + 50k output at $0.60 per 1M.
    assert missing.theirs == Decimal("0.105")
    entry = missing.adjustment
    assert (entry.model, entry.team, entry.input_tokens, entry.output_tokens) == (
        "gpt-4o-mini",
        acme.beta,
        500_000,
        50_000,
    )
    beta_period = BudgetPeriod.objects.get(budget__team=acme.beta)
    assert beta_period.pk in charged_periods(entry)
    assert ledger_total(acme.org) == Decimal("4.555")
    assert ledger_drift() == []

    # The costs export of the same day now agrees with the ledger: nothing more to adjust.
    costs = reconcile(acme.org, "openai", (EXPORTS / "openai_costs.json").read_bytes())
    assert costs.run.discrepancies.count() == 0
    assert ledger_total(acme.org) == Decimal("4.555")


def test_a_line_without_request_id_matches_the_record_with_its_model_time_and_tokens(acme):
    at = AUG_1 + timedelta(hours=12)
    small = charge(acme.org, "s-1", "0.010", team=acme.alpha, at=at, input_tokens=1000, output_tokens=100)
    large = charge(
        acme.org,
        "s-2",
        "0.020",
        team=acme.beta,
        at=at + timedelta(seconds=30),
        input_tokens=5000,
        output_tokens=500,
    )

    batch = reconcile(
        acme.org,
        "openai",
        [
            {
                "model": "gpt-4o",
                "input_tokens": 5003,
                "output_tokens": 500,
                "cost": "0.025",
                "occurred_at": (at + timedelta(seconds=40)).isoformat(),
            },
            {
                "model": "gpt-4o",
                "input_tokens": 1000,
                "output_tokens": 100,
                "cost": "0.010",
                "occurred_at": (at - timedelta(seconds=5)).isoformat(),
            },
        ],
    )

    (differs,) = batch.run.discrepancies.all()
    assert (differs.kind, differs.usage, differs.difference) == (
        DiscrepancyKind.COST_DIFFERS,
        large,
        Decimal("0.005"),
    )
    assert charged_periods(differs.adjustment) == charged_periods(large)
    assert small.pk not in {d.usage_id for d in Discrepancy.objects.all()}


def test_anthropic_costs_are_matched_through_the_registry_names_and_other_providers_are_left_alone(acme):
    charge(
        acme.org,
        "c-1",
        "3.30",
        team=acme.alpha,
        model="claude-sonnet-4",
        provider="anthropic",
        at=AUG_1 + timedelta(hours=2),
    )
    charge(
        acme.org,
        "o-1",
        "1.00",
        team=acme.alpha,
        model="gpt-4o",
        provider="openai",
        at=AUG_1 + timedelta(hours=2),
    )

    batch = reconcile(acme.org, "anthropic", (EXPORTS / "anthropic_cost_report.json").read_bytes())

    assert batch.run.discrepancies.count() == 0
    assert batch.errors == [{"line": 2, "error": "web_search costs have no model and are not reconciled."}]
    assert (batch.rows_seen, batch.rows_matched) == (2, 1)


def test_a_usage_line_of_a_model_without_price_is_reported_not_guessed(acme):
    batch = reconcile(
        acme.org,
        "openai",
        [
            {
                "model": "o9-preview",
                "input_tokens": 100,
                "output_tokens": 10,
                "start_time": "2025-08-01T00:00:00Z",
                "end_time": "2025-08-02T00:00:00Z",
            }
        ],
    )

    assert batch.run.discrepancies.count() == 0
    assert "No price for 'o9-preview'" in batch.errors[0]["error"]
    assert not UsageRecord.objects.exists()
