"""audit models."""

__all__: list[str] = []
