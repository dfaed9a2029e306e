"""Tokens section: what `count_message_tokens` costs per request, and whether its cache pays off.

Two chat requests (system + user + assistant), about 50 and 4,000 tokens with o200k_base, each counted
three ways with the encoding already loaded:

- no cache: counted every time (the cache threshold forced above the input's size);
- cache miss: unseen content each iteration, so hash + GET + count + SET;
- cache hit: the same content again, so hash + GET.

The cache is whatever settings configure (Redis under `make bench`). Nothing is flushed: misses use
content made unique with a per-run nonce (its entries expire like any other). The one-off cost of
loading each encoding is measured in fresh interpreters.

Django is imported inside the functions: the driver imports this module before django.setup().
"""

import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid

from bench.stats import format_table, latency_summary

TOKENIZER = "o200k_base"
SIZES = {"small": 50, "large": 4_000, "huge": 64_000}
MODES = ("no cache", "cache miss", "cache hit")
WARMUP = 20
LOAD_RUNS = 3
SENTENCES = (
    "Monthly spend on the support team rose by twelve percent after the new model went live.",
    "Route short classification prompts to the cheapest model that meets the quality bar.",
    "The forecast assumes traffic doubles in March while prices stay where they are today.",
    "Retries after provider errors count against the same budget as the original request.",
    "Summarise each invoice line, flag anything above the limit, and suggest a cheaper option.",
    "Latency matters less than cost for overnight batch jobs, so they can wait in the queue.",
    "Which model is cheapest?",
    "Answer in one line.",
    "Keep the budget.",
)

LOAD_ENCODING = """
import sys, time, tiktoken
started = time.perf_counter()
tiktoken.get_encoding(sys.argv[1])
print(time.perf_counter() - started)
"""


def add_arguments(parser) -> None:
    group = parser.add_argument_group("tokens section")
    group.add_argument(
        "--token-iterations", type=int, default=1000, help="timed calls per size and mode (default 1000)"
    )


def run(args) -> dict:
    from django.conf import settings

    from models_registry import tokens

    tokens._encoding(TOKENIZER)  # loaded once per process in production too: not part of a request
    iterations = args.token_iterations
    nonce = uuid.uuid4().hex[:12]
    scenarios = []
    for size, target in SIZES.items():
        template = _conversation(target)
        count = tokens.count_message_tokens(template, tokenizer=TOKENIZER)
        json_chars = len(json.dumps(template, separators=(",", ":"), ensure_ascii=False))
        for mode in MODES:
            seconds = _measure(tokens, template, mode, iterations, f"{nonce}-{size}")
            scenarios.append(
                {
                    "size": size,
                    "tokens": count,
                    "json_chars": json_chars,
                    "cached_by_default": json_chars >= tokens.CACHE_MIN_CHARS,
                    "mode": mode,
                    "iterations": iterations,
                    "latency_ms": latency_summary(seconds),
                }
            )
    return {
        "description": "count_message_tokens on a system + user + assistant request, encoding loaded; "
        "no cache vs cache miss vs cache hit",
        "config": {
            "tokenizer": TOKENIZER,
            "iterations": iterations,
            "warmup": WARMUP,
            "cache_backend": settings.CACHES["default"]["BACKEND"].rsplit(".", 1)[-1],
            "cache_min_chars": tokens.CACHE_MIN_CHARS,
        },
        "encoding_load_ms": {name: _load_time(name) for name in ("o200k_base", "cl100k_base")},
        "scenarios": scenarios,
    }


def render(result: dict) -> str:
    config = result["config"]
    loads = ", ".join(f"{name} {load['median']:.0f} ms" for name, load in result["encoding_load_ms"].items())
    lines = [
        f"tokens: count_message_tokens ({config['tokenizer']}), {config['iterations']} calls per row, "
        f"cache {config['cache_backend']}, cached from {config['cache_min_chars']} chars of JSON",
        f"encoding load, once per process (median of {LOAD_RUNS} fresh interpreters): {loads}",
        "",
    ]
    headers = ["request", "tokens", "cached by default", "mode", "calls", "p50 ms", "p99 ms", "mean ms"]
    rows = [
        [
            scenario["size"],
            scenario["tokens"],
            "yes" if scenario["cached_by_default"] else "no",
            scenario["mode"],
            scenario["iterations"],
            scenario["latency_ms"]["p50"],
            scenario["latency_ms"]["p99"],
            scenario["latency_ms"]["mean"],
        ]
        for scenario in result["scenarios"]
    ]
    return "\n".join([*lines, format_table(headers, rows)])


def _conversation(target_tokens: int) -> list[dict]:
    """A system + user + assistant request of about target_tokens, split 10% / 70% / 20%."""
    from models_registry.tokens import count_text_tokens

    rng = random.Random(target_tokens)
    # Joined with spaces, sentences keep their counts (" Route" is one token, like "Route").
    lengths = {sentence: count_text_tokens(sentence, tokenizer=TOKENIZER) for sentence in SENTENCES}
    shortest = min(SENTENCES, key=lengths.get)

    def text(tokens: int) -> str:
        sentences, total = [], 0
        while total < tokens:
            fitting = [sentence for sentence, n in lengths.items() if n <= tokens - total] or [shortest]
            sentences.append(rng.choice(fitting))
            total += lengths[sentences[-1]]
        return " ".join(sentences)

    body = target_tokens - 15  # 3 per message, 3 to prime the reply, 1 per role
    return [
        {"role": "system", "content": text(body // 10)},
        {"role": "user", "content": text(body * 7 // 10)},
        {"role": "assistant", "content": text(body // 5)},
    ]


def _measure(tokens, template: list[dict], mode: str, iterations: int, nonce: str) -> list[float]:
    def variant(i: int) -> list[dict]:
        system, user, assistant = template
        marked = {**user, "content": f"{user['content']} (request {nonce}-{mode}-{i})"}
        return [system, marked, assistant]

    saved_threshold = tokens.CACHE_MIN_CHARS
    tokens.CACHE_MIN_CHARS = sys.maxsize if mode == "no cache" else 0
    try:
        seconds = []
        for i in range(iterations + WARMUP):
            # A hit repeats one request, whose first (warm-up) call fills the cache.
            messages = variant(0 if mode == "cache hit" else i)
            started = time.perf_counter()
            tokens.count_message_tokens(messages, tokenizer=TOKENIZER)
            seconds.append(time.perf_counter() - started)
    finally:
        tokens.CACHE_MIN_CHARS = saved_threshold
    return seconds[WARMUP:]


def _load_time(name: str) -> dict:
    from django.conf import settings

    env = {**os.environ, "TIKTOKEN_CACHE_DIR": settings.TIKTOKEN_CACHE_DIR}
    runs = []
    for _ in range(LOAD_RUNS):
        output = subprocess.run(
            [sys.executable, "-c", LOAD_ENCODING, name],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        runs.append(round(float(output) * 1000, 1))
    return {"median": statistics.median(runs), "runs": runs}
