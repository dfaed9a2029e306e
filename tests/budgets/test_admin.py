import re
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from budgets.choices import ScopeType
from budgets.models import (
    ApiKey,
    Budget,
    BudgetPeriod,
    Membership,
    Organization,
    Reservation,
    ReservationHold,
    Team,
    UsageCharge,
    UsageRecord,
    User,
)
from budgets.principals import principal_for_user
from budgets.services.budgets import DEFAULT_THRESHOLD_SPECS
from budgets.services.ledger import UsageReport, reservation_authorize, usage_record_many
from costswitch.authentication import ApiKeyAuthentication
from costswitch.keys import hash_api_key
from tests.budgets.factories import BudgetFactory, UserFactory, make_api_key, team_budget

LEDGER_MODELS = [BudgetPeriod, Reservation, UsageRecord, UsageCharge]
BUDGETS_MODELS = [Organization, Team, User, Membership, ApiKey, Budget, *LEDGER_MODELS]


@pytest.fixture
def staff(world):
    return UserFactory(username="root", organization=None, is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def ledger(world):
    """One of everything: budgets on alpha's chain, a usage record and a pending reservation."""
    BudgetFactory(organization=world.org, limit=Decimal("100"))
    team_budget(world.alpha, limit=Decimal("50"))
    make_api_key(team=world.alpha)
    fiona = principal_for_user(world.fiona)
    usage_record_many(
        principal=fiona,
        reports=[UsageReport(request_id="u1", cost=Decimal("1.5"), model="gpt-4o", team_id=world.alpha.pk)],
    )
    reservation_authorize(principal=principal_for_user(world.bob), request_id="r1", amount=Decimal("2"))


def url(model, view: str, *args) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("model", BUDGETS_MODELS, ids=lambda m: m.__name__)
def test_every_changelist_renders(staff_client, ledger, model):
    response = staff_client.get(url(model, "changelist"))
    assert response.status_code == 200
    assert response.context["cl"].result_count >= 1


@pytest.mark.parametrize("model", BUDGETS_MODELS, ids=lambda m: m.__name__)
def test_every_change_page_renders(staff_client, ledger, model):
    obj = model.objects.order_by("pk").first()
    assert staff_client.get(url(model, "change", obj.pk)).status_code == 200


@pytest.mark.parametrize(
    "model", [Organization, Team, User, Membership, ApiKey, Budget], ids=lambda m: m.__name__
)
def test_every_add_page_renders(staff_client, world, model):
    assert staff_client.get(url(model, "add")).status_code == 200


@pytest.mark.parametrize("model", [*LEDGER_MODELS, ReservationHold], ids=lambda m: m.__name__)
def test_the_ledger_is_read_only(staff, model):
    request = RequestFactory().get("/")
    request.user = staff
    model_admin = admin.site._registry.get(model)
    if model_admin is None:  # holds are shown inline on their reservation only
        assert model is ReservationHold
        return
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert model_admin.has_view_permission(request)


def test_usage_cannot_be_added_or_deleted_through_the_admin(staff_client, ledger):
    record = UsageRecord.objects.get()
    assert staff_client.get(url(UsageRecord, "add")).status_code == 403
    assert staff_client.post(url(UsageRecord, "delete", record.pk), {"post": "yes"}).status_code == 403
    changelist = staff_client.get(url(UsageRecord, "changelist"))
    assert "delete_selected" not in changelist.context["cl"].model_admin.get_actions(changelist.wsgi_request)
    assert UsageRecord.objects.filter(pk=record.pk).exists()


def test_adding_a_key_shows_a_secret_that_authenticates(staff_client, world):
    response = staff_client.post(
        url(ApiKey, "add"),
        {
            "name": "billing",
            "organization": world.org.pk,
            "team": world.alpha.pk,
            "user": "",
            "critical": "on",
        },
        follow=True,
    )
    assert response.status_code == 200
    api_key = ApiKey.objects.get(name="billing")
    assert (api_key.team, api_key.critical) == (world.alpha, True)
    text = " ".join(str(m) for m in get_messages(response.wsgi_request))
    secret = re.search(r"(cs_\S+)", text).group(1)
    assert api_key.key_hash == hash_api_key(secret)
    assert secret.startswith(api_key.prefix)

    request = RequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {secret}")
    _, authenticated = ApiKeyAuthentication().authenticate(request)
    assert authenticated == api_key


def test_a_key_must_be_bound_to_a_team_or_user_of_its_organization(staff_client, world):
    unbound = {"name": "nobody", "organization": world.org.pk, "team": "", "user": ""}
    assert staff_client.post(url(ApiKey, "add"), unbound).status_code == 200
    foreign = {"name": "foreign", "organization": world.org.pk, "team": world.other_team.pk, "user": ""}
    assert staff_client.post(url(ApiKey, "add"), foreign).status_code == 200
    assert not ApiKey.objects.exists()


def test_the_revoke_action_revokes_the_selected_keys(staff_client, world):
    key, _ = make_api_key(team=world.alpha)
    kept, _ = make_api_key(team=world.beta)
    response = staff_client.post(
        url(ApiKey, "changelist"), {"action": "revoke_keys", "_selected_action": [key.pk]}, follow=True
    )
    assert response.status_code == 200
    key.refresh_from_db()
    kept.refresh_from_db()
    assert key.revoked_at is not None
    assert kept.revoked_at is None


def _budget_form(world, **overrides) -> dict:
    data = {
        "organization": world.org.pk,
        "scope_type": ScopeType.TEAM,
        "team": world.alpha.pk,
        "user": "",
        "name": "Alpha monthly",
        "period": "monthly",
        "limit": "250",
        "currency": "USD",
        "starts_at_0": "2024-01-01",
        "starts_at_1": "00:00:00",
        "ends_at_0": "",
        "ends_at_1": "",
        "restricted_models": "[]",
        "max_cost_per_request": "",
        "carry_over": "none",
        "carry_over_cap": "",
        "is_active": "on",
        "thresholds-TOTAL_FORMS": "0",
        "thresholds-INITIAL_FORMS": "0",
        "thresholds-MIN_NUM_FORMS": "0",
        "thresholds-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


def test_a_budget_added_without_thresholds_gets_the_defaults(staff_client, world):
    response = staff_client.post(url(Budget, "add"), _budget_form(world))
    assert response.status_code == 302, response.context["adminform"].form.errors
    budget = Budget.objects.get(name="Alpha monthly")
    assert (budget.team, budget.limit) == (world.alpha, Decimal("250"))
    assert [(t.percent, tuple(t.actions)) for t in budget.thresholds.all()] == [
        (spec.percent, spec.actions) for spec in DEFAULT_THRESHOLD_SPECS
    ]


def test_a_budget_keeps_the_thresholds_given_in_the_admin(staff_client, world):
    form = _budget_form(
        world,
        **{
            "thresholds-TOTAL_FORMS": "1",
            "thresholds-0-percent": "80",
            "thresholds-0-actions": '["notify"]',
        },
    )
    assert staff_client.post(url(Budget, "add"), form).status_code == 302
    budget = Budget.objects.get(name="Alpha monthly")
    assert [(t.percent, t.actions) for t in budget.thresholds.all()] == [(Decimal("80"), ["notify"])]


def test_a_budget_scope_must_match_its_type(staff_client, world):
    response = staff_client.post(url(Budget, "add"), _budget_form(world, scope_type=ScopeType.USER))
    assert response.status_code == 200
    assert not Budget.objects.exists()


def test_a_new_limit_applies_to_the_open_period(staff_client, world, ledger):
    budget = Budget.objects.get(scope_type=ScopeType.TEAM)
    period = BudgetPeriod.objects.get(budget=budget, ends_at__gt=timezone.now())
    form = {
        "name": budget.name,
        "limit": "75",
        "ends_at_0": "",
        "ends_at_1": "",
        "restricted_models": "[]",
        "max_cost_per_request": "",
        "carry_over": "none",
        "carry_over_cap": "",
        "is_active": "on",
        "thresholds-TOTAL_FORMS": "0",
        "thresholds-INITIAL_FORMS": "0",
        "thresholds-MIN_NUM_FORMS": "0",
        "thresholds-MAX_NUM_FORMS": "1000",
    }
    # The inline lists the existing thresholds: keep them as they are.
    for index, threshold in enumerate(budget.thresholds.all()):
        form.update(
            {
                f"thresholds-{index}-id": threshold.pk,
                f"thresholds-{index}-budget": budget.pk,
                f"thresholds-{index}-percent": threshold.percent,
                f"thresholds-{index}-actions": str(threshold.actions).replace("'", '"'),
            }
        )
        form["thresholds-TOTAL_FORMS"] = form["thresholds-INITIAL_FORMS"] = str(index + 1)
    response = staff_client.post(url(Budget, "change", budget.pk), form)
    assert response.status_code == 302, response.context["adminform"].form.errors
    period.refresh_from_db()
    assert period.limit == Decimal("75")
    assert budget.thresholds.count() == len(DEFAULT_THRESHOLD_SPECS)
