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
