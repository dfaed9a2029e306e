"""Money helpers: Decimal only, one quantum for every stored amount."""

from decimal import ROUND_HALF_EVEN, Decimal

from django.db import models

MONEY_MAX_DIGITS = 20
MONEY_DECIMAL_PLACES = 9
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_DECIMAL_PLACES)
ZERO = Decimal(0)


def money_field(**kwargs) -> models.DecimalField:
    """A model field for an amount (or a price) at the ledger's precision."""
    return models.DecimalField(max_digits=MONEY_MAX_DIGITS, decimal_places=MONEY_DECIMAL_PLACES, **kwargs)


def quantize_money(value: Decimal) -> Decimal:
    """Round to the stored precision (banker's rounding, so rounding errors do not drift one way)."""
    return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)


class PlainDecimal(Decimal):
    """A Decimal that prints in plain notation (0.000000001, never 1E-9), for JSON output."""

    def __str__(self) -> str:
        return Decimal.__format__(self, "f")

    def __format__(self, spec: str) -> str:
        # f"{amount}" must read like str(amount), not 1E-7.
        return str(self) if not spec else Decimal.__format__(self, spec)


def display_decimal(value: Decimal) -> PlainDecimal:
    """Trailing zeros stripped, plain notation: 0.35, 100, 0.000000001."""
    return PlainDecimal(format(value.normalize(), "f"))
