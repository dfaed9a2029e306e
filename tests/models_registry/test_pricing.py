from decimal import Decimal

import pytest

from models_registry.pricing import request_cost
from tests.models_registry.factories import ModelProfileFactory

pytestmark = pytest.mark.django_db


def test_it_prices_input_and_output_per_million_tokens_exactly():
    model = ModelProfileFactory(
        input_price_per_million=Decimal("2.50"), output_price_per_million=Decimal("10.00")
    )
    cost = request_cost(model, input_tokens=1234, output_tokens=567)
    # 1234 * 2.50 / 1e6 = 0.003085 ; 567 * 10 / 1e6 = 0.00567
    assert cost.input == Decimal("0.003085000")
    assert cost.output == Decimal("0.005670000")
    assert cost.total == Decimal("0.008755000")


def test_it_rounds_each_part_to_the_nano_dollar_half_even():
    model = ModelProfileFactory(
        input_price_per_million=Decimal("0.075"), output_price_per_million=Decimal("0.3")
    )
    cost = request_cost(model, input_tokens=7, output_tokens=3)
    # 7 * 0.075 / 1e6 = 0.000000525 exactly ; 3 * 0.3 / 1e6 = 0.0000009 exactly
    assert cost.input == Decimal("0.000000525")
    assert cost.output == Decimal("0.000000900")
    # Ties go to the even digit: 1.5e-9 -> 2e-9 and 2.5e-9 -> 2e-9.
    one_and_a_half = ModelProfileFactory(input_price_per_million=Decimal("0.0015"))
    two_and_a_half = ModelProfileFactory(input_price_per_million=Decimal("0.0025"))
    assert request_cost(one_and_a_half, input_tokens=1, output_tokens=0).input == Decimal("0.000000002")
    assert request_cost(two_and_a_half, input_tokens=1, output_tokens=0).input == Decimal("0.000000002")


def test_it_bills_cached_tokens_at_the_cached_price():
    model = ModelProfileFactory(
        input_price_per_million=Decimal("3"),
        cached_input_price_per_million=Decimal("0.30"),
        output_price_per_million=Decimal("15"),
    )
    cost = request_cost(model, input_tokens=10_000, cached_input_tokens=8_000, output_tokens=1_000)
    # 2000 * 3 / 1e6 + 8000 * 0.30 / 1e6 = 0.006 + 0.0024 ; 1000 * 15 / 1e6 = 0.015
    assert cost.input == Decimal("0.008400000")
    assert cost.output == Decimal("0.015000000")


def test_cached_tokens_cost_full_input_price_when_the_model_has_no_cache_price():
    model = ModelProfileFactory(input_price_per_million=Decimal("1"), cached_input_price_per_million=None)
    assert request_cost(
        model, input_tokens=1_000_000, cached_input_tokens=500_000, output_tokens=0
    ).input == Decimal("1.000000000")


@pytest.mark.parametrize(
    "tokens",
    [
        {"input_tokens": -1, "output_tokens": 0},
        {"input_tokens": 0, "output_tokens": -5},
        {"input_tokens": 10, "output_tokens": 0, "cached_input_tokens": 11},
    ],
)
def test_it_refuses_impossible_token_counts(tokens):
    with pytest.raises(ValueError):
        request_cost(ModelProfileFactory(), **tokens)
