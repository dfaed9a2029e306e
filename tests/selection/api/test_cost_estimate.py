from decimal import Decimal

import pytest
import tiktoken
from django.core.cache import cache

from budgets.models import UsageRecord
from budgets.principals import principal_for_api_key
from budgets.services.ledger import UsageReport, usage_record_many
from models_registry.models import PriceChange
from selection.estimates import DEFAULT_OUTPUT_TOKENS, HISTORY_MIN_SAMPLES
from tests.budgets.factories import team_budget
from tests.conftest import client_for, client_with_key
from tests.models_registry.factories import ModelProfileFactory

URL = "/api/v1/cost/estimate"
SYSTEM = "You are a helpful assistant."
ESSAY = "Write a 500 word essay about artificial intelligence."
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ESSAY}]


def _o200k_prompt_tokens(messages) -> int:
    """OpenAI's cookbook formula, computed independently of the code under test."""
    encoding = tiktoken.get_encoding("o200k_base")
    return sum(3 + len(encoding.encode(m["role"])) + len(encoding.encode(m["content"])) for m in messages) + 3


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def catalog(db):
    """A strong, a cheap-but-good and a cheap-but-weak model, all counted with o200k_base."""
    return {
        "strong": ModelProfileFactory(
            id="strong",
            input_price_per_million=Decimal("10"),
            output_price_per_million=Decimal("30"),
            quality_scores={"chat": 90, "code": 92},
        ),
        "good": ModelProfileFactory(
            id="good",
            input_price_per_million=Decimal("0.5"),
            output_price_per_million=Decimal("1.5"),
            quality_scores={"chat": 86, "code": 70},
        ),
        "weak": ModelProfileFactory(
            id="weak",
            input_price_per_million=Decimal("0.1"),
            output_price_per_million=Decimal("0.4"),
            quality_scores={"chat": 60, "code": 40},
        ),
    }


def _estimate(client, *, model="strong", alternatives=("good", "weak"), **request):
    body = {"request": {"model": model, "messages": MESSAGES, **request}, "alternatives": list(alternatives)}
    return client.post(URL, body, format="json")


def test_it_answers_in_the_seed_shape_with_exact_tokens_and_costs(world, catalog, team_key):
    team_budget(world.alpha, limit=Decimal("10"))
    _, secret = team_key

    response = _estimate(client_with_key(secret), maxTokens=1000)

    assert response.status_code == 200, response.json()
    body = response.json()
    prompt = _o200k_prompt_tokens(MESSAGES)
    strong = body["estimates"][0]
    assert [e["model"] for e in body["estimates"]] == ["strong", "good", "weak"]
    assert strong["inputTokens"] == prompt and strong["outputTokens"] == 1000
    assert strong["outputTokensSource"] == "max_tokens"
    assert strong["estimatedTokens"] == prompt + 1000
    # prompt * 10 / 1e6 + 1000 * 30 / 1e6, exact
    assert Decimal(str(strong["estimatedCost"])) == Decimal(prompt) * 10 / 1_000_000 + Decimal("0.03")
    assert strong["budgetImpact"] == "medium"  # ~0.03 of 10 remaining: over 0.1%, under 1%
    assert body["recommendation"] == "good"  # 4 points below strong on chat: within tolerance
    assert body["budgetStatus"] == {
        "currentBudget": f"team-{world.alpha.pk}",
        "budgetId": body["budgetStatus"]["budgetId"],
        "budgetName": body["budgetStatus"]["budgetName"],
        "remainingBudget": 10,
        "percentRemaining": 100,
        "status": "normal",
        "aggregateStatus": "normal",
    }
    assert body["taskType"] == "chat" and body["taskTypeSource"] == "detected"


def test_models_estimate_is_the_same_contract(world, catalog):
    client = client_for(world.bob)
    body = {"request": {"model": "strong", "messages": MESSAGES}, "alternatives": ["weak"]}
    first = client.post("/api/v1/models/estimate", body, format="json")
    second = client.post(URL, body, format="json")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()


def test_without_max_tokens_it_uses_the_task_types_default_and_says_so(world, catalog):
    response = _estimate(client_for(world.bob), taskType="code", alternatives=())
    estimate = response.json()["estimates"][0]
    assert estimate["outputTokens"] == DEFAULT_OUTPUT_TOKENS["code"]
    assert estimate["outputTokensSource"] == "default"
    assert response.json()["taskTypeSource"] == "given"


def test_it_learns_output_length_from_the_ledger_once_there_are_enough_samples(world, catalog, team_key):
    api_key, secret = team_key
    principal = principal_for_api_key(api_key)
    lengths = [100 + 10 * i for i in range(HISTORY_MIN_SAMPLES)]  # mean 195
    usage_record_many(
        principal=principal,
        reports=[
            UsageReport(request_id=f"r{i}", cost=Decimal("0.001"), output_tokens=n, task_type="summarization")
            for i, n in enumerate(lengths[:-1])
        ],
    )
    too_few = _estimate(client_with_key(secret), taskType="summarization", alternatives=())
    assert too_few.json()["estimates"][0]["outputTokensSource"] == "default"

    usage_record_many(
        principal=principal,
        reports=[
            UsageReport(
                request_id="last", cost=Decimal("0.001"), output_tokens=lengths[-1], task_type="summarization"
            )
        ],
    )
    cache.clear()  # the learned figure is cached for a few minutes
    learned = _estimate(client_with_key(secret), taskType="summarization", alternatives=()).json()[
        "estimates"
    ][0]
    assert learned["outputTokensSource"] == "history"
    assert learned["outputTokens"] == sum(lengths) // len(lengths) == 195


