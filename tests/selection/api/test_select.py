"""POST /api/v1/models/select over HTTP: the seed's contract, the reservation it takes, retries,
refusals and their error bodies, steering rules and who may attribute or replay what.

The scoring scenarios themselves are covered through `admit()` in tests/selection/test_admission.py;
these tests pin what a client sees."""

from datetime import timedelta
from decimal import Decimal
from textwrap import dedent

import pytest
import simplejson
import tiktoken
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from budgets.models import Reservation, UsageRecord
from budgets.principals import principal_for_api_key
from budgets.services.ledger import UsageReport, usage_record_many
from selection.models import Decision
from selection.services import rule_set_publish
from tests.budgets.factories import make_api_key, team_budget
from tests.conftest import client_for, client_with_key
from tests.models_registry.factories import ModelProfileFactory

URL = "/api/v1/models/select"
HELLO = [{"role": "user", "content": "What is the capital of Peru?"}]
TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
MILLION = Decimal(1_000_000)


def exact(response) -> dict:
    """The body with every JSON number read as an exact Decimal (floats would hide rounding)."""
    return simplejson.loads(response.content, parse_float=Decimal)


def select(client, *, messages=HELLO, **body):
    request = body.pop("request", {})
    return client.post(URL, {"request": {"messages": messages, **request}, **body}, format="json")


def prompt_tokens(messages) -> int:
    """OpenAI's cookbook formula for o200k_base chat prompts, independent of the code under test."""
    encoding = tiktoken.get_encoding("o200k_base")
    return sum(3 + len(encoding.encode(m["role"])) + len(encoding.encode(m["content"])) for m in messages) + 3


def assert_error(response, status: int, code: str) -> dict:
    body = response.json()
    assert response.status_code == status, body
    assert body["status"] == status and body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    return body


@pytest.fixture
def key_client(world, team_key):
    return client_with_key(team_key[1])


@pytest.fixture
def alpha_budget(world):
    return team_budget(world.alpha, name="Alpha monthly", limit=Decimal("100"))


@pytest.fixture
def publish(world, django_capture_on_commit_callbacks):
    """Publish a rule set for Acme and have it in force for the next request."""

    def publish(source: str):
        with django_capture_on_commit_callbacks(execute=True):
            return rule_set_publish(organization=world.org, source=dedent(source))

    return publish


def spend(api_key, amount: str) -> None:
    usage_record_many(
        principal=principal_for_api_key(api_key),
        reports=[UsageReport(request_id=f"earlier-{amount}", cost=Decimal(amount), model="standard")],
    )


# --- the 201 contract -------------------------------------------------------------------------------


def test_it_answers_201_with_the_seed_contract_and_exact_amounts(world, ladder, key_client, alpha_budget):
    response = select(
        key_client,
        request={"maxTokens": 1000, "temperature": 0.2, "stream": False},
        requestId="req-123456",
        strategy="balanced",
    )

    assert response.status_code == 201, response.json()
    body = exact(response)
    tokens = prompt_tokens(HELLO)
    good = (tokens * Decimal("0.15") + 1000 * Decimal("0.60")) / MILLION
    standard = (tokens * Decimal("2.5") + 1000 * Decimal("10")) / MILLION
    assert body["requestId"] == "req-123456"
    assert body["selectedModel"] == "good"
    assert body["estimatedCost"] == {"amount": good, "currency": "USD"}
    assert body["estimatedTokens"] == {"input": tokens, "output": 1000}
    assert (body["tier"], body["provider"], body["taskType"], body["strategy"]) == (
        "simple",
        "openai",
        "chat",
        "balanced",
    )
    assert isinstance(body["complexity"], Decimal) and 0 <= body["complexity"] <= 1
    assert isinstance(body["qualityRequirement"], int)
    # No model asked for and no default model in the registry: nothing to measure savings against.
    assert (body["requestedModel"], body["requestedModelCost"], body["savings"]) == (None, None, None)
    assert body["budgetImpact"]["status"] == "low" and body["budgetImpact"]["budgetStatus"] == "normal"
    assert (body["rule"], body["changes"], body["replayed"]) == (None, [], False)

    first = body["alternatives"][0]
    assert set(first) == {
        "modelId",
        "reason",
        "code",
        "costDifference",
        "qualityDifference",
        "estimatedCost",
    }
    assert (first["modelId"], first["code"]) == ("standard", "ranked_lower")
    assert first["estimatedCost"] == standard
    assert first["costDifference"] == standard - good
    assert first["qualityDifference"] == 88 - 80
    assert {a["modelId"] for a in body["alternatives"]} == {"standard", "premium", "weak"}

    decision = Decision.objects.get()
    assert body["decisionId"] == decision.pk and body["reservationId"] == decision.reservation_id
    weak = (tokens * Decimal("0.05") + 1000 * Decimal("0.20")) / MILLION
    assert body["fallbackChain"] == [
        {"modelId": "weak", "estimatedCost": {"amount": weak, "currency": "USD"}}
    ]


