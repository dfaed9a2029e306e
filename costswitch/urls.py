from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from costswitch import health
from costswitch.metrics import metrics_view
from costswitch.views import home, not_found, server_error

urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    # Web UI (server-rendered pages with HTMX; see templates/).
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("analytics.urls")),
    path("budgets/", include("budgets.urls")),
    path("approvals/", include("approvals.urls")),
    path("", include("selection.urls")),
    # Answered by costswitch.health.HealthCheckMiddleware before routing; named here for reverse().
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/v1/", include(("selection.api.urls", "selection"), namespace="selection-api")),
    path("api/v1/", include(("models_registry.api.urls", "models_registry"), namespace="models-api")),
    path("api/v1/", include(("budgets.api.urls", "budgets"), namespace="budgets-api")),
    path("api/v1/", include(("approvals.api.urls", "approvals"), namespace="approvals-api")),
    path("api/v1/", include(("analytics.api.urls", "analytics"), namespace="analytics-api")),
    # The OpenAI-compatible gateway: SDKs take http://host/v1 as their base URL.
    path("v1/", include("selection.gateway.urls")),
]

handler404 = not_found
handler500 = server_error
