"""Web pages of the budgets app (the API lives in budgets/api/urls.py)."""

from django.urls import path

from budgets import views

app_name = "budgets"

urlpatterns = [
    path("", views.budget_list, name="list"),
    path("new/", views.budget_create_view, name="create"),
    path("<int:budget_id>/", views.budget_detail, name="detail"),
    path("<int:budget_id>/edit/", views.budget_edit_view, name="edit"),
    path("<int:budget_id>/usage/", views.budget_usage, name="usage"),
    path("alerts/<int:alert_id>/acknowledge/", views.alert_acknowledge_view, name="alert-ack"),
]
