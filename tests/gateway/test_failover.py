"""Failover: a provider 429/5xx, timeout or connection error sends the request to the next model of
the decision's fallback chain, under the same reservation, and the decision records it."""

import openai
import pytest

from models_registry.models import Provider
from selection.models import Decision
from tests.gateway.conftest import price
from tests.gateway.ledger import assert_ledger_exact, only_usage

pytestmark = pytest.mark.django_db(transaction=True)
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_an_erroring_provider_fails_over_to_the_fallback(sdk, upstream, world, status):
    upstream.behaviour("big-2025").status = status

    raw = sdk.chat.completions.with_raw_response.create(model="big", messages=HELLO)

    assert raw.parse().choices[0].message.content == "Hello from the stub."
    assert raw.headers["x-costswitch-model"] == "small"
    assert upstream.models_called() == ["big-2025", "small"]
    usage = only_usage(world.org)
    assert usage.model == "small"
    assert usage.cost == price("small", 11, 7)  # charged at the model that served
    assert usage.reservation.amount >= usage.cost
    assert usage.metadata["failover"] == [{"model": "big", "error": f"HTTP {status}"}]
    decision = Decision.objects.get(pk=usage.metadata["decision_id"])
    assert decision.changes[-1]["effect"] == "failover to small"
    assert_ledger_exact(world.org)


def test_a_slow_provider_times_out_and_fails_over(sdk, upstream, world, settings):
    settings.COSTSWITCH_GATEWAY_READ_TIMEOUT = 0.3
    upstream.behaviour("big-2025").delay = 1.0

    raw = sdk.chat.completions.with_raw_response.create(model="big", messages=HELLO)

    assert raw.headers["x-costswitch-model"] == "small"
    usage = only_usage(world.org)
    assert usage.metadata["failover"][0]["error"].startswith("timeout")
    assert usage.cost == price("small", 11, 7)
    assert_ledger_exact(world.org)


def test_an_unreachable_provider_fails_over(sdk, upstream, world, registry):
    other = Provider.objects.create(
        name="downai", display_name="Down AI", base_url="http://127.0.0.1:9/v1", api_key_env=""
    )
    registry["big"].provider = other
    registry["big"].save()

    raw = sdk.chat.completions.with_raw_response.create(model="big", messages=HELLO)

    assert raw.headers["x-costswitch-model"] == "small"
    assert only_usage(world.org).metadata["failover"][0]["error"].startswith("connection error")
    assert_ledger_exact(world.org)


def test_a_missing_provider_key_fails_over_without_calling_it(sdk, upstream, world, monkeypatch):
    monkeypatch.delenv("STUB_API_KEY")
    # Both models are on the stub provider: neither can be called, so nothing is charged.
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="big", messages=HELLO)

    assert caught.value.status_code == 502
    assert caught.value.body["code"] == "upstream_unavailable"
    assert "STUB_API_KEY is not set" in caught.value.body["message"]
    assert upstream.requests == []
    assert not world.org.usage.exists()
    assert_ledger_exact(world.org)


def test_when_every_model_fails_nothing_is_charged(sdk, upstream, world):
    upstream.behaviour("big-2025").status = 500
    upstream.behaviour("small").status = 502

    with pytest.raises(openai.InternalServerError) as caught:
        sdk.chat.completions.create(model="big", messages=HELLO)

    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "api_error"
    assert upstream.models_called() == ["big-2025", "small"]
    assert not world.org.usage.exists()
    decision = Decision.objects.get()
    assert decision.reservation.state == "released"
    assert decision.changes[-1]["attempts"] == [
        {"model": "big", "error": "HTTP 500"},
        {"model": "small", "error": "HTTP 502"},
    ]
    assert_ledger_exact(world.org)


def test_a_fallback_dearer_than_the_reservation_is_never_called(sdk, upstream, world):
    # "small" is chosen (named); its only possible fallback, "big", costs more than its hold.
    upstream.behaviour("small").status = 503

    with pytest.raises(openai.InternalServerError):
        sdk.chat.completions.create(model="small", messages=HELLO)

    assert upstream.models_called() == ["small"]
    assert_ledger_exact(world.org)
