"""audit API."""

urlpatterns: list = []
