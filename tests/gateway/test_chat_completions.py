"""Plain (non-streamed) chat completions through the gateway with the OpenAI SDK."""

import json

import httpx
import openai
import pytest
from django.test import RequestFactory

from budgets.choices import ReservationState
from budgets.models import Reservation, UsageRecord
from selection.gateway.views import ChatCompletionsView
from selection.models import Decision
from tests.gateway.conftest import price
from tests.gateway.ledger import assert_ledger_exact, only_usage

pytestmark = pytest.mark.django_db(transaction=True)
HELLO = [{"role": "user", "content": "Say hello."}]


def test_it_forwards_a_named_model_and_charges_the_providers_usage(sdk, upstream, world):
    upstream.behaviour("big-2025").prompt_tokens = 1234
    upstream.behaviour("big-2025").completion_tokens = 567

    raw = sdk.chat.completions.with_raw_response.create(model="big", messages=HELLO, max_tokens=1000)
    completion = raw.parse()

    assert completion.choices[0].message.content == "Hello from the stub."
    assert upstream.requests[0]["body"]["model"] == "big-2025"  # the provider's own name
    assert upstream.requests[0]["authorization"] == "Bearer stub-secret"  # from STUB_API_KEY
    usage = only_usage(world.org)
    assert (usage.model, usage.provider, usage.input_tokens, usage.output_tokens) == (
        "big",
        "stubai",
        1234,
        567,
    )
    assert usage.cost == price("big", 1234, 567)
    assert usage.reservation.state == ReservationState.SETTLED
    assert raw.headers["x-costswitch-model"] == "big"
    assert raw.headers["x-costswitch-cost"] == str(usage.cost.normalize())
    assert raw.headers["x-costswitch-decision-id"] == str(usage.metadata["decision_id"])
    assert raw.headers["x-costswitch-budget-status"] == "normal"
    decision = Decision.objects.get(pk=usage.metadata["decision_id"])
    assert decision.path == "/v1/chat/completions"
    assert decision.reservation_id == usage.reservation_id
    assert_ledger_exact(world.org)


def test_auto_lets_costswitch_choose_and_charges_the_chosen_model(sdk, upstream, world):
    raw = sdk.chat.completions.with_raw_response.create(model="auto", messages=HELLO)

    chosen = raw.headers["x-costswitch-model"]
    usage = only_usage(world.org)
    assert usage.model == chosen
    assert upstream.models_called() == [{"big": "big-2025", "small": "small"}[chosen]]
    assert usage.cost == price(chosen, 11, 7)
    assert_ledger_exact(world.org)


def test_tool_calls_in_the_answer_are_recorded_on_the_usage(sdk, upstream, world):
    upstream.behaviour("small").tool_calls = [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
        },
        {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]

    completion = sdk.chat.completions.create(model="small", messages=HELLO, tools=tools)

    assert [c.function.name for c in completion.choices[0].message.tool_calls] == ["get_weather", "get_time"]
    usage = only_usage(world.org)
    assert usage.metadata["tool_calls"] == [
        {"id": "call_1", "name": "get_weather"},
        {"id": "call_2", "name": "get_time"},
    ]
    # Tool schemas are forwarded as sent (the camelCase parser never sees the body).
    assert upstream.requests[0]["body"]["tools"] == tools


def test_a_provider_refusal_is_passed_through_and_nothing_is_charged(sdk, upstream, world):
    upstream.behaviour("small").status = 400

    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(model="small", messages=HELLO)

    assert caught.value.body["message"] == "stub error 400"
    assert upstream.models_called() == ["small"]  # a 400 is not worth another model
    assert not world.org.usage.exists()
    assert_ledger_exact(world.org)


def test_a_bad_key_is_a_401_in_openais_shape(sdk, live_server):
    client = openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="cs_nope", max_retries=0)

    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="auto", messages=HELLO)

    assert caught.value.status_code == 401
    assert caught.value.body["type"] == "authentication_error"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "auto"}, "messages"),
        ({"model": "auto", "messages": [{"content": "no role"}]}, "messages[0]"),
        ({"model": 7, "messages": HELLO}, "model"),
        ({"model": "auto", "messages": HELLO, "max_tokens": 0}, "max_tokens"),
        ({"model": "no-such-model", "messages": HELLO}, "model"),
    ],
)
def test_bad_requests_are_400s_naming_the_field(sdk, gateway_key, live_server, upstream, world, body, param):
    _, secret = gateway_key
    response = httpx.post(
        f"{live_server.url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {secret}"}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    assert error["code"] and error["message"]
    assert upstream.requests == []
    assert_ledger_exact(world.org)


def test_models_lists_the_registry_and_auto(sdk):
    assert [m.id for m in sdk.models.list()] == ["auto", "big", "small"]


def test_the_answer_is_settled_when_the_server_closes_it_not_before(registry, budget, gateway_key, world):
    """The caller gets its answer before the ledger write: the hold stands until the WSGI server
    closes the response (after the last byte), then the charge replaces it."""
    _, secret = gateway_key
    request = RequestFactory().post(
        "/v1/chat/completions",
        data=json.dumps({"model": "small", "messages": HELLO}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
    )
    response = ChatCompletionsView.as_view()(request)

    assert response.status_code == 200
    reservation = Reservation.objects.get(organization=world.org)
    assert reservation.state == ReservationState.PENDING
    assert not UsageRecord.objects.exists()
    response.close()
    reservation.refresh_from_db()
    assert reservation.state == ReservationState.SETTLED
    assert response["x-costswitch-cost"] == str(only_usage(world.org).cost.normalize())
    assert_ledger_exact(world.org)
