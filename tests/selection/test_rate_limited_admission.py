"""admit() and the rate limits of models and API keys (real Redis when REDIS_URL is set).

A model over its limit is skipped for the next best one; a request no model can take, or one over the
key's tokens per minute, is a 429 that reserves and consumes nothing; a budget refusal gives the quota
back; explaining a request takes nothing."""

from decimal import Decimal

import pytest

from budgets.models import Reservation
from budgets.principals import principal_for_api_key
from costswitch.errors import BudgetExceeded, RateLimited
from selection.admission import AdmissionRequest, admit
from selection.estimates import ChatRequest
from selection.models import Decision
from selection.snapshot import registry_changed
from tests.budgets.factories import make_api_key, team_budget
from tests.conftest import client_with_key
from tests.costswitch.limiters import isolated_limiter

HELLO = [{"role": "user", "content": "What is the capital of Peru?"}]


@pytest.fixture(autouse=True)
def limiter():
    with isolated_limiter() as limiter:
        yield limiter


def _request(request_id: str, **kwargs) -> AdmissionRequest:
    chat = ChatRequest(messages=HELLO, max_tokens=100)
    return AdmissionRequest(chat=chat, request_id=request_id, strategy="cost_optimized", **kwargs)


def _limit(model, **limits) -> None:
    for field, value in limits.items():
        setattr(model, field, value)
    model.save()
    registry_changed()


@pytest.fixture
def principal(world, team_key):
    team_budget(world.alpha, limit=Decimal("100"))
    return principal_for_api_key(team_key[0])


def test_a_model_over_its_request_limit_is_skipped_for_the_next_best(ladder, principal):
    _limit(ladder["good"], requests_per_minute=2)
    chosen = [
        admit(principal=principal, request=_request(f"r{n}", quality_requirement=75)).chosen.id
        for n in range(4)
    ]
    assert chosen == ["good", "good", "standard", "standard"]
    third = Decision.objects.get(request_id="r2")
    assert {"model": "good", "code": "rate_limited"}.items() <= next(
        r for r in third.rejections if r["model"] == "good"
    ).items()
    assert any(change["source"] == "rate_limit" for change in third.changes)


def test_when_every_model_is_limited_the_request_is_refused_and_nothing_is_reserved(ladder, principal):
    for model in ladder.values():
        _limit(model, requests_per_minute=1)
    # One each: good, standard, premium (meet the requirement, cheapest first), then weak (below it).
    admissions = [
        admit(principal=principal, request=_request(f"ok{n}", quality_requirement=75)) for n in range(4)
    ]
    assert [a.chosen.id for a in admissions] == ["good", "standard", "premium", "weak"]
    assert [a.ranking.requirement_met for a in admissions] == [True, True, True, False]
    with pytest.raises(RateLimited) as refused:
        admit(principal=principal, request=_request("over", quality_requirement=75))
    assert refused.value.status == 429 and refused.value.retry_after > 0
    assert {r["model"] for r in refused.value.details["rejections"] if r["code"] == "rate_limited"} == {
        "premium",
        "standard",
        "good",
        "weak",
    }
    assert not Reservation.objects.filter(request_id="over").exists()
    assert Decision.objects.get(request_id="over").refusal_code == "rate_limited"


def test_explaining_a_request_takes_no_quota(ladder, principal):
    _limit(ladder["good"], requests_per_minute=1)
    for n in range(3):
        explained = admit(
            principal=principal,
            request=_request(f"x{n}", quality_requirement=75),
            reserve=False,
            record=False,
        )
        assert explained.chosen.id == "good"
    assert admit(principal=principal, request=_request("real", quality_requirement=75)).chosen.id == "good"


def test_a_budget_refusal_gives_the_quota_back(world, ladder):
    team_budget(world.alpha, limit=Decimal("0.000001"))
    principal = principal_for_api_key(make_api_key(team=world.alpha)[0])
    _limit(ladder["weak"], requests_per_minute=1)
    _limit(ladder["good"], requests_per_minute=1)
    for n in range(3):
        with pytest.raises(BudgetExceeded):
            admit(principal=principal, request=_request(f"b{n}", quality_requirement=50))
    assert not Reservation.objects.exists()


def test_the_key_tokens_per_minute_limit_refuses_over_http(world, ladder):
    team_budget(world.alpha, limit=Decimal("100"))
    api_key, secret = make_api_key(team=world.alpha)
    api_key.tokens_per_minute = 150  # about 115 tokens a request
    api_key.save()
    client = client_with_key(secret)
    body = {"request": {"messages": HELLO, "maxTokens": 100}}
    assert client.post("/api/v1/models/select", {**body, "requestId": "t1"}, format="json").status_code == 201
    refused = client.post("/api/v1/models/select", {**body, "requestId": "t2"}, format="json")
    assert refused.status_code == 429, refused.json()
    assert int(refused["Retry-After"]) >= 1
    error = refused.json()
    assert error["code"] == "rate_limited" and error["details"]["scope"] == "api_key"
    assert Reservation.objects.filter(request_id="t2").count() == 0
