"""Token counting: exact against tiktoken, the cookbook's chat overhead, family approximations, caching."""

import json
import math

import pytest
import tiktoken
from django.core.cache import cache
from hypothesis import given, settings
from hypothesis import strategies as st

from models_registry import tokens
from models_registry.choices import Tokenizer
from models_registry.tokens import (
    APPROXIMATIONS,
    CACHE_MIN_CHARS,
    IMAGE_TOKENS,
    IMAGE_TOKENS_LOW_DETAIL,
    cache_key,
    count_message_tokens,
    count_message_tokens_per_tokenizer,
    count_text_tokens,
)

EXACT = ["cl100k_base", "o200k_base"]
SPECIAL_TOKEN_TEXT = ["<|endoftext|>", "<|endofprompt|>", "<|fim_prefix|>", "<|im_start|>"]

# The example of OpenAI's cookbook "How to count tokens with tiktoken"; the OpenAI API reported 129
# prompt tokens for gpt-4-0613 (cl100k_base) and 124 for gpt-4o (o200k_base).
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English.",
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for "
        "increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]


def tiktoken_count(text: str, encoding: str) -> int:
    return len(tiktoken.get_encoding(encoding).encode(text, disallowed_special=()))


def long_conversation(marker: str = "") -> list[dict]:
    """A message list long enough to go through the cache."""
    return [
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": f"Summarise this report {marker}. " + "Revenue grew. " * CACHE_MIN_CHARS},
    ]


@pytest.fixture
def empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.mark.parametrize(
    ("text", "encoding", "expected"),
    [
        ("hello world", "cl100k_base", 2),
        ("hello world", "o200k_base", 2),
        ("Hello, world!", "cl100k_base", 4),
        ("The quick brown fox jumps over the lazy dog.", "o200k_base", 10),
        ("Ünïcödé 日本語のテキスト 🦊", "cl100k_base", 18),
        ("Ünïcödé 日本語のテキスト 🦊", "o200k_base", 14),
        ("def add(a, b):\n    return a + b\n", "cl100k_base", 12),
        ("<|endoftext|> is not special here", "cl100k_base", 11),
        ("<|endoftext|> is not special here", "o200k_base", 11),
        ("", "o200k_base", 0),
    ],
)
def test_it_counts_known_strings_exactly(text, encoding, expected):
    assert count_text_tokens(text, tokenizer=encoding) == expected


@pytest.mark.parametrize("encoding", EXACT)
@settings(max_examples=150, deadline=None)
@given(text=st.lists(st.one_of(st.text(), st.sampled_from(SPECIAL_TOKEN_TEXT)), max_size=8).map("".join))
def test_it_matches_tiktoken_for_any_text(encoding, text):
    assert count_text_tokens(text, tokenizer=encoding) == tiktoken_count(text, encoding)


@pytest.mark.parametrize(("encoding", "expected"), [("cl100k_base", 129), ("o200k_base", 124)])
def test_it_matches_the_cookbook_example(encoding, expected):
    assert count_message_tokens(COOKBOOK_MESSAGES, tokenizer=encoding) == expected


def test_it_adds_three_per_message_one_per_name_and_three_to_prime_the_reply():
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "name": "alice", "content": "hello world"},
    ]

    def n(text):
        return tiktoken_count(text, "cl100k_base")

    expected = (
        3 + (3 + n("system") + n("You are terse.")) + (3 + n("user") + n("alice") + 1 + n("hello world"))
    )
    assert count_message_tokens(messages, tokenizer="cl100k_base") == expected


def test_it_counts_text_parts_and_images_at_a_fixed_estimate():
    def with_content(content):
        return count_message_tokens([{"role": "user", "content": content}], tokenizer="o200k_base")

    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    low = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "low"}}
    text_only = with_content("Describe this.")

    assert with_content([{"type": "text", "text": "Describe this."}]) == text_only
    assert with_content([{"type": "text", "text": "Describe this."}, image]) == text_only + IMAGE_TOKENS
    assert with_content([{"type": "text", "text": "Describe this."}, low]) == (
        text_only + IMAGE_TOKENS_LOW_DETAIL
    )


