"""/api/v1/overrides over HTTP: create (and emergency self-grant), list with filters, detail,
approve, reject, revoke, review; scoped to what the caller can see (another organization: 404)."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from approvals.models import OverrideRequest
from tests.budgets.factories import BudgetFactory, make_api_key, team_budget
from tests.conftest import client_for, client_with_key
from tests.models_registry.factories import ModelProfileFactory

URL = "/api/v1/overrides"


@pytest.fixture
def premium(db):
    return ModelProfileFactory(id="premium")


@pytest.fixture
def alpha_budget(world):
    return team_budget(world.alpha, limit=Decimal("100"))


def assert_error(response, status: int, code: str) -> dict:
    body = response.json()
    assert response.status_code == status, body
    assert body["code"] == code and body["message"]
    return body


def _create(client, budget, **body):
    payload = {
        "budgetId": budget.pk,
        "kind": "models",
        "models": ["premium"],
        "reason": "demo for a customer",
        "durationMinutes": 90,
        **body,
    }
    return client.post(URL, payload, format="json")


def test_a_member_asks_for_premium_models_and_sees_her_request(world, premium, alpha_budget):
    response = _create(client_for(world.bob), alpha_budget)
    body = response.json()
    assert response.status_code == 201, body
    assert body["state"] == "pending"
    assert body["models"] == ["premium"]
    assert body["budgetId"] == alpha_budget.pk
    assert body["requestedBy"] == {"type": "user", "id": world.bob.pk, "name": "bob"}
    assert body["covers"] == {"teamId": None, "userId": world.bob.pk}
    assert body["approvalsRequired"] == 1 and body["approvals"] == []
    detail = client_for(world.bob).get(f"{URL}/{body['id']}")
    assert detail.status_code == 200 and detail.json()["id"] == body["id"]


def test_a_team_key_asks_for_an_extension_for_its_team(world, alpha_budget, team_key):
    response = _create(
        client_with_key(team_key[1]), alpha_budget, kind="extension", models=[], extraAmount="12.50"
    )
    body = response.json()
    assert response.status_code == 201, body
    assert body["extraAmount"] == 12.5 and body["currency"] == "USD"
    assert body["requestedBy"]["type"] == "apiKey"
    assert body["covers"] == {"teamId": world.alpha.pk, "userId": None}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"reason": ""}, "validation_error"),
        ({"durationMinutes": 0}, "validation_error"),
        ({"durationMinutes": 7 * 24 * 60 + 1}, "invalid_duration"),
        ({"kind": "models", "models": []}, "field_required"),
        ({"kind": "extension", "models": []}, "field_required"),
        ({"kind": "extension", "extraAmount": "5"}, "field_not_for_kind"),
        ({"models": ["no-such-model"]}, "unknown_model"),
        ({"kind": "cost_ceiling", "models": [], "costCeiling": "0"}, "invalid_amount"),
        ({"kind": "teleport"}, "validation_error"),
        ({"colour": "red"}, "validation_error"),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_stored(world, premium, alpha_budget, body, code):
    assert_error(_create(client_for(world.bob), alpha_budget, **body), 400, code)
    assert not OverrideRequest.objects.exists()


def test_a_budget_of_another_team_or_organization_does_not_exist_for_the_caller(world, premium):
    beta = team_budget(world.beta)
    outside = BudgetFactory(organization=world.other_org)
    assert_error(_create(client_for(world.bob), beta), 404, "not_found")
    assert_error(_create(client_for(world.bob), outside), 404, "not_found")


def test_the_lead_approves_over_http(world, premium, alpha_budget):
    created = _create(client_for(world.bob), alpha_budget).json()
    response = client_for(world.alice).post(
        f"{URL}/{created['id']}/approve", {"comment": "ok"}, format="json"
    )
    body = response.json()
    assert response.status_code == 200, body
    assert body["state"] == "approved" and body["decidedBy"] == "alice"
    assert body["approvals"][0]["approver"] == "alice" and body["approvals"][0]["comment"] == "ok"


def test_a_member_approving_gets_403_and_an_outsider_404(world, premium, alpha_budget):
    created = _create(client_for(world.alice), alpha_budget).json()
    assert_error(client_for(world.bob).post(f"{URL}/{created['id']}/approve"), 403, "permission_denied")
    assert_error(client_for(world.omar).post(f"{URL}/{created['id']}/approve"), 404, "not_found")
    assert_error(client_for(world.omar).get(f"{URL}/{created['id']}"), 404, "not_found")
    assert_error(client_for(world.alice).post(f"{URL}/{created['id']}/approve"), 403, "self_approval")


def test_reject_revoke_and_illegal_moves_over_http(world, premium, alpha_budget):
    first = _create(client_for(world.bob), alpha_budget).json()
    assert_error(
        client_for(world.alice).post(f"{URL}/{first['id']}/reject", {}, format="json"),
        400,
        "validation_error",
    )
    rejected = client_for(world.alice).post(f"{URL}/{first['id']}/reject", {"comment": "no"}, format="json")
    assert rejected.json()["state"] == "rejected"
    body = assert_error(
        client_for(world.alice).post(f"{URL}/{first['id']}/approve"), 409, "illegal_transition"
    )
    assert body["details"] == {"from": "rejected", "to": "approved"}
    second = _create(client_for(world.bob), alpha_budget).json()
    revoked = client_for(world.bob).post(f"{URL}/{second['id']}/revoke", {"reason": "done"}, format="json")
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked"


def test_an_emergency_self_grant_and_its_review_over_http(world):
    budget = team_budget(world.alpha, limit=Decimal("100"))
    _, secret = make_api_key(team=world.alpha, critical=True)
    response = _create(
        client_with_key(secret),
        budget,
        kind="extension",
        models=[],
        extraAmount="10",
        durationMinutes=60,
        emergency=True,
    )
    body = response.json()
    assert response.status_code == 201, body
    assert (body["state"], body["emergency"], body["reviewState"]) == ("approved", True, "pending_review")
    queue = client_for(world.alice).get(URL, {"reviewState": "pending_review"}).json()["results"]
    assert [o["id"] for o in queue] == [body["id"]]
    reviewed = client_for(world.alice).post(f"{URL}/{body['id']}/review", {"decision": "flag"}, format="json")
    assert reviewed.json()["reviewState"] == "flagged"
    too_long = _create(
        client_with_key(secret),
        budget,
        kind="extension",
        models=[],
        extraAmount="1",
        durationMinutes=241,
        emergency=True,
    )
    assert_error(too_long, 400, "invalid_duration")


def test_the_list_shows_what_the_caller_may_see_and_filters_it(world, premium, alpha_budget):
    beta_budget = team_budget(world.beta)
    org_budget = BudgetFactory(organization=world.org)
    mine = _create(client_for(world.bob), alpha_budget).json()
    on_org = _create(client_for(world.bob), org_budget).json()
    by_alice = _create(client_for(world.alice), alpha_budget).json()
    on_beta = _create(client_for(world.carol), beta_budget).json()
    BudgetFactory(organization=world.other_org)

    def ids(user, **params):
        response = client_for(user).get(URL, params)
        assert response.status_code == 200, response.json()
        return {o["id"] for o in response.json()["results"]}

    assert ids(world.bob) == {mine["id"], on_org["id"], by_alice["id"]}
    assert ids(world.bob, mine="true") == {mine["id"], on_org["id"]}
    assert ids(world.alice) == {mine["id"], by_alice["id"]}
    assert ids(world.fiona) == {mine["id"], on_org["id"], by_alice["id"], on_beta["id"]}
    assert ids(world.fiona, budget=beta_budget.pk) == {on_beta["id"]}
    assert ids(world.omar) == set()
    client_for(world.alice).post(f"{URL}/{mine['id']}/approve")
    assert ids(world.fiona, state="approved") == {mine["id"]}
    assert ids(world.fiona, state="pending", emergency="false") == {
        on_org["id"],
        by_alice["id"],
        on_beta["id"],
    }
    assert_error(client_for(world.fiona).get(URL, {"emergency": "maybe"}), 400, "validation_error")


def test_the_list_costs_the_same_queries_for_one_or_many_overrides(world, premium, alpha_budget):
    _create(client_for(world.bob), alpha_budget, kind="extension", models=[], extraAmount="5")
    client = client_for(world.fiona)
    with CaptureQueriesContext(connection) as one:
        assert client.get(URL).status_code == 200
    for kind in ("models", "extension", "models", "extension", "models"):
        extra = {"models": [], "extraAmount": "5"} if kind == "extension" else {}
        override = _create(client_for(world.bob), alpha_budget, kind=kind, **extra).json()
        client_for(world.alice).post(f"{URL}/{override['id']}/approve")
    with CaptureQueriesContext(connection) as six:
        assert len(client.get(URL).json()["results"]) == 6
    assert len(six) == len(one)
