"""Web pages of the selection app (the API lives in selection/api/urls.py)."""

from django.urls import path

from selection import views

app_name = "selection"

urlpatterns = [
    path("simulator/", views.simulator, name="simulator"),
    path("simulator/result/", views.simulate, name="simulate"),
    path("decisions/<int:decision_id>/", views.decision_detail, name="decision"),
    path("decisions/request/<path:request_id>/", views.decision_for_request, name="decision-for-request"),
    path("models/", views.model_list, name="models"),
    path("rules/", views.rules, name="rules"),
]
