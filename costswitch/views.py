from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.defaults import page_not_found

from costswitch.api.exception_handler import error_body


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def not_found(request: HttpRequest, exception=None) -> HttpResponse:
    """API clients get the same JSON error shape for unknown URLs as for everything else."""
    if request.path.startswith("/api/"):
        return JsonResponse(error_body(404, "not_found", f"No endpoint at {request.path}."), status=404)
    return page_not_found(request, exception)
