import sys

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.defaults import page_not_found
from django.views.defaults import server_error as default_server_error

from costswitch import outages
from costswitch.api.exception_handler import error_body


def home(request: HttpRequest) -> HttpResponse:
    """People who are logged in land on the dashboard; everyone else sees what the service is."""
    if request.user.is_authenticated and getattr(request.user, "organization_id", None):
        return redirect("dashboard")
    return render(request, "home.html")


def not_found(request: HttpRequest, exception=None) -> HttpResponse:
    """API clients get the same JSON error shape for unknown URLs as for everything else."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(404, "not_found", f"No endpoint at {request.path}."), status=404)
    return page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """Errors no view handled (DRF views handle their own), outside DEBUG. PostgreSQL or Redis out of
    reach is a 503 the client may retry, as JSON on every path (README "Failure behaviour"); anything
    else is a JSON 500 under /api/ and Django's page elsewhere. Django logs the error (django.request)."""
    # Django calls this inside its `except` block, so the exception is the one being handled.
    service = outages.unavailable_service(sys.exc_info()[1])
    if service is not None:
        body = error_body(503, outages.CODE, outages.message(service))
        return JsonResponse(body, status=503, headers={"Retry-After": str(outages.RETRY_AFTER_SECONDS)})
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(500, "server_error", "Something went wrong on our side."), status=500)
    return default_server_error(request)
