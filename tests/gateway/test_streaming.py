"""Streamed chat completions: passed through chunk by chunk, settled from the usage chunk, and
charged for what was produced when the client goes away mid-stream."""

import time

import pytest

from budgets.choices import ReservationState
from budgets.models import Reservation, UsageRecord
from models_registry.tokens import count_message_tokens, count_text_tokens
from tests.gateway.conftest import price
from tests.gateway.ledger import assert_ledger_exact, only_usage

pytestmark = pytest.mark.django_db(transaction=True)
HELLO = [{"role": "user", "content": "Tell me a story."}]


def test_a_stream_is_passed_through_and_settled_from_the_usage_chunk(sdk, upstream, world):
    upstream.behaviour("small").completion_tokens = 42

    stream = sdk.chat.completions.create(model="small", messages=HELLO, stream=True)
    chunks = list(stream)

    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there!"
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage: not sent to it
    assert upstream.requests[0]["body"]["stream_options"] == {"include_usage": True}  # asked upstream
    usage = only_usage(world.org)
    assert (usage.input_tokens, usage.output_tokens) == (11, 42)
    assert usage.cost == price("small", 11, 42)
    assert usage.metadata["stream"] == "completed"
    assert_ledger_exact(world.org)


def test_a_client_asking_for_usage_gets_the_usage_chunk(sdk, upstream, world):
    stream = sdk.chat.completions.create(
        model="big", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)

    assert chunks[-1].usage.completion_tokens == 7
    assert only_usage(world.org).cost == price("big", 11, 7)
    assert_ledger_exact(world.org)


def test_a_client_that_disconnects_mid_stream_is_charged_for_what_was_produced(sdk, upstream, world):
    pieces = [f"word{i} " for i in range(200)]
    upstream.behaviour("small").chunks = pieces
    upstream.behaviour("small").chunk_delay = 0.02

    with sdk.chat.completions.with_streaming_response.create(
        model="small", messages=HELLO, stream=True
    ) as response:
        assert response.headers["x-costswitch-model"] == "small"
        received = 0
        for line in response.iter_lines():
            received += line.startswith("data:")
            if received == 3:
                break
    # The client is gone; the gateway notices at its next write and settles.
    deadline = time.monotonic() + 15
    while not UsageRecord.objects.filter(organization=world.org).exists():
        assert time.monotonic() < deadline, "the gateway never settled the abandoned stream"
        time.sleep(0.05)

    usage = only_usage(world.org)
    streamed = usage.metadata["streamed_chunks"]
    assert usage.metadata["stream"] == "client_disconnected"
    assert usage.metadata["usage_source"] == "estimated"
    assert 3 <= streamed < len(pieces)
    assert usage.output_tokens == count_text_tokens("".join(pieces[:streamed]), tokenizer="o200k_base")
    assert usage.input_tokens == count_message_tokens(HELLO, tokenizer="o200k_base")
    assert usage.cost == price("small", usage.input_tokens, usage.output_tokens)
    assert Reservation.objects.get().state == ReservationState.SETTLED
    assert_ledger_exact(world.org)
    while not upstream.streams[0].broken:  # the provider's stream is closed too
        assert time.monotonic() < deadline, "the gateway kept reading the provider's stream"
        time.sleep(0.05)
