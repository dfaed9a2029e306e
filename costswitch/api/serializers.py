"""Serializer building blocks shared by every app's API."""

from rest_framework import serializers

from costswitch.money import MONEY_DECIMAL_PLACES, MONEY_MAX_DIGITS


class StrictFieldsMixin:
    """Reject unknown fields instead of silently ignoring them: a typo must not pass as a default."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            allowed = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - allowed)
            if unknown:
                raise serializers.ValidationError(
                    {name: ["Unknown field."] for name in unknown}, code="unknown_field"
                )
        return super().to_internal_value(data)


class MoneyField(serializers.DecimalField):
    """A non-negative amount in the deployment currency, exact to 9 decimal places."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_digits", MONEY_MAX_DIGITS)
        kwargs.setdefault("decimal_places", MONEY_DECIMAL_PLACES)
        kwargs.setdefault("min_value", 0)
        super().__init__(**kwargs)


def validated(serializer_class, data, **kwargs) -> dict:
    """Validate input with a serializer, raising the API's 400 on the first problem."""
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data
