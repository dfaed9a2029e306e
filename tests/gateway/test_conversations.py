"""Per-conversation spend: usage carries the conversation id, a cap refuses what would pass it
(before any provider is called), and the conversation's cost is reported per model and per tool."""

from decimal import Decimal

import httpx
import openai
import pytest

from budgets.models import UsageRecord
from tests.budgets.factories import make_api_key
from tests.gateway.conftest import price
from tests.gateway.ledger import assert_ledger_exact

pytestmark = pytest.mark.django_db(transaction=True)
HELLO = [{"role": "user", "content": "Say hello."}]
CONVERSATION = {"X-Costswitch-Conversation-Id": "conv-1"}


def test_usage_is_recorded_on_the_conversation_with_its_running_cost(sdk, upstream, world):
    first = sdk.chat.completions.with_raw_response.create(
        model="small", messages=HELLO, extra_headers=CONVERSATION
    )
    second = sdk.chat.completions.with_raw_response.create(
        model="big", messages=HELLO, metadata={"conversation_id": "conv-1"}
    )

    assert set(UsageRecord.objects.values_list("conversation_id", flat=True)) == {"conv-1"}
    one, both = price("small", 11, 7), price("small", 11, 7) + price("big", 11, 7)
    assert Decimal(first.headers["x-costswitch-conversation-cost"]) == one
    assert Decimal(second.headers["x-costswitch-conversation-cost"]) == both
    assert_ledger_exact(world.org)


def test_a_conversation_at_its_cap_is_refused_before_any_provider_call(sdk, upstream, world, settings):
    settings.COSTSWITCH_CONVERSATION_BUDGET = "1"
    # The cap a request declares can only lower the setting. A call holds about $0.00008 (50 output
    # tokens) and costs $0.000016: this cap has room for the first hold, not for the second.
    cap = {**CONVERSATION, "X-Costswitch-Conversation-Budget": "0.00009"}
    sdk.chat.completions.create(model="small", messages=HELLO, max_tokens=50, extra_headers=cap)

    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="small", messages=HELLO, max_tokens=50, extra_headers=cap)

    assert caught.value.status_code == 402
    assert caught.value.body["code"] == "conversation_budget_exceeded"
    assert upstream.models_called() == ["small"]
    # Another conversation, and the same one under the setting's cap, still pass.
    sdk.chat.completions.create(
        model="small", messages=HELLO, extra_headers={"X-Costswitch-Conversation-Id": "c2"}
    )
    sdk.chat.completions.create(model="small", messages=HELLO, extra_headers=CONVERSATION)
    assert UsageRecord.objects.filter(conversation_id="conv-1").count() == 2
    assert_ledger_exact(world.org)


def test_a_request_whose_hold_would_pass_the_cap_is_refused_and_released(sdk, upstream, world):
    # Up to 4000 output tokens of "small" cost more than the 0.001 cap: refused after admission,
    # its hold released.
    cap = {**CONVERSATION, "X-Costswitch-Conversation-Budget": "0.001"}
    with pytest.raises(openai.APIStatusError) as caught:
        sdk.chat.completions.create(model="small", messages=HELLO, max_tokens=4000, extra_headers=cap)

    assert caught.value.body["code"] == "conversation_budget_exceeded"
    assert upstream.requests == []
    assert not world.org.usage.exists()
    assert_ledger_exact(world.org)


def test_a_header_cap_must_be_an_amount(sdk, upstream, world):
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(
            model="small",
            messages=HELLO,
            extra_headers={**CONVERSATION, "X-Costswitch-Conversation-Budget": "lots"},
        )

    assert caught.value.body["code"] == "invalid_conversation_budget"
    assert_ledger_exact(world.org)


def test_the_conversation_cost_is_reported_per_model_and_per_tool(
    sdk, upstream, world, live_server, gateway_key
):
    upstream.behaviour("small").tool_calls = [
        {"id": "a", "type": "function", "function": {"name": "search", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "fetch", "arguments": "{}"}},
    ]
    sdk.chat.completions.create(model="small", messages=HELLO, extra_headers=CONVERSATION)
    sdk.chat.completions.create(model="big", messages=HELLO, extra_headers=CONVERSATION)
    _, secret = gateway_key

    response = httpx.get(
        f"{live_server.url}/v1/costswitch/conversations/conv-1", headers={"Authorization": f"Bearer {secret}"}
    )

    body = response.json()
    small, big = price("small", 11, 7), price("big", 11, 7)
    assert response.status_code == 200
    assert body["requests"] == 2
    assert Decimal(str(body["cost"])) == small + big
    assert {m: Decimal(str(v["cost"])) for m, v in body["models"].items()} == {"small": small, "big": big}
    assert body["tools"]["search"]["calls"] == 1
    assert Decimal(str(body["tools"]["search"]["cost"])) == (small / 2).quantize(Decimal("0.000000001"))


def test_another_teams_key_sees_no_conversation(sdk, upstream, world, live_server):
    sdk.chat.completions.create(model="small", messages=HELLO, extra_headers=CONVERSATION)
    _, beta_secret = make_api_key(team=world.beta)
    _, outsider_secret = make_api_key(team=world.other_team)

    for secret in (beta_secret, outsider_secret):
        response = httpx.get(
            f"{live_server.url}/v1/costswitch/conversations/conv-1",
            headers={"Authorization": f"Bearer {secret}"},
        )
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "not_found_error"
