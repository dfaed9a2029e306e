"""Errors on the gateway path in the shape OpenAI SDKs parse: `{"error": {"message", "type",
"code", "param"}}`, plus what costswitch knows (the override link, the decision) on the same object.
"""

import logging
import math

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from rest_framework import exceptions

from approvals.services import OVERRIDES_URL
from costswitch import outages
from costswitch.errors import DomainError, RateLimited

logger = logging.getLogger(__name__)

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_DRF = {
    exceptions.AuthenticationFailed: (401, "invalid_api_key"),
    exceptions.NotAuthenticated: (401, "missing_api_key"),
    exceptions.PermissionDenied: (403, "permission_denied"),
    exceptions.MethodNotAllowed: (405, "method_not_allowed"),
    exceptions.ParseError: (400, "malformed_json"),
    exceptions.UnsupportedMediaType: (415, "unsupported_media_type"),
}


class GatewayError(DomainError):
    """A refusal of the gateway itself; `param` names the request field at fault."""

    def __init__(self, message: str, *, status: int = 400, code: str = "invalid_request", param=None):
        super().__init__(message, code=code)
        self.status = status
        self.param = param


def error_response(
    status: int, message: str, *, code: str, param: str | None = None, extra: dict | None = None
) -> JsonResponse:
    error = {
        "message": message,
        "type": _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error"),
        "code": code,
        "param": param,
        **(extra or {}),
    }
    return JsonResponse({"error": error}, status=status)


def handle_exception(exc, context) -> JsonResponse | None:
    """The DRF exception handler of the gateway views (their errors never use the costswitch shape)."""
    request = context.get("request")
    service = outages.unavailable_service(exc)
    if service is not None:
        logger.warning("%s unreachable, answering 503: %s: %s", service, type(exc).__name__, exc)
        response = error_response(503, outages.message(service), code=outages.CODE)
        response["Retry-After"] = str(outages.RETRY_AFTER_SECONDS)
        return response
    if isinstance(exc, exceptions.Throttled):
        exc = RateLimited(str(exc.detail), retry_after=exc.wait or 0)
    if isinstance(exc, GatewayError):
        return error_response(exc.status, exc.message, code=exc.code, param=exc.param)
    if isinstance(exc, DomainError):
        return domain_error_response(exc, request)
    if isinstance(exc, RequestDataTooBig):
        return error_response(413, "The request body is too large.", code="request_too_large")
    for cls, (status, code) in _DRF.items():
        if isinstance(exc, cls):
            return error_response(status, str(exc.detail), code=code)
    if isinstance(exc, exceptions.APIException):
        return error_response(exc.status_code, str(exc.detail), code="error")
    return None


def domain_error_response(exc: DomainError, request) -> JsonResponse:
    """A costswitch refusal: budget refusals carry the link where an override can be asked for."""
    details = exc.details or {}
    extra = {}
    if details.get("decision_id") is not None:
        extra["decision_id"] = details["decision_id"]
    if exc.status == 402:
        # Every budget refusal can be lifted by an override (models, or an extension of the budget).
        url = details.get("override_url") or OVERRIDES_URL
        extra["override_url"] = request.build_absolute_uri(url) if request is not None else url
        if details.get("override_request_id") is not None:
            extra["override_request_id"] = details["override_request_id"]
        if details.get("budget_id") is not None:
            extra["budget_id"] = details["budget_id"]
    param = "model" if exc.code == "unknown_model" else None
    message = exc.message
    if "override_url" in extra:
        message = f"{message} Ask for an override at {extra['override_url']}."
    response = error_response(exc.status, message, code=exc.code, param=param, extra=extra)
    if isinstance(exc, RateLimited):
        response["Retry-After"] = str(max(math.ceil(exc.retry_after), 1))
    return response
