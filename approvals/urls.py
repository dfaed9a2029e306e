"""Web pages of the approvals app (the API lives in approvals/api/urls.py)."""

from django.urls import path

from approvals import views

app_name = "approvals"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("<int:override_id>/decide/", views.decide, name="decide"),
    path("<int:override_id>/review/", views.review, name="review"),
    path("budget/<int:budget_id>/", views.budget_overrides, name="budget-overrides"),
]
