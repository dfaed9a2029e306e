"""One place that turns every error into `{"status", "code", "message", "details"}` JSON."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from costswitch.errors import DomainError

_DRF_CODES = {
    exceptions.ParseError: "malformed_json",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ValidationError: "validation_error",
}


def _camel(key: str) -> str:
    head, *rest = str(key).split("_")
    return head + "".join(part.title() for part in rest)


def _first_message(detail) -> str:
    """A one-line summary naming the first offending field, e.g. "items[3].cost: ..."."""
    if isinstance(detail, list):
        for index, item in enumerate(detail):
            if item:
                inner = _first_message(item)
                return f"[{index}]{inner}" if isinstance(item, dict | list) else inner
        return "Invalid input."
    if isinstance(detail, dict):
        for key, value in detail.items():
            inner = _first_message(value)
            if key == "non_field_errors":
                return inner
            separator = "" if inner.startswith("[") else ": "
            if isinstance(value, dict):
                return f"{_camel(key)}.{inner}"
            return f"{_camel(key)}{separator}{inner}"
    return str(detail)


def error_body(status: int, code: str, message: str, details=None) -> dict:
    body = {"status": status, "code": code, "message": message}
    if details:
        body["details"] = details
    return body


def handle_exception(exc, context):
    if isinstance(exc, DomainError):
        return Response(error_body(exc.status, exc.code, exc.message, exc.details), status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((code for cls, code in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body(response.status_code, code, _first_message(exc.detail), exc.detail)
    else:
        response.data = error_body(response.status_code, code, str(exc.detail))
    return response
