"""The approvals queue and the overrides API say what a refused request would have cost: admission
keeps the estimate on the override it asks for (the cheapest premium model it needed, or the model
it named priced for its tokens); an override asked by hand shows the ceiling or amount it asks for."""

from decimal import Decimal

import pytest
from django.template.defaultfilters import floatformat
from django.test import Client

from approvals.models import OverrideRequest
from approvals.services import override_request
from budgets.principals import principal_for_api_key, principal_for_user
from budgets.services.ledger import UsageReport, usage_record_many
from selection.admission import AdmissionRequest, ApprovalRequired, BudgetBlocked, admit
from selection.estimates import ChatRequest, estimate_request
from tests.approvals.factories import extension_ask, models_ask
from tests.budgets.factories import team_budget
from tests.conftest import client_for

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
ASK = {"reason": "the demo needs it", "duration_minutes": 30}


def _spend(principal, amount: str) -> None:
    usage_record_many(
        principal=principal,
        reports=[UsageReport(request_id=f"earlier-{amount}", cost=Decimal(amount), model="standard")],
    )


def _estimate(principal, messages, model: str) -> Decimal:
    """The same request priced by the estimate service, independently of admission."""
    request = ChatRequest(messages=messages, model=model, max_tokens=1000)
    return estimate_request(principal=principal, request=request).estimates[0].cost.total


def _queue(user) -> str:
    client = Client()
    client.force_login(user)
    response = client.get("/approvals/")
    assert response.status_code == 200
    return response.content.decode()


def _row(page: str, override: OverrideRequest) -> str:
    return page.split(f'id="override-{override.pk}"')[1].split("</article>")[0]


@pytest.fixture
def key_principal(world, team_key):
    return principal_for_api_key(team_key[0])


def test_an_approval_refusal_keeps_the_cheapest_premium_cost(ladder, world, key_principal):
    ladder["standard"].supports_vision = False  # only premium reads pictures
    ladder["standard"].save()
    team_budget(world.alpha, limit=Decimal("100"))
    _spend(key_principal, "86")

    with pytest.raises(ApprovalRequired) as refused:
        admit(
            principal=key_principal,
            request=AdmissionRequest(
                chat=ChatRequest(messages=PHOTO, max_tokens=1000), request_id="pic-1", request_override=ASK
            ),
        )

    override = OverrideRequest.objects.get(pk=refused.value.details["override_request_id"])
    expected = _estimate(key_principal, PHOTO, "premium")
    assert expected > 0 and override.estimated_cost == expected
    row = _row(_queue(world.alice), override)
    assert f"{floatformat(expected, 4)} USD (estimate of the refused request)" in row
    body = client_for(world.alice).get(f"/api/v1/overrides/{override.pk}").json()
    assert Decimal(str(body["estimatedCost"])) == expected
    assert body["estimatedCostBasis"] == "refused_request"


def test_a_blocked_refusal_keeps_the_named_models_cost(ladder, world, key_principal):
    team_budget(world.alpha, limit=Decimal("100"))
    _spend(key_principal, "100")

    with pytest.raises(BudgetBlocked) as refused:
        admit(
            principal=key_principal,
            request=AdmissionRequest(
                chat=ChatRequest(messages=HELLO, model="standard", max_tokens=1000),
                request_id="blocked-1",
                request_override=ASK,
            ),
        )

    override = OverrideRequest.objects.get(pk=refused.value.details["override_request_id"])
    expected = _estimate(key_principal, HELLO, "standard")
    assert override.kind == "extension" and override.estimated_cost == expected
    assert expected != _estimate(key_principal, HELLO, "premium")  # priced on the model it named
    assert f"{floatformat(expected, 4)} USD (estimate of the refused request)" in _row(
        _queue(world.fiona), override
    )


def test_an_override_asked_by_hand_shows_the_amount_it_asks_for(ladder, world):
    budget = team_budget(world.alpha, limit=Decimal("100"))
    bob = principal_for_user(world.bob)
    extension = override_request(principal=bob, budget_id=budget.pk, ask=extension_ask(Decimal("25")))
    by_name = override_request(principal=bob, budget_id=budget.pk, ask=models_ask("premium"))

    page = _queue(world.alice)

    assert "25.00 USD (the amount asked for)" in _row(page, extension)
    assert "no estimate (asked by hand)" in _row(page, by_name)
    api = client_for(world.alice)
    body = api.get(f"/api/v1/overrides/{extension.pk}").json()
    assert (Decimal(str(body["estimatedCost"])), body["estimatedCostBasis"]) == (
        Decimal("25"),
        "asked_amount",
    )
    body = api.get(f"/api/v1/overrides/{by_name.pk}").json()
    assert (body["estimatedCost"], body["estimatedCostBasis"]) == (None, "")
