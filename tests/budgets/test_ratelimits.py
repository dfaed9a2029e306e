"""Admission rate limits: the first ranked model within its limits is taken together with the key's
tokens, in one round trip; a model over its limit is skipped, and refusals take nothing."""

import pytest

from budgets.models import ApiKey
from budgets.ratelimits import MAX_MODELS_TRIED, ModelDemand, admission_rate_limit
from costswitch import ratelimit
from costswitch.errors import RateLimited
from costswitch.ratelimit import Bucket
from tests.costswitch.limiters import isolated_limiter


@pytest.fixture(autouse=True)
def limiter():
    with isolated_limiter() as limiter:
        yield limiter


def key(tokens_per_minute=None) -> ApiKey:
    return ApiKey(pk=7, tokens_per_minute=tokens_per_minute)  # the row authentication loaded


def test_nothing_limited_needs_no_round_trip(monkeypatch):
    def no_calls(*args, **kwargs):
        raise AssertionError("the limiter was asked")

    monkeypatch.setattr(ratelimit, "acquire_first", no_calls)
    gate = admission_rate_limit(
        api_key=key(), tokens=500, demands=[ModelDemand("a", 500), ModelDemand("b", 500)]
    )
    assert gate.allowed
    assert gate.index == 0
    assert gate.skipped == {}


def test_a_model_over_its_limit_is_skipped_for_the_next_one():
    ratelimit.acquire(ratelimit.model_bucket("a", "rpm"), 1)
    gate = admission_rate_limit(
        api_key=key(),
        tokens=500,
        demands=[ModelDemand("a", 500, requests_per_minute=1), ModelDemand("b", 520, requests_per_minute=10)],
    )
    assert gate.index == 1
    assert list(gate.skipped) == ["a"]
    assert gate.reason("a").startswith("over its limit of 1 requests per minute (retry in")
    assert ratelimit.acquire(ratelimit.model_bucket("b", "rpm"), 10).remaining == 8


def test_a_model_refusal_takes_none_of_the_keys_tokens():
    ratelimit.acquire(ratelimit.model_bucket("a", "tpm"), 1000, cost=1000)
    gate = admission_rate_limit(
        api_key=key(tokens_per_minute=1000),
        tokens=600,
        demands=[ModelDemand("a", 600, tokens_per_minute=1000)],
    )
    assert not gate.allowed
    assert ratelimit.acquire(ratelimit.api_key_bucket(7, "tpm"), 1000, cost=1000).allowed


def test_the_key_pays_its_tokens_once_with_the_model_taken():
    gate = admission_rate_limit(
        api_key=key(tokens_per_minute=1000),
        tokens=600,
        demands=[ModelDemand("a", 610, tokens_per_minute=5000), ModelDemand("b", 600)],
    )
    assert gate.index == 0
    assert ratelimit.acquire(ratelimit.api_key_bucket(7, "tpm"), 1000, cost=401).allowed is False
    assert ratelimit.acquire(ratelimit.model_bucket("a", "tpm"), 5000, cost=4390).allowed


def test_an_unlimited_model_is_the_last_one_tried():
    ratelimit.acquire(ratelimit.model_bucket("a", "rpm"), 1)
    gate = admission_rate_limit(
        api_key=None,
        tokens=100,
        demands=[
            ModelDemand("a", 100, requests_per_minute=1),
            ModelDemand("free", 100),
            ModelDemand("c", 100, requests_per_minute=1),
        ],
    )
    assert gate.index == 1
    assert list(gate.skipped) == ["a"]
    assert ratelimit.acquire(ratelimit.model_bucket("c", "rpm"), 1).allowed  # never asked


