"""Ledger rows and admitted decisions for the cost-analysis tests, written through the ledger's own
services (so periods, charges and reservations are real)."""

from datetime import datetime
from decimal import Decimal

import factory

from budgets.models import Organization, Team, UsageRecord, User
from budgets.principals import Principal
from budgets.services.ledger import (
    UsageReport,
    reservation_authorize,
    reservation_release,
    reservation_settle,
    usage_record_many,
)
from selection.choices import DecisionOutcome, Strategy
from selection.models import Decision


def usage(
    org: Organization,
    request_id: str,
    cost: str,
    *,
    at: datetime,
    team: Team | None = None,
    user: User | None = None,
    **fields,
) -> UsageRecord:
    """One ledger row reported by finance of `org` (model, tokens, task type, tags... as keywords)."""
    report = UsageReport(
        request_id=request_id,
        cost=Decimal(cost),
        occurred_at=at,
        team_id=team.pk if team else None,
        user_id=user.pk if user else None,
        **fields,
    )
    principal = Principal(organization=org, org_wide=True)
    return usage_record_many(principal=principal, reports=[report]).records[0]


class DecisionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Decision

    request_id = factory.Sequence(lambda n: f"dec-{n}")
    outcome = DecisionOutcome.ADMITTED
    strategy = Strategy.BALANCED
    task_type = "summarization"
    complexity = 0.5
    quality_requirement = 70


def admitted(
    org: Organization,
    request_id: str,
    *,
    requested: str,
    selected: str,
    at: datetime,
    team: Team | None = None,
    user: User | None = None,
    settle: dict | None = None,
    estimated: str = "0",
    baseline_estimate: str = "0",
) -> Decision:
    """An admitted decision whose reservation is settled with `settle` (cost, tokens, outcome...) or,
    when `settle` is None, released (nothing spent)."""
    principal = Principal(organization=org, org_wide=True)
    reservation = reservation_authorize(
        principal=principal,
        request_id=request_id,
        amount=Decimal("100"),
        model=selected,
        team_id=team.pk if team else None,
        user_id=user.pk if user else None,
    ).reservation
    if settle is None:
        reservation_release(principal=principal, reservation_id=reservation.pk)
    else:
        fields = dict(settle)
        cost = Decimal(fields.pop("cost"))
        report = UsageReport(request_id=request_id, cost=cost, model=selected, occurred_at=at, **fields)
        reservation_settle(principal=principal, reservation_id=reservation.pk, report=report)
    decision = DecisionFactory(
        organization=org,
        team=team,
        user=user,
        request_id=request_id,
        requested_model=requested,
        selected_model=selected,
        reservation=reservation,
        estimated_cost=Decimal(estimated),
        requested_model_cost=Decimal(baseline_estimate),
    )
    Decision.objects.filter(pk=decision.pk).update(created_at=at)
    decision.refresh_from_db()
    return decision
