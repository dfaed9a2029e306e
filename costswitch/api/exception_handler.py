"""One place that turns every error into `{"status", "code", "message", "details"}` JSON."""

import logging
import math

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from costswitch import outages
from costswitch.errors import DomainError, RateLimited

logger = logging.getLogger(__name__)

_DRF_CODES = {
    exceptions.ParseError: "malformed_json",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ValidationError: "validation_error",
}


def _camel(key: str) -> str:
    head, *rest = str(key).split("_")
    return head + "".join(part.title() for part in rest)


def _first_message(detail) -> str:
    """A one-line summary naming the first offending field, e.g. "items[3].cost: ..."."""
    path, message = _first_error(detail)
    return f"{path}: {message}" if path else message


def _first_error(detail) -> tuple[str, str]:
    """(path, message) of the first error. Lists of objects (many=True) give "[3]", ListField's
    {index: errors} dicts give "[0]" too, and object keys are joined with dots."""
    if isinstance(detail, list):
        for index, item in enumerate(detail):
            if item:
                if not isinstance(item, dict | list):
                    return "", str(item)
                path, message = _first_error(item)
                return _join_path(f"[{index}]", path), message
        return "", "Invalid input."
    if isinstance(detail, dict):
        for key, value in detail.items():
            path, message = _first_error(value)
            if key == "non_field_errors":
                return path, message
            segment = f"[{key}]" if isinstance(key, int) or str(key).isdigit() else _camel(key)
            return _join_path(segment, path), message
        return "", "Invalid input."
    return "", str(detail)


def _join_path(head: str, tail: str) -> str:
    if not tail:
        return head
    return f"{head}{tail}" if tail.startswith("[") else f"{head}.{tail}"


def error_body(status: int, code: str, message: str, details=None) -> dict:
    body = {"status": status, "code": code, "message": message}
    if details:
        body["details"] = details
    return body


def handle_exception(exc, context):
    service = outages.unavailable_service(exc)
    if service is not None:  # README "Failure behaviour"
        logger.warning("%s unreachable, answering 503: %s: %s", service, type(exc).__name__, exc)
        set_rollback()
        body = error_body(503, outages.CODE, outages.message(service))
        return Response(body, status=503, headers={"Retry-After": str(outages.RETRY_AFTER_SECONDS)})
    if isinstance(exc, exceptions.Throttled):
        # Every rate limit answers alike (code "rate_limited"), whichever layer refused.
        exc = RateLimited(
            str(exc.detail),
            retry_after=exc.wait or 0,
            limit=getattr(exc, "limit", None),
            scope=getattr(exc, "scope", None),
        )
    if isinstance(exc, DomainError):
        response = Response(error_body(exc.status, exc.code, exc.message, exc.details), status=exc.status)
        if isinstance(exc, RateLimited):
            response["Retry-After"] = str(max(math.ceil(exc.retry_after), 1))
        return response
    if isinstance(exc, RequestDataTooBig):  # Django's own handler would make it a bare 400
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        message = f"The request body is larger than the {limit} bytes this server accepts."
        return Response(error_body(413, "request_too_large", message), status=413)
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