def test_every_model_over_its_limit_is_a_429_naming_them():
    ratelimit.acquire(ratelimit.model_bucket("a", "rpm"), 1)
    ratelimit.acquire(ratelimit.model_bucket("b", "tpm"), 100, cost=100)
    gate = admission_rate_limit(
        api_key=key(tokens_per_minute=10_000),
        tokens=50,
        demands=[
            ModelDemand("a", 50, requests_per_minute=1),
            ModelDemand("b", 50, tokens_per_minute=100),
            ModelDemand("c", 500, tokens_per_minute=100),
        ],
    )
    assert not gate.allowed
    error = gate.error
    assert isinstance(error, RateLimited)
    assert (error.status, error.code) == (429, "rate_limited")
    assert 29 < error.retry_after <= 30  # b frees 50 tokens in 30 s; a needs 60 s; c never fits
    assert error.details["scope"] == "model"
    models = {entry["model"]: entry for entry in error.details["models"]}
    assert models["a"]["unit"] == "requests"
    assert models["b"]["unit"] == "tokens"
    assert models["c"]["exceeds_limit"] is True
    assert set(gate.skipped) == {"a", "b", "c"}
    assert ratelimit.acquire(ratelimit.api_key_bucket(7, "tpm"), 10_000, cost=10_000).allowed


def test_a_key_over_its_token_limit_is_a_429_and_takes_no_model_quota():
    ratelimit.acquire(ratelimit.api_key_bucket(7, "tpm"), 1000, cost=900)
    gate = admission_rate_limit(
        api_key=key(tokens_per_minute=1000),
        tokens=200,
        demands=[ModelDemand("a", 200, requests_per_minute=1)],
    )
    assert not gate.allowed
    assert gate.error.details["scope"] == "api_key"
    assert gate.error.details["limit"] == 1000
    assert gate.error.details["unit"] == "tokens"
    assert 5 < gate.error.retry_after <= 6  # 100 tokens at 0.06 s each
    assert "over its limit of 1000 tokens per minute" in gate.error.message
    assert ratelimit.acquire(ratelimit.model_bucket("a", "rpm"), 1).allowed


def test_a_request_larger_than_the_keys_token_limit_says_it_cannot_pass():
    gate = admission_rate_limit(
        api_key=key(tokens_per_minute=1000), tokens=1500, demands=[ModelDemand("a", 1500)]
    )
    assert not gate.allowed
    assert "cannot pass until the limit is raised" in gate.error.message


def test_explaining_takes_nothing():
    demands = [ModelDemand("a", 100, requests_per_minute=1)]
    for _ in range(3):
        gate = admission_rate_limit(
            api_key=key(tokens_per_minute=100), tokens=100, demands=demands, consume=False
        )
        assert gate.index == 0
        assert gate.taken == ()
    assert ratelimit.acquire_many(
        [Bucket(ratelimit.api_key_bucket(7, "tpm"), 100, 100), Bucket(ratelimit.model_bucket("a", "rpm"), 1)]
    ).allowed


def test_refund_gives_the_quota_back_when_the_budget_refuses_later():
    demands = [ModelDemand("a", 100, requests_per_minute=1)]
    gate = admission_rate_limit(api_key=key(tokens_per_minute=100), tokens=100, demands=demands)
    assert gate.allowed
    gate.refund()
    assert admission_rate_limit(api_key=key(tokens_per_minute=100), tokens=100, demands=demands).allowed
    assert not admission_rate_limit(api_key=key(tokens_per_minute=100), tokens=100, demands=demands).allowed


def test_it_needs_a_ranked_model():
    with pytest.raises(ValueError):
        admission_rate_limit(api_key=None, tokens=1, demands=[])


def test_at_most_a_few_limited_models_are_tried():
    demands = [ModelDemand(f"m{n}", 10, requests_per_minute=1) for n in range(MAX_MODELS_TRIED + 1)]
    for demand in demands[:-1]:
        ratelimit.acquire(ratelimit.model_bucket(demand.model_id, "rpm"), 1)
    gate = admission_rate_limit(api_key=None, tokens=10, demands=demands)
    assert not gate.allowed
    assert len(gate.skipped) == MAX_MODELS_TRIED
    assert gate.error.details["scope"] == "model"


def test_a_lone_limited_model_is_checked_too():
    """A ranking of one model (a rule's route-to, a single registered model) still honours its limit."""
    only = [ModelDemand("solo", 100, requests_per_minute=1)]
    assert admission_rate_limit(api_key=key(), tokens=100, demands=only).allowed
    refused = admission_rate_limit(api_key=key(), tokens=100, demands=only)
    assert not refused.allowed
    assert refused.error.status == 429
