from django.urls import path

from selection.api import views

# Before the models router: "models/estimate" must not be read as the model with id "estimate".
urlpatterns = [
    path("cost/estimate", views.CostEstimateView.as_view(), name="cost-estimate"),
    path("models/estimate", views.CostEstimateView.as_view(), name="models-estimate"),
]
