"""What a request costs at a model's list prices. Exact Decimal arithmetic, rounded once per part."""

from dataclasses import dataclass
from decimal import Decimal

from costswitch.money import quantize_money
from models_registry.models import ModelProfile

MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Cost:
    input: Decimal
    output: Decimal

    @property
    def total(self) -> Decimal:
        return self.input + self.output


def request_cost(
    model: ModelProfile, *, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0
) -> Cost:
    """Cost of `input_tokens` (of which `cached_input_tokens` were cache reads) and `output_tokens`.

    Cached tokens are billed at the cached-input price when the model has one, else as input. Each
    part is rounded to the ledger's 9 decimals, so the parts always add up to the total shown.
    """
    if min(input_tokens, output_tokens, cached_input_tokens) < 0 or cached_input_tokens > input_tokens:
        raise ValueError("Token counts must be >= 0 and cached tokens cannot exceed input tokens.")
    cached_price = model.cached_input_price_per_million
    if cached_price is None:
        cached_price = model.input_price_per_million
    uncached = input_tokens - cached_input_tokens
    input_cost = (uncached * model.input_price_per_million + cached_input_tokens * cached_price) / MILLION
    output_cost = output_tokens * model.output_price_per_million / MILLION
    return Cost(input=quantize_money(input_cost), output=quantize_money(output_cost))