def test_output_never_exceeds_the_models_own_limit(world, catalog):
    ModelProfileFactory(id="short", max_output_tokens=256, context_window=4096)
    estimate = _estimate(client_for(world.bob), model="short", alternatives=(), maxTokens=4000).json()[
        "estimates"
    ][0]
    assert estimate["outputTokens"] == 256


def test_a_prompt_beyond_the_context_window_is_flagged_and_never_recommended(world, catalog):
    ModelProfileFactory(
        id="tiny-window", context_window=30, max_output_tokens=10, input_price_per_million=Decimal("0.01")
    )
    body = _estimate(client_for(world.bob), model="strong", alternatives=("tiny-window",)).json()
    tiny = next(e for e in body["estimates"] if e["model"] == "tiny-window")
    assert tiny["fitsContext"] is False
    assert body["recommendation"] == "strong"


def test_a_restricted_or_over_budget_model_is_not_recommended(world, catalog, team_key):
    _, secret = team_key
    budget = team_budget(world.alpha, limit=Decimal("0.0001"), restricted_models=["good"])
    body = _estimate(client_with_key(secret), alternatives=("good", "weak"), maxTokens=1000).json()
    impacts = {e["model"]: e["budgetImpact"] for e in body["estimates"]}
    assert impacts["strong"] == "exceeds"
    assert body["recommendation"] is None  # good costs more than remains; weak is 30 points worse
    assert body["budgetStatus"]["budgetId"] == budget.pk


def test_without_any_budget_the_impact_is_unbudgeted(world, catalog):
    body = _estimate(client_for(world.bob)).json()
    assert {e["budgetImpact"] for e in body["estimates"]} == {"unbudgeted"}
    assert body["budgetStatus"] is None


def test_content_parts_and_tools_are_counted(world, catalog):
    parts = [{"role": "user", "content": [{"type": "text", "text": ESSAY}]}]
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    client = client_for(world.bob)
    plain = client.post(URL, {"request": {"model": "weak", "messages": parts}}, format="json").json()
    with_tools = client.post(
        URL, {"request": {"model": "weak", "messages": parts, "tools": tools}}, format="json"
    ).json()
    assert with_tools["estimates"][0]["inputTokens"] > plain["estimates"][0]["inputTokens"] > 0


def test_openai_parameters_that_do_not_change_cost_are_accepted(world, catalog):
    response = _estimate(
        client_for(world.bob), temperature=0.2, stream=True, responseFormat={"type": "json_object"}
    )
    assert response.status_code == 200, response.json()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"request": {"model": "strong", "messages": []}}, 400, "validation_error"),
        ({"request": {"model": "strong"}}, 400, "validation_error"),
        (
            {"request": {"model": "strong", "messages": [{"role": "user", "content": 42}]}},
            400,
            "validation_error",
        ),
        (
            {"request": {"model": "strong", "messages": [{"role": "robot", "content": "hi"}]}},
            400,
            "validation_error",
        ),
        ({"request": {"model": "strong", "messages": MESSAGES, "maxTokens": -5}}, 400, "validation_error"),
        ({"request": {"model": "strong", "messages": MESSAGES, "maxToken": 5}}, 400, "validation_error"),
        ({"request": {"model": "nope", "messages": MESSAGES}}, 400, "unknown_model"),
        (
            {"request": {"model": "strong", "messages": MESSAGES}, "alternatives": ["claude-instant"]},
            400,
            "unknown_model",
        ),
        ({"request": {"messages": MESSAGES}}, 400, "validation_error"),
        (
            {"request": {"model": "strong", "messages": MESSAGES, "taskType": "poetry"}},
            400,
            "validation_error",
        ),
    ],
)
def test_bad_input_gets_a_clear_error_and_writes_nothing(world, catalog, body, status, code):
    before = (UsageRecord.objects.count(), PriceChange.objects.count())
    response = client_for(world.bob).post(URL, body, format="json")
    assert response.status_code == status, response.json()
    assert response.json()["code"] == code
    assert response.json()["message"]
    if "maxToken" in body["request"]:
        assert response.json()["message"] == "request.maxToken: Unknown field."
    assert (UsageRecord.objects.count(), PriceChange.objects.count()) == before


def test_a_ten_megabyte_message_is_refused_before_counting(world, catalog):
    huge = [{"role": "user", "content": "a" * (10 * 1024 * 1024)}]
    response = client_for(world.bob).post(
        URL, {"request": {"model": "strong", "messages": huge}}, format="json"
    )
    assert response.status_code == 413
    assert response.json()["code"] == "prompt_too_large"


def test_it_needs_authentication(catalog):
    from rest_framework.test import APIClient

    response = APIClient().post(URL, {"request": {"model": "strong", "messages": MESSAGES}}, format="json")
    assert response.status_code in (401, 403)
