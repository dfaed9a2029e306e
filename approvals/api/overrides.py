"""overrides API."""

urlpatterns: list = []
