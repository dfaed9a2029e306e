from django.urls import path

from costswitch.api.routers import OptionalSlashRouter
from models_registry.api import views

router = OptionalSlashRouter()
router.register("providers", views.ProviderViewSet, basename="provider")
router.register("models", views.ModelProfileViewSet, basename="model")

urlpatterns = [
    path(
        "webhooks/model-cost-update",
        views.ModelCostUpdateWebhook.as_view(),
        name="webhook-model-cost-update",
    ),
    *router.urls,
]