def test_the_reservation_holds_the_estimated_cost_until_it_is_settled(
    world, ladder, key_client, alpha_budget
):
    body = exact(select(key_client, request={"maxTokens": 1000}, ttlSeconds=120))
    reservation_url = f"/api/v1/reservations/{body['reservationId']}"

    reservation = exact(key_client.get(reservation_url))
    assert (reservation["state"], reservation["amount"], reservation["model"]) == (
        "pending",
        body["estimatedCost"]["amount"],
        body["selectedModel"],
    )
    assert reservation["requestId"] == body["requestId"]
    assert parse_datetime(body["reservationExpiresAt"]) == parse_datetime(reservation["expiresAt"])
    assert parse_datetime(reservation["expiresAt"]) - parse_datetime(reservation["createdAt"]) == timedelta(
        seconds=120
    )
    status = exact(key_client.get(f"/api/v1/budgets/{alpha_budget.pk}/status"))
    assert status["reserved"] == body["estimatedCost"]["amount"]

    settled = key_client.post(
        f"{reservation_url}/settle",
        {"cost": "0.0004", "outcome": "success", "rating": 4},
        format="json",
    )

    assert settled.status_code == 201, settled.json()
    record = settled.json()
    assert (record["taskType"], record["outcome"], record["rating"]) == (body["taskType"], "success", 4)
    assert record["reservationId"] == body["reservationId"]
    usage = UsageRecord.objects.get()
    assert (usage.request_id, usage.model, usage.cost) == (body["requestId"], "good", Decimal("0.0004"))
    assert (usage.task_type, usage.outcome, usage.rating) == (body["taskType"], "success", 4)
    assert key_client.get(reservation_url).json()["state"] == "settled"
    status = exact(key_client.get(f"/api/v1/budgets/{alpha_budget.pk}/status"))
    assert (status["reserved"], status["currentAmount"]) == (0, Decimal("0.0004"))


def test_auto_is_the_same_as_asking_for_no_model(world, ladder, key_client):
    auto = select(key_client, request={"model": "auto"}, requestId="auto")
    plain = select(key_client, requestId="plain")

    assert auto.status_code == plain.status_code == 201
    assert auto.json()["selectedModel"] == plain.json()["selectedModel"] == "good"
    assert auto.json()["estimatedCost"] == plain.json()["estimatedCost"]


def test_a_named_model_is_reported_with_its_cost_and_no_savings(world, ladder, key_client, alpha_budget):
    body = exact(select(key_client, request={"model": "premium"}))

    assert body["selectedModel"] == body["requestedModel"] == "premium"
    assert body["requestedModelCost"] == body["estimatedCost"]
    assert body["savings"] == {"amount": 0, "currency": "USD"}


def test_without_a_budget_the_impact_says_unbudgeted(world, ladder, key_client):
    body = select(key_client).json()

    assert body["budgetImpact"] == {
        "percentOfRemaining": None,
        "status": "unbudgeted",
        "budgetStatus": "normal",
    }


def test_percent_of_remaining_is_a_number_rounded_up_to_four_places(
    world, ladder, key_client, team_key, alpha_budget
):
    spend(team_key[0], "72")

    body = exact(select(key_client, request={"model": "good"}))

    # The seed has it as a JSON number (0.63). 0.0002121 of the 28 left is 0.000757...%: rounded up,
    # so a cheap request never shows as taking nothing.
    assert body["selectedModel"] == "good"
    assert body["budgetImpact"] == {
        "percentOfRemaining": Decimal("0.0008"),
        "status": "low",
        "budgetStatus": "warning",
    }


# --- retries ----------------------------------------------------------------------------------------


def test_a_retry_answers_200_with_the_same_body_and_reserves_nothing_more(
    world, ladder, key_client, alpha_budget
):
    first = select(key_client, requestId="job-1")
    again = select(key_client, requestId="job-1")

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["replayed"] is True
    assert {**first.json(), "replayed": True} == again.json()
    assert Reservation.objects.count() == Decision.objects.count() == 1
    status = exact(key_client.get(f"/api/v1/budgets/{alpha_budget.pk}/status"))
    assert status["reserved"] == exact(first)["estimatedCost"]["amount"]


