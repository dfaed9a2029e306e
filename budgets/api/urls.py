from django.urls import path

from budgets.api import views
from costswitch.api.routers import OptionalSlashRouter

router = OptionalSlashRouter()
router.register("budgets", views.BudgetViewSet, basename="budget")
router.register("usage", views.UsageViewSet, basename="usage")
router.register("reservations", views.ReservationViewSet, basename="reservation")
router.register("alerts", views.AlertViewSet, basename="alert")

urlpatterns = [
    path(
        "budgets/status/<str:scope_type>/<int:scope_id>",
        views.ScopeStatusView.as_view(),
        name="scope-status",
    ),
    *router.urls,
]
