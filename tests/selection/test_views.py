"""Selection pages through the Django test client: the simulator explains without reserving or
recording, the explainer page obeys visibility, the rules editor is for finance and admins."""

from decimal import Decimal

import pytest
from django.test import Client

from budgets.models import Reservation
from selection.models import Decision, RuleSetVersion
from tests.budgets.factories import team_budget
from tests.conftest import client_for

HTMX = {"HTTP_HX_REQUEST": "true"}
RULES = """rules:
  - name: code-to-standard
    priority: 10
    when:
      - type: task
        task_type: code
    then:
      - type: route-to
        model: standard
"""


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alpha_budget(world):
    return team_budget(world.alpha, name="Alpha monthly", limit=Decimal("100"))


def test_the_simulator_explains_without_reserving_or_recording(world, ladder, alpha_budget):
    response = login(world.bob).post(
        "/simulator/result/",
        {
            "messages": "user: What is the capital of Peru?",
            "strategy": "cost_optimized",
            "priority": "normal",
        },
        **HTMX,
    )

    page = response.content.decode()
    api = client_for(world.bob).post(
        "/api/v1/explainer/generate",
        {
            "request": {"messages": [{"role": "user", "content": "What is the capital of Peru?"}]},
            "strategy": "cost_optimized",
        },
        format="json",
    )
    assert response.status_code == 200
    assert f'<span data-testid="selected-model">{api.json()["selectedModel"]}</span>' in page
    assert "Scores" in page and "Alpha monthly" in page
    assert not Decision.objects.exists() and not Reservation.objects.exists()


def test_the_simulator_shows_bad_input(world, ladder):
    response = login(world.bob).post(
        "/simulator/result/", {"messages": "[not json", "priority": "normal"}, **HTMX
    )

    assert "Not valid JSON" in response.content.decode()


def test_a_member_may_not_charge_as_another_team(world, ladder):
    response = login(world.bob).post(
        "/simulator/result/",
        {"messages": "hello", "priority": "normal", "attribution": f"team:{world.beta.pk}"},
    )

    assert "Select a valid choice" in response.content.decode()


def test_the_explainer_page_follows_visibility(world, ladder, alpha_budget):
    select = client_for(world.bob).post(
        "/api/v1/models/select",
        {"request": {"messages": [{"role": "user", "content": "hi"}]}, "requestId": "bob-req-1"},
        format="json",
    )
    assert select.status_code == 201, select.json()
    decision = Decision.objects.get(request_id="bob-req-1")

    assert login(world.alice).get(f"/decisions/{decision.pk}/").status_code == 200
    assert login(world.alice).get("/decisions/request/bob-req-1/")["Location"] == f"/decisions/{decision.pk}/"
    assert login(world.carol).get(f"/decisions/{decision.pk}/").status_code == 404
    assert login(world.omar).get("/decisions/request/bob-req-1/").status_code == 404


def test_the_models_page_lists_prices_and_quality(world, ladder):
    page = login(world.bob).get("/models/").content.decode()

    for model_id in ladder:
        assert f"<td>{model_id}</td>" in page
    assert '<td class="num">15</td>' in page  # premium's input price per million


def test_only_finance_and_admins_edit_rules(world, ladder):
    assert login(world.alice).get("/rules/").status_code == 403
    assert login(world.fiona).get("/rules/").status_code == 200


def test_invalid_rules_list_their_problems_and_publish_nothing(world, ladder):
    response = login(world.fiona).post(
        "/rules/",
        {
            "source": "rules:\n  - name: x\n    then: [{type: teleport}]\n",
            "sample": "hi",
            "action": "publish",
        },
    )

    assert response.status_code == 400
    assert "teleport" in response.content.decode()
    assert not RuleSetVersion.objects.exists()


def test_trying_a_draft_then_publishing_it(world, ladder, alpha_budget):
    client = login(world.fiona)
    tried = client.post(
        "/rules/", {"source": RULES, "sample": "user: write a python function that sorts", "action": "try"}
    )

    assert "The rules are valid." in tried.content.decode()
    assert not RuleSetVersion.objects.exists()

    published = client.post("/rules/", {"source": RULES, "sample": "hi", "action": "publish", "note": "v1"})

    assert published.status_code == 302
    assert RuleSetVersion.objects.get().source == RULES