def test_a_lead_retrying_a_request_attributed_to_her_team_gets_the_replay(world, ladder):
    alice = client_for(world.alice)
    first = select(alice, requestId="lead-1", teamId=world.alpha.pk)
    again = select(alice, requestId="lead-1", teamId=world.alpha.pk)

    assert first.status_code == 201, first.json()
    assert again.status_code == 200, again.json()
    assert again.json()["decisionId"] == first.json()["decisionId"]


def test_another_teams_key_cannot_reuse_a_request_id_nor_read_its_decision(world, ladder, key_client):
    first = select(key_client, requestId="shared-id").json()
    beta = client_with_key(make_api_key(team=world.beta)[1])

    response = select(beta, requestId="shared-id")

    body = assert_error(response, 409, "idempotency_conflict")
    assert "decisionId" not in body.get("details", {})
    assert Decision.objects.count() == Reservation.objects.count() == 1
    assert_error(beta.get(f"/api/v1/explainer/{first['decisionId']}"), 404, "not_found")
    assert_error(beta.get("/api/v1/explainer/request/shared-id"), 404, "not_found")


# --- bad input: 400 and nothing stored -----------------------------------------------------------------


def test_an_unknown_model_is_a_400_and_nothing_is_stored(world, ladder, key_client, alpha_budget):
    response = select(key_client, request={"model": "gpt-9"})

    body = assert_error(response, 400, "unknown_model")
    assert body["details"] == {"model": ["Unknown model 'gpt-9'."]}
    assert not Decision.objects.exists() and not Reservation.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"colour": "blue"}, "colour", id="unknown-field"),
        pytest.param({"request": {"temprature": 0.2}}, "request", id="unknown-request-field"),
        pytest.param({"qualityRequirement": "ultra"}, "qualityRequirement", id="quality-ultra"),
        pytest.param({"qualityRequirement": 101}, "qualityRequirement", id="quality-101"),
        pytest.param({"qualityRequirement": -1}, "qualityRequirement", id="quality-negative"),
        pytest.param({"qualityRequirement": True}, "qualityRequirement", id="quality-true"),
        pytest.param({"strategy": "cheapest"}, "strategy", id="strategy"),
        pytest.param({"priority": "urgent"}, "priority", id="priority"),
        pytest.param({"maxCost": "-1"}, "maxCost", id="negative-max-cost"),
        pytest.param({"ttlSeconds": 0}, "ttlSeconds", id="ttl-zero"),
        pytest.param({"request": {"messages": []}}, "request", id="no-messages"),
        pytest.param({"request": {"taskType": "poetry"}}, "request", id="task-type"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_nothing_is_stored(
    world, ladder, key_client, alpha_budget, body, field
):
    request = {"messages": HELLO, **body.pop("request", {})}

    response = key_client.post(URL, {"request": request, **body}, format="json")

    error = assert_error(response, 400, "validation_error")
    assert field in error["details"]
    assert error["message"].startswith(field)
    assert not Decision.objects.exists() and not Reservation.objects.exists()


@pytest.mark.parametrize("quality", ["low", "medium", "high", "max", 0, 100])
def test_every_documented_quality_requirement_is_accepted(world, ladder, key_client, quality):
    assert select(key_client, qualityRequirement=quality).status_code == 201


def test_unauthenticated_callers_are_turned_away(world, ladder):
    response = select(APIClient())

    assert_error(response, 401, "not_authenticated")
    assert not Decision.objects.exists()


# --- refusals: an error body with the decision that explains it ----------------------------------------


def test_a_budget_refusal_is_a_402_whose_decision_the_explainer_shows(world, ladder, key_client):
    team_budget(world.alpha, limit=Decimal("0.00001"), thresholds=[])

    response = select(key_client, requestId="too-dear")

    body = assert_error(response, 402, "budget_exceeded")
    decision_id = body["details"]["decisionId"]
    assert {r["code"] for r in body["details"]["rejections"]} == {"exceeds_budget"}
    assert not Reservation.objects.exists()
    explained = key_client.get(f"/api/v1/explainer/{decision_id}").json()
    assert (explained["outcome"], explained["requestId"], explained["selectedModel"]) == (
        "refused",
        "too-dear",
        None,
    )
    assert explained["refusal"] == {"code": "budget_exceeded", "message": body["message"]}


def test_a_blocked_budget_refuses_ordinary_requests_but_admits_essential_ones(
    world, ladder, key_client, team_key, alpha_budget
):
    spend(team_key[0], "96")

    refused = select(key_client, priority="normal")
    admitted = select(key_client, priority="high")

    body = assert_error(refused, 402, "non_essential_blocked")
    assert body["details"]["budgetId"] == alpha_budget.pk and "decisionId" in body["details"]
    assert admitted.status_code == 201, admitted.json()


def test_a_tiny_cost_limit_is_named_in_plain_dollars(world, ladder, key_client):
    response = select(key_client, maxCost="0.0000001")

    body = assert_error(response, 402, "budget_exceeded")
    reasons = [r["reason"] for r in body["details"]["rejections"]]
    assert all("$0.0000001 per-request limit" in reason for reason in reasons), reasons


# --- attribution --------------------------------------------------------------------------------------


def test_attribution_outside_the_callers_scope_is_refused_and_nothing_is_stored(world, ladder, key_client):
    outside = select(key_client, teamId=world.beta.pk)
    not_a_member = select(client_for(world.bob), teamId=world.beta.pk)
    other_org = select(client_for(world.bob), teamId=world.other_team.pk)
    unknown_user = select(key_client, userId=world.omar.pk)

    assert_error(outside, 403, "permission_denied")
    assert_error(not_a_member, 403, "not_a_member")
    assert_error(other_org, 404, "unknown_team")
    assert_error(unknown_user, 404, "unknown_user")
    assert not Decision.objects.exists() and not Reservation.objects.exists()


def test_a_lead_may_attribute_to_her_member_and_the_decision_says_so(world, ladder):
    response = select(client_for(world.alice), teamId=world.alpha.pk, userId=world.bob.pk)

    assert response.status_code == 201, response.json()
    decision = Decision.objects.get()
    assert (decision.team, decision.user) == (world.alpha, world.bob)
    reservation = Reservation.objects.get()
    assert (reservation.team, reservation.user) == (world.alpha, world.bob)


# --- steering rules -----------------------------------------------------------------------------------


def test_a_deny_rule_answers_403_with_the_rules_code(world, ladder, key_client, publish):
    publish(
        """
        rules:
          - name: no-batch
            priority: 10
            when:
              - type: metadata
                tags: [batch]
            then:
              - type: deny
                reason: Batch jobs run overnight.
                code: batch_not_allowed
        """
    )

    denied = select(key_client, tags=["batch"], requestId="nightly")
    allowed = select(key_client, tags=["interactive"])

    body = assert_error(denied, 403, "batch_not_allowed")
    assert "Batch jobs run overnight." in body["message"]
    decision = Decision.objects.get(pk=body["details"]["decisionId"])
    assert (decision.outcome, decision.rule_name, decision.refusal_code) == (
        "refused",
        "no-batch",
        "batch_not_allowed",
    )
    assert allowed.status_code == 201 and allowed.json()["rule"] is None
    assert Reservation.objects.count() == 1


def test_a_route_to_rule_sends_the_request_to_its_model(world, ladder, key_client, publish):
    publish(
        """
        rules:
          - name: premium-to-standard
            when:
              - type: request
                model: premium
            then:
              - type: route-to
                model: standard
                fallback_chain: false
        """
    )

    body = select(key_client, request={"model": "premium"}).json()

    assert (body["selectedModel"], body["requestedModel"], body["rule"]) == (
        "standard",
        "premium",
        "premium-to-standard",
    )
    assert body["changes"] == [
        {"source": "rule", "rule": "premium-to-standard", "effect": "routed to standard"}
    ]
    assert body["fallbackChain"] == []
    # Routed away from a dearer model: the saving is what premium would have cost minus standard.
    assert Decimal(str(body["savings"]["amount"])) == Decimal(
        str(body["requestedModelCost"]["amount"])
    ) - Decimal(str(body["estimatedCost"]["amount"]))
    assert Decimal(str(body["savings"]["amount"])) > 0


def test_a_route_to_a_model_that_cannot_serve_is_a_422(world, ladder, key_client, publish):
    publish(
        """
        rules:
          - name: tools-to-weak
            when:
              - type: request
                path: /api/v1/models/*
            then:
              - type: route-to
                model: weak
        """
    )

    response = select(key_client, request={"tools": [TOOL]})

    body = assert_error(response, 422, "no_eligible_model")
    assert body["details"]["rejections"] == [
        {"model": "weak", "code": "missing_capability", "reason": "Does not support tools."}
    ]
    assert Decision.objects.get(pk=body["details"]["decisionId"]).refusal_code == "no_eligible_model"


SELECT_RULE = """
rules:
  - name: {name}
    when:
      - type: task
        task_type: chat
    then:
      - type: select-model
{action}
"""


def select_rule(name: str, **action) -> str:
    lines = "\n".join(f"        {key}: {value}" for key, value in action.items())
    return SELECT_RULE.format(name=name, action=lines)


def test_a_select_model_rules_strategy_wins_over_the_requests(world, ladder, key_client, publish):
    publish(select_rule("best-for-chat", strategy="quality_first"))

    body = select(key_client, strategy="cost_optimized").json()

    assert (body["strategy"], body["selectedModel"], body["rule"]) == (
        "quality_first",
        "premium",
        "best-for-chat",
    )
    assert {"source": "rule", "rule": "best-for-chat", "effect": "strategy quality_first"} in body["changes"]


def test_a_select_model_rules_allowed_models_are_respected(world, ladder, key_client, publish):
    publish(select_rule("cheap-only", strategy="quality_first", allowed_models='["good", "weak"]'))

    body = select(key_client, request={"model": "premium"}).json()

    assert (body["selectedModel"], body["rule"]) == ("good", "cheap-only")
    rejected = {a["modelId"]: a["code"] for a in body["alternatives"] if a["code"] != "ranked_lower"}
    assert rejected == {"premium": "not_allowed_by_rule"}
    decision = Decision.objects.get()
    assert {r["model"]: r["code"] for r in decision.rejections} == {
        "premium": "not_allowed_by_rule",
        "standard": "not_allowed_by_rule",
    }


def test_a_select_model_rules_cost_limit_is_respected(world, ladder, key_client, publish):
    publish(select_rule("penny-chat", strategy="quality_first", cost_limit="0.001"))

    body = exact(select(key_client))

    assert (body["selectedModel"], body["rule"]) == ("good", "penny-chat")
    assert body["estimatedCost"]["amount"] <= Decimal("0.001")
    decision = Decision.objects.get()
    assert {r["model"]: r["code"] for r in decision.rejections} == {
        "premium": "over_cost_limit",
        "standard": "over_cost_limit",
    }


def test_a_select_model_rule_that_changes_the_choice_is_listed_in_changes(world, ladder, key_client, publish):
    publish(select_rule("cheap-only", allowed_models='["good", "weak"]', cost_limit="0.001"))

    body = select(key_client, strategy="quality_first").json()

    assert body["selectedModel"] == "good"  # premium without the rule
    assert [c for c in body["changes"] if c.get("rule") == "cheap-only"], body["changes"]


def test_a_metadata_rule_matches_the_key_the_client_sent(world, ladder, key_client, publish):
    publish(
        """
        rules:
          - name: research-is-denied
            when:
              - type: metadata
                match:
                  costCenter: research
            then:
              - type: deny
                reason: Research has its own account.
        """
    )

    response = select(key_client, metadata={"costCenter": "research"})

    assert_error(response, 403, "denied_by_rule")


def test_a_rule_set_change_takes_effect_on_the_next_request(world, ladder, key_client, publish):
    assert select(key_client, requestId="before").json()["rule"] is None

    publish(select_rule("best-for-chat", strategy="quality_first"))

    assert select(key_client, requestId="after").json()["rule"] == "best-for-chat"


def test_a_model_deactivated_in_the_registry_is_no_longer_selected(
    world, ladder, key_client, django_capture_on_commit_callbacks
):
    assert select(key_client, requestId="before").json()["selectedModel"] == "good"

    with django_capture_on_commit_callbacks(execute=True):
        ladder["good"].is_active = False
        ladder["good"].save()

    assert select(key_client, requestId="after").json()["selectedModel"] != "good"


# --- a larger registry: the default model is the baseline for requests without one --------------------


def test_without_a_model_savings_are_measured_against_the_default_model(world, ladder, key_client, settings):
    ModelProfileFactory(id="house-default", input_price_per_million=Decimal("5"), output_price_per_million=20)
    settings.COSTSWITCH_DEFAULT_MODEL = "house-default"

    body = exact(select(key_client, request={"maxTokens": 1000}))

    tokens = prompt_tokens(HELLO)
    default_cost = (tokens * 5 + 1000 * 20) / MILLION
    assert body["requestedModel"] is None
    assert body["requestedModelCost"]["amount"] == default_cost
    assert body["savings"]["amount"] == default_cost - body["estimatedCost"]["amount"]