def test_it_counts_tool_calls_and_tool_definitions():
    def n(text):
        return tiktoken_count(text, "o200k_base")

    arguments = '{"city":"Paris"}'
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
        ],
    }
    reply = {"role": "tool", "tool_call_id": "call_1", "content": "18C"}
    tool = {
        "type": "function",
        "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
    }

    got = count_message_tokens([call, reply], tokenizer="o200k_base", tools=[tool])

    expected = (
        3
        + (3 + n("assistant") + n("get_weather") + n(arguments))
        + (3 + n("tool") + n("call_1") + n("18C"))
        + n(json.dumps([tool], separators=(",", ":")))
    )
    assert got == expected


@pytest.mark.parametrize("family", sorted(APPROXIMATIONS))
def test_an_approximated_family_is_the_base_count_times_its_factor_rounded_up(family):
    base, factor = APPROXIMATIONS[family]
    text = "Quarterly revenue grew by 12% while costs fell; see the attached table for details."

    assert count_text_tokens(text, tokenizer=family) == math.ceil(tiktoken_count(text, base) * factor)
    assert count_message_tokens(COOKBOOK_MESSAGES, tokenizer=family) == math.ceil(
        count_message_tokens(COOKBOOK_MESSAGES, tokenizer=base) * factor
    )


def test_every_tokenizer_choice_is_countable():
    for tokenizer in Tokenizer:
        assert count_text_tokens("hello world", tokenizer=tokenizer) >= 2


def test_an_unknown_tokenizer_raises():
    with pytest.raises(ValueError, match="Unknown tokenizer 'gpt2'"):
        count_text_tokens("hello", tokenizer="gpt2")
    with pytest.raises(ValueError, match="Unknown tokenizer"):
        count_message_tokens([{"role": "user", "content": "hi"}], tokenizer="")


def test_content_of_the_wrong_type_raises():
    with pytest.raises(ValueError, match="string or a list of parts"):
        count_message_tokens([{"role": "user", "content": 42}], tokenizer="o200k_base")


def _messages_key(messages, base):
    canonical = json.dumps(
        {"messages": messages, "tools": None}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert len(canonical) >= CACHE_MIN_CHARS
    return cache_key(base, canonical)


def test_the_second_count_is_served_from_the_cache(empty_cache):
    messages = long_conversation()
    key = _messages_key(messages, "o200k_base")

    counted = count_message_tokens(messages, tokenizer="o200k_base")

    assert cache.get(key) == counted
    cache.set(key, 999_999)
    assert count_message_tokens(messages, tokenizer="o200k_base") == 999_999
    # A family on the same base shares the entry: only its factor is applied on top.
    assert count_message_tokens(messages, tokenizer="claude") == math.ceil(
        999_999 * APPROXIMATIONS["claude"][1]
    )


def test_different_content_gets_a_different_cache_entry(empty_cache):
    first, second = long_conversation("A"), long_conversation("B")

    count_message_tokens(first, tokenizer="cl100k_base")
    count_message_tokens(second, tokenizer="cl100k_base")

    first_key, second_key = _messages_key(first, "cl100k_base"), _messages_key(second, "cl100k_base")
    assert first_key != second_key
    assert cache.get(first_key) is not None
    assert cache.get(second_key) is not None
    assert _messages_key(first, "o200k_base") != first_key


def test_long_text_is_cached_and_short_inputs_are_not(empty_cache, monkeypatch):
    long_text = "All work and no play makes Jack a dull boy. " * (CACHE_MIN_CHARS // 10)
    count_text_tokens(long_text, tokenizer="cl100k_base")
    assert cache.get(cache_key("cl100k_base", json.dumps(long_text, ensure_ascii=False))) is not None

    # Any cache access now raises TypeError.
    monkeypatch.setattr(tokens, "cache_get", None)
    monkeypatch.setattr(tokens, "cache_set", None)
    count_text_tokens("hello world", tokenizer="cl100k_base")
    count_message_tokens([{"role": "user", "content": "hello world"}], tokenizer="cl100k_base")


def test_counting_for_several_tokenizers_at_once_equals_counting_each():
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Compare these invoices and name the cheaper model for each line."},
    ]
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    together = count_message_tokens_per_tokenizer(messages, tokenizers=Tokenizer.values, tools=tools)
    assert together == {
        name: count_message_tokens(messages, tokenizer=name, tools=tools) for name in Tokenizer.values
    }
