"""notifications API."""

urlpatterns: list = []
