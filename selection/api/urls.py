from django.urls import path

from costswitch.api.routers import OptionalSlashRouter
from selection.api import views

router = OptionalSlashRouter()
router.register("explainer", views.ExplainerViewSet, basename="explainer")

# Before the models router: "models/estimate" must not be read as the model with id "estimate".
urlpatterns = [
    path("cost/estimate", views.CostEstimateView.as_view(), name="cost-estimate"),
    path("models/estimate", views.CostEstimateView.as_view(), name="models-estimate"),
    path("models/select", views.ModelSelectView.as_view(), name="models-select"),
    path("models/fallbacks/<str:model_id>", views.FallbackChainView.as_view(), name="models-fallbacks"),
    *router.urls,
]
