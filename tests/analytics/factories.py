"""Ledger and registry set-up for the reconciliation tests: models with known prices, budgets, and
usage written through the ledger's own service (so periods, charges and aggregates are real)."""

from datetime import UTC, datetime
from decimal import Decimal

import factory
from django.db.models import Sum

from analytics.models import ExportProvider, ExternalAccount
from analytics.reconciliation.external import sync_batch_create, sync_batch_process
from budgets.models import BudgetPeriod, Organization, Team, UsageCharge, UsageRecord
from budgets.principals import Principal
from budgets.services.ledger import UsageReport, usage_record_many
from tests.budgets.factories import BudgetFactory, OrganizationFactory, team_budget
from tests.models_registry.factories import ModelProfileFactory, ProviderFactory

AUG_1 = datetime(2025, 8, 1, tzinfo=UTC)
AUG_2 = datetime(2025, 8, 2, tzinfo=UTC)


class ExternalAccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ExternalAccount

    organization = factory.SubFactory(OrganizationFactory)
    provider = ExportProvider.OPENAI
    external_id = factory.Sequence(lambda n: f"proj_{n}")


def registry() -> None:
    """gpt-4o $2.50/$10 (cached $1.25), gpt-4o-mini $0.15/$0.60, claude-sonnet-4 $3/$15 (cache read $0.30)."""
    ModelProfileFactory(id="gpt-4o")
    ModelProfileFactory(
        id="gpt-4o-mini",
        input_price_per_million=Decimal("0.15"),
        output_price_per_million=Decimal("0.60"),
        cached_input_price_per_million=Decimal("0.075"),
    )
    ModelProfileFactory(
        id="claude-sonnet-4",
        provider=ProviderFactory(name="anthropic", base_url="https://api.anthropic.com/v1"),
        provider_model_name="claude-sonnet-4-20250514",
        input_price_per_million=Decimal("3"),
        output_price_per_million=Decimal("15"),
        cached_input_price_per_million=Decimal("0.30"),
    )


def budgets_for(org: Organization, *teams: Team) -> None:
    BudgetFactory(organization=org, limit=Decimal("10000"), thresholds=[])
    for team in teams:
        team_budget(team, limit=Decimal("10000"), thresholds=[])


def charge(
    org: Organization,
    request_id: str,
    cost: str,
    *,
    team: Team | None = None,
    model: str = "gpt-4o",
    provider: str = "openai",
    at: datetime = AUG_1,
    input_tokens: int = 0,
    output_tokens: int = 0,
) -> UsageRecord:
    """Usage reported by finance of `org`, attributed to `team` (or the organization)."""
    report = UsageReport(
        request_id=request_id,
        cost=Decimal(cost),
        model=model,
        provider=provider,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        occurred_at=at,
        team_id=team.pk if team else None,
    )
    principal = Principal(organization=org, org_wide=True)
    return usage_record_many(principal=principal, reports=[report]).records[0]


def reconcile(org: Organization, provider: str, content, *, format: str = ""):
    """Import `content` and process it at once, as the worker would."""
    batch = sync_batch_create(
        organization=org, provider=provider, source="upload", content=content, format=format, enqueue=False
    )
    return sync_batch_process(batch_id=batch.pk)


def ledger_total(org: Organization) -> Decimal:
    return UsageRecord.objects.filter(organization=org).aggregate(total=Sum("cost"))["total"] or Decimal(0)


def period_spent(org: Organization) -> dict[int, Decimal]:
    """Every period's cached spent, checked against its charges on the way."""
    spent = {}
    for period in BudgetPeriod.objects.filter(budget__organization=org):
        charged = UsageCharge.objects.filter(period=period).aggregate(total=Sum("amount"))[
            "total"
        ] or Decimal(0)
        assert period.spent == charged, f"period {period.pk} spent {period.spent} != charges {charged}"
        spent[period.budget_id] = period.spent
    return spent
