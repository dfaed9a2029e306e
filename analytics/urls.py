"""Web pages of the analytics app (the API lives in analytics/api/urls.py)."""

from django.urls import path

from analytics import views

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/numbers/", views.dashboard_numbers, name="dashboard-numbers"),
]
