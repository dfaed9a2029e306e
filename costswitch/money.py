"""Money helpers: Decimal only, one quantum for every stored amount."""

from decimal import ROUND_HALF_EVEN, Decimal

MONEY_MAX_DIGITS = 20
MONEY_DECIMAL_PLACES = 9
MONEY_QUANTUM = Decimal(1).scaleb(-MONEY_DECIMAL_PLACES)
ZERO = Decimal(0)
# The largest amount a DecimalField(20, 9) can hold; anything above is rejected at the edge.
MONEY_MAX = Decimal("99999999999.999999999")


def quantize_money(value: Decimal) -> Decimal:
    """Round to the stored precision (banker's rounding, so rounding errors do not drift one way)."""
    return value.quantize(MONEY_QUANTUM, rounding=ROUND_HALF_EVEN)


def display_decimal(value: Decimal) -> Decimal:
    """Strip trailing zeros without switching to exponent notation for whole numbers."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()
