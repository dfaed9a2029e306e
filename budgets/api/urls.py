from django.urls import path
from rest_framework.routers import SimpleRouter

from budgets.api import views

router = SimpleRouter(trailing_slash="/?")
router.register("budgets", views.BudgetViewSet, basename="budget")
router.register("usage", views.UsageViewSet, basename="usage")
router.register("reservations", views.ReservationViewSet, basename="reservation")

urlpatterns = [
    path(
        "budgets/status/<str:scope_type>/<int:scope_id>",
        views.ScopeStatusView.as_view(),
        name="scope-status",
    ),
    *router.urls,
]
