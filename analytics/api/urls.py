"""Reconciliation and cost-data API."""

urlpatterns: list = []
