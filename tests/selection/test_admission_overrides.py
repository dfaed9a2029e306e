"""Approved overrides in `admit()`: they lift the restriction of the budget they were granted on, at
the next admission, for the callers they cover, until they expire; a refusal tells the caller how to
ask for one (and asks, when the select request says so). The end-to-end check of the issue runs
through the select API with a frozen clock."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.models import AuditEntry, OverrideKind, OverrideRequest
from approvals.services import OverrideAsk, override_approve, override_request, override_revoke
from approvals.tasks import expire_overrides
from budgets.choices import Role, ThresholdAction
from budgets.models import BudgetPeriod
from budgets.principals import principal_for_api_key, principal_for_user
from budgets.services.budgets import ThresholdSpec
from budgets.services.ledger import UsageReport, usage_record_many
from costswitch.errors import BudgetExceeded
from costswitch.money import display_decimal
from selection.admission import AdmissionRequest, ApprovalRequired, BudgetBlocked, admit
from selection.estimates import ChatRequest
from tests.budgets.factories import BudgetFactory, MembershipFactory, make_api_key, team_budget
from tests.conftest import client_for, client_with_key

HELLO = [{"role": "user", "content": "What is the capital of Peru?"}]
PHOTO = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "What is in this picture?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ],
    }
]
OVERRIDES = "/api/v1/overrides"


def _request(messages=HELLO, **kwargs) -> AdmissionRequest:
    return AdmissionRequest(chat=ChatRequest(messages=messages, max_tokens=1000), **kwargs)


def _spend(principal, amount: str) -> None:
    usage_record_many(
        principal=principal,
        reports=[UsageReport(request_id=f"earlier-{amount}", cost=Decimal(amount), model="standard")],
    )


@pytest.fixture
def key_principal(world, team_key):
    return principal_for_api_key(team_key[0])


@pytest.fixture
def only_premium_sees(ladder):
    """A picture request only premium can serve (the cheaper models have no vision)."""
    ladder["standard"].supports_vision = False
    ladder["standard"].save()
    return ladder


def _models_ask(minutes: int = 60) -> OverrideAsk:
    return OverrideAsk(
        kind=OverrideKind.MODELS, reason="vision demo", duration_minutes=minutes, models=("premium",)
    )


def test_an_approved_models_override_lifts_require_approval_at_the_next_admission(
    only_premium_sees, key_principal, world
):
    budget = team_budget(world.alpha, limit=Decimal("100"))
    _spend(key_principal, "86")
    with pytest.raises(ApprovalRequired) as refused:
        admit(principal=key_principal, request=_request(PHOTO))
    assert refused.value.details["override_url"] == OVERRIDES
    assert refused.value.details["budget_id"] == budget.pk
    override = override_request(principal=key_principal, budget_id=budget.pk, ask=_models_ask())
    override_approve(principal=principal_for_user(world.alice), override_id=override.pk)
    admission = admit(principal=key_principal, request=_request(PHOTO))
    assert admission.decision.selected_model == "premium"
    assert {"source": "override", "overrides": [override.pk]}.items() <= admission.decision.changes[0].items()


def test_an_override_stops_at_its_expiry_even_before_the_sweep_runs(
    only_premium_sees, key_principal, world, time_machine
):
    time_machine.move_to(datetime(2030, 3, 10, 12, tzinfo=UTC), tick=False)
    budget = team_budget(world.alpha, limit=Decimal("100"))
    _spend(key_principal, "86")
    override = override_request(principal=key_principal, budget_id=budget.pk, ask=_models_ask(minutes=30))
    override_approve(principal=principal_for_user(world.alice), override_id=override.pk)
    time_machine.move_to(datetime(2030, 3, 10, 12, 29, 59, tzinfo=UTC), tick=False)
    assert admit(principal=key_principal, request=_request(PHOTO)).decision.selected_model == "premium"
    time_machine.move_to(datetime(2030, 3, 10, 12, 30, tzinfo=UTC), tick=False)
    with pytest.raises(ApprovalRequired):
        admit(principal=key_principal, request=_request(PHOTO))


def test_a_revoked_override_no_longer_applies(only_premium_sees, key_principal, world):
    budget = team_budget(world.alpha, limit=Decimal("100"))
    _spend(key_principal, "86")
    override = override_request(principal=key_principal, budget_id=budget.pk, ask=_models_ask())
    override_approve(principal=principal_for_user(world.alice), override_id=override.pk)
    override_revoke(principal=principal_for_user(world.alice), override_id=override.pk, reason="over")
    with pytest.raises(ApprovalRequired):
        admit(principal=key_principal, request=_request(PHOTO))


def test_a_team_key_override_covers_the_team_and_a_person_override_only_her(
    only_premium_sees, world, team_key
):
    budget = team_budget(world.alpha, limit=Decimal("100"))
    key_principal = principal_for_api_key(team_key[0])
    _spend(key_principal, "86")
    bob = principal_for_user(world.bob)
    dave = principal_for_user(MembershipFactory(team=world.alpha, role=Role.MEMBER).user)
    mine = override_request(principal=bob, budget_id=budget.pk, ask=_models_ask())
    override_approve(principal=principal_for_user(world.alice), override_id=mine.pk)
    assert admit(principal=bob, request=_request(PHOTO)).decision.selected_model == "premium"
    for other in (key_principal, dave):
        with pytest.raises(ApprovalRequired):
            admit(principal=other, request=_request(PHOTO))
    teams = override_request(principal=key_principal, budget_id=budget.pk, ask=_models_ask())
    override_approve(principal=principal_for_user(world.alice), override_id=teams.pk)
    for caller in (key_principal, dave):
        assert admit(principal=caller, request=_request(PHOTO)).decision.selected_model == "premium"


def test_an_override_on_the_team_budget_does_not_loosen_the_organization_budget(
    only_premium_sees, key_principal, world
):
    team = team_budget(world.alpha, limit=Decimal("100"))
    org = BudgetFactory(organization=world.org, limit=Decimal("100"))
    _spend(key_principal, "86")
    on_team = override_request(principal=key_principal, budget_id=team.pk, ask=_models_ask())
    override_approve(principal=principal_for_user(world.alice), override_id=on_team.pk)
    with pytest.raises(ApprovalRequired) as refused:
        admit(principal=key_principal, request=_request(PHOTO))
    assert refused.value.details["budget_id"] in {team.pk, org.pk}
    on_org = override_request(principal=key_principal, budget_id=org.pk, ask=_models_ask())
    override_approve(principal=principal_for_user(world.fiona), override_id=on_org.pk)
    assert admit(principal=key_principal, request=_request(PHOTO)).decision.selected_model == "premium"


def test_a_cost_ceiling_override_raises_the_strict_per_request_limit(ladder, key_principal, world):
    budget = team_budget(
        world.alpha,
        limit=Decimal("100"),
        max_cost_per_request=Decimal("0.005"),
        thresholds=[ThresholdSpec(Decimal(90), (ThresholdAction.STRICT_COST_LIMIT,))],
    )
    _spend(key_principal, "91")
    with pytest.raises(BudgetExceeded):
        admit(principal=key_principal, request=_request(PHOTO))
    ask = OverrideAsk(
        kind=OverrideKind.COST_CEILING, reason="pictures", duration_minutes=60, cost_ceiling=Decimal("0.02")
    )
    override = override_request(principal=key_principal, budget_id=budget.pk, ask=ask)
    override_approve(principal=principal_for_user(world.alice), override_id=override.pk)
    decision = admit(principal=key_principal, request=_request(PHOTO)).decision
    assert decision.selected_model == "standard"
    assert Decimal(decision.estimated_cost) <= Decimal("0.02")


def test_an_unblock_override_lets_only_critical_callers_pass_a_block(ladder, world):
    budget = team_budget(
        world.alpha, limit=Decimal("100"), thresholds=[ThresholdSpec(Decimal(90), (ThresholdAction.BLOCK,))]
    )
    critical = principal_for_api_key(make_api_key(team=world.alpha, critical=True)[0])
    _spend(critical, "91")
    with pytest.raises(BudgetBlocked):
        admit(principal=critical, request=_request())
    ask = OverrideAsk(kind=OverrideKind.UNBLOCK, reason="checkout must run", duration_minutes=60)
    override = override_request(principal=critical, budget_id=budget.pk, ask=ask)
    override_approve(principal=principal_for_user(world.alice), override_id=override.pk)
    assert admit(principal=critical, request=_request()).reservation is not None
    with pytest.raises(BudgetBlocked):  # the same team, not a critical system
        admit(principal=principal_for_user(world.bob), request=_request())


def test_without_a_crossed_threshold_admission_never_reads_overrides(ladder, key_principal, world):
    team_budget(world.alpha, limit=Decimal("100"))
    _spend(key_principal, "40")
    with CaptureQueriesContext(connection) as queries:
        admit(principal=key_principal, request=_request())
    assert not [q for q in queries if "approvals_overriderequest" in q["sql"]]
    _spend(key_principal, "46")  # 86%: now an override could lift something
    with CaptureQueriesContext(connection) as queries:
        admit(principal=key_principal, request=_request(request_id="second"))
    assert len([q for q in queries if "approvals_overriderequest" in q["sql"]]) == 1


def test_a_refusal_asked_to_request_an_override_makes_one_pending_request(
    only_premium_sees, key_principal, world
):
    budget = team_budget(world.alpha, limit=Decimal("100"))
    _spend(key_principal, "86")
    ask = {"reason": "need the picture read", "duration_minutes": 45}
    ids = set()
    for attempt in range(2):
        with pytest.raises(ApprovalRequired) as refused:
            admit(
                principal=key_principal,
                request=_request(PHOTO, request_id=f"r{attempt}", request_override=ask),
            )
        ids.add(refused.value.details["override_request_id"])
    [override] = OverrideRequest.objects.filter(pk__in=ids)
    assert (override.kind, override.approved_models, override.duration_minutes) == ("models", ["premium"], 45)
    assert (override.budget, override.state, override.request_id) == (budget, "pending", "r0")


def test_a_hypothetical_request_never_creates_an_override(only_premium_sees, key_principal, world):
    team_budget(world.alpha, limit=Decimal("100"))
    _spend(key_principal, "86")
    with pytest.raises(ApprovalRequired) as refused:
        admit(
            principal=key_principal,
            request=_request(PHOTO, request_override={"reason": "x"}),
            reserve=False,
            record=False,
        )
    assert "override_request_id" not in refused.value.details
    assert not OverrideRequest.objects.exists()


# --- the end-to-end check ------------------------------------------------------------------


def _select(client, request_id: str, **body):
    payload = {"request": {"messages": HELLO, "maxTokens": 1000}, "requestId": request_id, **body}
    return client.post("/api/v1/models/select", payload, format="json")


def test_blocked_override_requested_approved_admitted_expired_blocked_again_all_audited(
    ladder, world, team_key, time_machine
):
    time_machine.move_to(datetime(2030, 3, 10, 12, tzinfo=UTC), tick=False)
    key, secret = team_key
    service = client_with_key(secret)
    lead = client_for(world.alice)
    budget = team_budget(world.alpha, limit=Decimal("100"))
    _spend(principal_for_api_key(key), "100")
    ask = {"reason": "month-end invoicing run", "durationMinutes": 120}

    blocked = _select(service, "invoice-1", requestOverride=ask)
    body = blocked.json()
    assert blocked.status_code == 402, body
    assert body["code"] == "budget_blocked"
    assert body["details"]["overrideUrl"] == OVERRIDES
    override_id = body["details"]["overrideRequestId"]

    pending = lead.get(f"{OVERRIDES}/{override_id}").json()
    assert (pending["state"], pending["kind"], pending["budgetId"]) == ("pending", "extension", budget.pk)
    assert pending["requestId"] == "invoice-1" and pending["reason"] == "month-end invoicing run"
    extra = Decimal(str(pending["extraAmount"]))
    assert extra > 0

    approved = lead.post(f"{OVERRIDES}/{override_id}/approve", {"comment": "fine this once"}, format="json")
    assert approved.status_code == 200 and approved.json()["state"] == "approved"
    assert BudgetPeriod.objects.get(budget=budget).limit == Decimal("100") + extra

    admitted = _select(service, "invoice-1", requestOverride=ask)
    assert admitted.status_code == 201, admitted.json()

    time_machine.move_to(datetime(2030, 3, 10, 14, 0, 1, tzinfo=UTC), tick=False)
    assert expire_overrides.delay().get() == 1
    assert lead.get(f"{OVERRIDES}/{override_id}").json()["state"] == "expired"
    assert BudgetPeriod.objects.get(budget=budget).limit == Decimal("100")

    blocked_again = _select(service, "invoice-2")
    assert blocked_again.status_code == 402 and blocked_again.json()["code"] == "budget_blocked"

    on_override = list(
        AuditEntry.objects.filter(object_type="approvals.overriderequest", object_id=str(override_id))
        .order_by("sequence")
        .values_list("action", "actor_label", "reason")
    )
    assert on_override == [
        ("override.created", f"{key.prefix} ({key.name})", "month-end invoicing run"),
        ("override.approved", "alice", "fine this once"),
        ("override.expired", "system", ""),
    ]
    period = BudgetPeriod.objects.get(budget=budget)
    on_period = list(
        AuditEntry.objects.filter(object_type="budgets.budgetperiod", object_id=str(period.pk))
        .order_by("sequence")
        .values_list("action", "before__limit", "after__limit")
    )
    extended = str(display_decimal(Decimal("100") + extra))
    assert on_period == [
        ("budget_period.limit_extended", "100", extended),
        ("budget_period.limit_withdrawn", extended, "100"),
    ]
