"""Request id, request log context, access log and latency metric, in one outermost middleware.

Costs a few microseconds per request and no query: the route comes from the resolver match Django
already made, the principal from what DRF or the session middleware already loaded.
"""

import logging
import re
import time
import uuid

from django.conf import settings
from django.core.signals import request_finished
from django.utils.functional import SimpleLazyObject, empty

from costswitch import context, logs, metrics

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
access_logger = logging.getLogger("costswitch.access")
request_finished.connect(logs.clear_context, dispatch_uid="costswitch.logs.clear_context")


class RequestContextMiddleware:
    """Takes the caller's `X-Request-ID` when it is a sane token (else makes one), echoes it on the
    response, makes it and the principal part of every log record of the request, writes one access
    log line and observes the request's latency by route template."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.static_prefix = "/" + (settings.STATIC_URL or "static/").lstrip("/")

    def __call__(self, request):
        started = time.perf_counter()
        given = request.headers.get(REQUEST_ID_HEADER)
        request_id = given if given and _SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        request.request_id = request_id
        # Cleared on request_finished, not here: Django logs 4xx/5xx responses (django.request) after
        # the middleware chain has returned, and those lines belong to the request too.
        logs.open_context(request_id=request_id)
        # Whoever authenticates (an API key, a session user) is the actor of audited changes.
        actor_token = context.set_actor(context.request_actor(request))
        try:
            response = self.get_response(request)
        finally:
            context.reset_actor(actor_token)
        response[REQUEST_ID_HEADER] = request_id
        duration = time.perf_counter() - started
        route = self._route(request)
        metrics.observe_request(request.method, route, response.status_code, duration)
        self._log(request, route, response.status_code, duration)
        return response

    def _route(self, request) -> str:
        match = getattr(request, "resolver_match", None)
        if match is not None:
            return metrics.route_label(match.route)
        # WhiteNoise answers static files before URL resolution.
        return "static" if request.path.startswith(self.static_prefix) else metrics.UNMATCHED

    def _log(self, request, route: str, status: int, duration: float) -> None:
        if not access_logger.isEnabledFor(logging.INFO):
            return
        bound = logs.context()
        if bound.get("principal") is None:
            principal, organization = _caller(request)
            if principal is not None:
                logs.bind(principal=principal, organization=organization)
        access_logger.info(
            "%s %s %s %.1fms",
            request.method,
            request.path,
            status,
            duration * 1000,
            extra={
                "method": request.method,
                "route": route,
                "path": request.path,
                "status": status,
                "duration_ms": round(duration * 1000, 3),
            },
        )


def _caller(request) -> tuple[str | None, str | None]:
    """The authenticated caller, from what is already loaded (never a query): DRF puts its user
    and API key on the Django request; a session user counts only if something evaluated it."""
    api_key = request.__dict__.get("auth")
    if api_key is not None and hasattr(api_key, "prefix"):
        return api_key.prefix, api_key.organization.slug
    user = request.__dict__.get("user")
    if isinstance(user, SimpleLazyObject):
        user = None if user._wrapped is empty else user._wrapped
    if user is None or not getattr(user, "is_authenticated", False):
        return None, None
    organization = getattr(user, "_state", None) and user._state.fields_cache.get("organization")
    return logs.principal_label(user=user), organization.slug if organization else None
