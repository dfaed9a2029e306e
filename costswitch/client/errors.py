"""What a refused or failed costswitch call raises: one class per thing a caller handles differently.

Every error carries the API's `{"status", "code", "message", "details"}` body, so a service can log
it, show it, or follow `override_url` to ask a budget owner for more."""

from __future__ import annotations

from typing import Any


class CostSwitchError(Exception):
    """Base of every client error. `status` is None when no HTTP answer came back at all."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "error",
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
        body: Any = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details or {}
        self.request_id = request_id
        self.body = body

    def __str__(self) -> str:
        where = f"{self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"

    @property
    def override_url(self) -> str | None:
        """Where to ask for an override, when the refusal is one an override could lift."""
        return self.details.get("overrideUrl")

    @property
    def override_request_id(self) -> int | None:
        """The pending override request made for this refusal (select with `request_override=`)."""
        return self.details.get("overrideRequestId")

    @property
    def decision_id(self) -> int | None:
        """The recorded decision explaining a refused selection (GET /api/v1/explainer/{id})."""
        return self.details.get("decisionId")


class ConnectionFailed(CostSwitchError):
    """costswitch could not be reached (or the connection broke) and the retries ran out."""


class ValidationError(CostSwitchError):
    """The request was malformed (400, 413): fix the call, retrying will not help."""


class AuthenticationFailed(CostSwitchError):
    """The API key is missing, unknown or revoked (401)."""


class PermissionDenied(CostSwitchError):
    """The key may not do this, or a steering rule denies the request (403)."""


class NotFound(CostSwitchError):
    """The object does not exist or is outside the key's scopes (404)."""


class Conflict(CostSwitchError):
    """The request id is taken by a different request, or a reservation is already finished (409)."""


class BudgetRefusal(CostSwitchError):
    """A budget said no (402). Nothing was reserved. `override_url` says where to ask for more."""


class BudgetExceeded(BudgetRefusal):
    """The request's cost does not fit in what is left of a budget or the per-request limit."""


class ApprovalRequired(BudgetRefusal):
    """Past a threshold the only models that fit need a budget owner's approval."""


class BudgetBlocked(BudgetRefusal):
    """The budget is blocked (`budget_blocked`) or only admits essential requests
    (`non_essential_blocked`: retry with `priority="high"` if the request is essential)."""


class NoEligibleModel(CostSwitchError):
    """No registered model can serve the request (context window, capabilities, rules) (422)."""


class RateLimited(CostSwitchError):
    """Over a rate limit and the retries ran out; `retry_after` (seconds) says when to try again."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServiceUnavailable(CostSwitchError):
    """costswitch (or what it depends on) answered 5xx and the retries ran out."""


_BY_CODE: dict[str, type[CostSwitchError]] = {
    "budget_exceeded": BudgetExceeded,
    "approval_required": ApprovalRequired,
    "budget_blocked": BudgetBlocked,
    "non_essential_blocked": BudgetBlocked,
    "rate_limited": RateLimited,
    "no_eligible_model": NoEligibleModel,
}

_BY_STATUS: dict[int, type[CostSwitchError]] = {
    400: ValidationError,
    401: AuthenticationFailed,
    402: BudgetRefusal,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: ValidationError,
    422: NoEligibleModel,
    429: RateLimited,
}


def error_class(status: int, code: str) -> type[CostSwitchError]:
    """The most specific class for an answer: by its stable code first, then by its status."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status >= 500:
        return ServiceUnavailable
    return CostSwitchError
