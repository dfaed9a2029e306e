"""overrides models."""

__all__: list[str] = []
