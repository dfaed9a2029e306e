"""A small registry with a clear price ladder, shared by the selection tests.

premium  $15/$75 per 1M, quality 95, vision+tools   (dearer than the premium line: needs approval >85%)
standard $2.5/$10,      quality 88, vision+tools
good     $0.15/$0.60,   quality 80, tools
weak     $0.05/$0.20,   quality 55, no tools
"""

from decimal import Decimal

import pytest
from django.core.cache import cache

from tests.models_registry.factories import ModelProfileFactory

TASKS = ["chat", "code", "math", "reasoning", "summarization", "extraction", "translation", "creative"]


def quality(score: int, **overrides) -> dict:
    return {**dict.fromkeys(TASKS, score), **overrides}


def engine_candidate(model_id: str, quality: int, price: str, *, task: str = "chat", tokens: int = 1000):
    """A candidate for `selection.engine.rank` without the database: one task type's score, the
    same price in and out, `tokens` of each."""
    from selection.engine import Candidate
    from selection.snapshot import ModelSnapshot

    model = ModelSnapshot(
        id=model_id,
        provider=model_id,
        provider_status="active",
        tokenizer="o200k_base",
        context_window=128_000,
        max_output_tokens=4_000,
        input_price_per_million=Decimal(price),
        output_price_per_million=Decimal(price),
        cached_input_price_per_million=None,
        capabilities=frozenset(),
        quality={task: quality},
        mean_quality=float(quality),
        typical_latency_ms=None,
        is_active=True,
        fallbacks=(),
    )
    return Candidate(model, tokens, tokens, Decimal(price) * 2 * tokens / 1_000_000)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Registry snapshots, rule versions and history live in the cache; every test starts clean."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def ladder(db):
    return {
        "premium": ModelProfileFactory(
            id="premium",
            input_price_per_million=Decimal("15"),
            output_price_per_million=Decimal("75"),
            supports_vision=True,
            quality_scores=quality(95),
        ),
        "standard": ModelProfileFactory(
            id="standard",
            input_price_per_million=Decimal("2.5"),
            output_price_per_million=Decimal("10"),
            supports_vision=True,
            quality_scores=quality(88),
        ),
        "good": ModelProfileFactory(
            id="good",
            input_price_per_million=Decimal("0.15"),
            output_price_per_million=Decimal("0.60"),
            quality_scores=quality(80),
        ),
        "weak": ModelProfileFactory(
            id="weak",
            input_price_per_million=Decimal("0.05"),
            output_price_per_million=Decimal("0.20"),
            supports_tools=False,
            quality_scores=quality(55),
        ),
    }
