"""Emergency overrides: a critical API key, or a person with the emergency permission, grants itself
an override at once, for a bounded time, with a reason; approvers are told at once and review it
afterwards (accept or flag)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from approvals import services
from approvals.models import AuditEntry, OverrideState, ReviewState
from approvals.services import override_emergency_grant, override_review, override_revoke
from budgets.models import BudgetPeriod
from budgets.principals import principal_for_api_key, principal_for_user
from costswitch.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from tests.approvals.factories import extension_ask, models_ask
from tests.budgets.factories import make_api_key, team_budget
from tests.models_registry.factories import ModelProfileFactory


@pytest.fixture
def notified(monkeypatch):
    """What reached the notifications interface (the delivery itself is the notifications app's)."""
    calls: list[dict] = []
    monkeypatch.setattr(services.notifications, "notify", lambda **kwargs: calls.append(kwargs))
    return calls


@pytest.fixture
def critical_key(world):
    return make_api_key(team=world.alpha, critical=True)[0]


def test_a_critical_key_grants_itself_an_extension_at_once(
    world, critical_key, notified, django_capture_on_commit_callbacks
):
    budget = team_budget(world.alpha, limit=Decimal("100"))
    with django_capture_on_commit_callbacks(execute=True):
        override = override_emergency_grant(
            principal=principal_for_api_key(critical_key),
            budget_id=budget.pk,
            ask=extension_ask(Decimal("25"), minutes=120, reason="checkout is down without it"),
        )
    assert (override.state, override.emergency, override.review_state) == (
        OverrideState.APPROVED,
        True,
        ReviewState.PENDING_REVIEW,
    )
    assert override.expires_at == override.decided_at + timedelta(minutes=120)
    assert override.requested_by_key == critical_key and override.team == world.alpha
    assert BudgetPeriod.objects.get(budget=budget).limit == Decimal("125")
    [message] = notified
    assert message["event"] == "emergency_override_used"
    assert message["budget"] == budget
    assert "checkout is down without it" in message["body"]
    actions = list(
        AuditEntry.objects.filter(object_type="approvals.overriderequest", object_id=str(override.pk))
        .order_by("sequence")
        .values_list("action", "actor_type", "reason")
    )
    assert actions == [
        ("override.created", "api_key", "checkout is down without it"),
        ("override.emergency_granted", "api_key", "checkout is down without it"),
    ]


def test_a_person_with_the_emergency_permission_may_self_grant(world, notified):
    ModelProfileFactory(id="premium")
    budget = team_budget(world.alpha)
    world.bob.user_permissions.add(Permission.objects.get(codename="grant_emergency_override"))
    override = override_emergency_grant(
        principal=principal_for_user(world.bob), budget_id=budget.pk, ask=models_ask(minutes=30)
    )
    assert override.state == OverrideState.APPROVED and override.user == world.bob


def test_an_ordinary_key_or_person_may_not_self_grant(world, team_key):
    budget = team_budget(world.alpha)
    for principal in (principal_for_api_key(team_key[0]), principal_for_user(world.alice)):
        with pytest.raises(PermissionDenied) as refused:
            override_emergency_grant(
                principal=principal, budget_id=budget.pk, ask=extension_ask(Decimal("5"))
            )
        assert refused.value.code == "emergency_not_allowed"
    assert not budget.override_requests.exists()


def test_an_emergency_lasts_at_most_the_emergency_limit(world, critical_key, settings):
    settings.COSTSWITCH_EMERGENCY_OVERRIDE_MAX_MINUTES = 240
    budget = team_budget(world.alpha)
    with pytest.raises(ValidationFailed) as refused:
        override_emergency_grant(
            principal=principal_for_api_key(critical_key),
            budget_id=budget.pk,
            ask=extension_ask(Decimal("5"), minutes=241),
        )
    assert refused.value.code == "invalid_duration"
    assert not budget.override_requests.exists()


def test_an_emergency_needs_a_reason(world, critical_key):
    budget = team_budget(world.alpha)
    with pytest.raises(ValidationFailed) as refused:
        override_emergency_grant(
            principal=principal_for_api_key(critical_key),
            budget_id=budget.pk,
            ask=extension_ask(Decimal("5"), reason="   "),
        )
    assert refused.value.code == "reason_required"


def test_an_emergency_is_only_for_budgets_the_caller_spends_from(world, critical_key):
    beta_budget = team_budget(world.beta)
    with pytest.raises(NotFound):
        override_emergency_grant(
            principal=principal_for_api_key(critical_key),
            budget_id=beta_budget.pk,
            ask=extension_ask(Decimal("5")),
        )


def _granted(world, critical_key):
    budget = team_budget(world.alpha, limit=Decimal("100"))
    return override_emergency_grant(
        principal=principal_for_api_key(critical_key), budget_id=budget.pk, ask=extension_ask(Decimal("10"))
    )


@pytest.mark.parametrize(("decision", "state"), [("accept", "accepted"), ("flag", "flagged")])
def test_an_approver_reviews_an_emergency_once(world, critical_key, decision, state):
    override = _granted(world, critical_key)
    reviewed = override_review(
        principal=principal_for_user(world.alice), override_id=override.pk, decision=decision, comment="seen"
    )
    assert (reviewed.review_state, reviewed.reviewed_by, reviewed.state) == (state, world.alice, "approved")
    with pytest.raises(Conflict) as again:
        override_review(principal=principal_for_user(world.fiona), override_id=override.pk, decision="accept")
    assert again.value.code == "illegal_transition"
    entry = AuditEntry.objects.get(object_id=str(override.pk), action="override.reviewed")
    assert (entry.actor_label, entry.reason, entry.after["review_state"]) == ("alice", "seen", state)


def test_a_member_may_not_review_and_a_normal_request_has_no_review(world, critical_key):
    override = _granted(world, critical_key)
    with pytest.raises(PermissionDenied):
        override_review(principal=principal_for_user(world.bob), override_id=override.pk, decision="accept")
    ModelProfileFactory(id="premium")
    normal = services.override_request(
        principal=principal_for_user(world.bob), budget_id=override.budget_id, ask=models_ask()
    )
    with pytest.raises(Conflict) as refused:
        override_review(principal=principal_for_user(world.alice), override_id=normal.pk, decision="flag")
    assert refused.value.code == "not_an_emergency"


def test_revoking_an_emergency_extension_gives_the_money_back(world, critical_key):
    override = _granted(world, critical_key)
    period = BudgetPeriod.objects.get(budget=override.budget)
    assert period.limit == Decimal("110")
    override_revoke(principal=principal_for_user(world.alice), override_id=override.pk, reason="abuse")
    period.refresh_from_db()
    assert period.limit == Decimal("100")
    assert AuditEntry.objects.filter(
        action="budget_period.limit_withdrawn", object_id=str(period.pk)
    ).exists()
