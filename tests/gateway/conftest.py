"""The gateway served for real (pytest-django's live server) in front of a stub provider on
127.0.0.1, driven by the real OpenAI SDK.

Registry: "big" ($2 / $8 per 1M, quality 90, served upstream as "big-2025") falls back to "small"
($0.50 / $1.50, quality 70); both from provider "stubai", whose key is read from STUB_API_KEY.
"""

from decimal import Decimal

import openai
import pytest
from django.core.cache import cache

from models_registry.models import ModelFallback
from tests.budgets.factories import make_api_key, team_budget
from tests.gateway.upstream import UpstreamStub
from tests.models_registry.factories import ModelProfileFactory, ProviderFactory

TASKS = ["chat", "code", "math", "reasoning", "summarization", "extraction", "translation", "creative"]
MILLION = Decimal(1_000_000)
PRICES = {"big": (Decimal("2"), Decimal("8")), "small": (Decimal("0.5"), Decimal("1.5"))}


def price(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    """What the ledger must say: list price x tokens, at the ledger's 9 decimals."""
    per_input, per_output = PRICES[model]
    quantum = Decimal("0.000000001")
    return (input_tokens * per_input / MILLION).quantize(quantum) + (
        output_tokens * per_output / MILLION
    ).quantize(quantum)


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def upstream(monkeypatch):
    stub = UpstreamStub().start()
    monkeypatch.setenv("STUB_API_KEY", stub.api_key)
    yield stub
    stub.stop()


@pytest.fixture
def registry(transactional_db, upstream):
    provider = ProviderFactory(
        name="stubai", display_name="Stub AI", base_url=upstream.base_url, api_key_env="STUB_API_KEY"
    )
    big = ModelProfileFactory(
        id="big",
        provider=provider,
        provider_model_name="big-2025",
        input_price_per_million=PRICES["big"][0],
        output_price_per_million=PRICES["big"][1],
        cached_input_price_per_million=None,
        quality_scores=dict.fromkeys(TASKS, 90),
    )
    small = ModelProfileFactory(
        id="small",
        provider=provider,
        input_price_per_million=PRICES["small"][0],
        output_price_per_million=PRICES["small"][1],
        cached_input_price_per_million=None,
        quality_scores=dict.fromkeys(TASKS, 70),
    )
    ModelFallback.objects.create(model=big, fallback=small, position=1)
    return {"big": big, "small": small}


@pytest.fixture
def budget(world):
    return team_budget(world.alpha, limit=Decimal("10"))


@pytest.fixture
def gateway_key(world):
    return make_api_key(team=world.alpha)


@pytest.fixture
def sdk(live_server, registry, budget, gateway_key):
    """An OpenAI client pointed at costswitch with a costswitch key (no retries: each call is one)."""
    _, secret = gateway_key
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key=secret, max_retries=0, timeout=20)
