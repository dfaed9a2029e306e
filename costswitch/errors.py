"""Domain errors. Services raise them; one DRF exception handler turns them into JSON."""


class DomainError(Exception):
    """A refusal the caller can act on: a stable `code`, an HTTP `status` and a human message."""

    status = 400
    code = "invalid_request"

    def __init__(self, message: str, *, code: str | None = None, details: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details or {}


class ValidationFailed(DomainError):
    status = 400
    code = "validation_error"


class NotFound(DomainError):
    status = 404
    code = "not_found"


class PermissionDenied(DomainError):
    status = 403
    code = "permission_denied"


class Conflict(DomainError):
    status = 409
    code = "conflict"


class BudgetExceeded(DomainError):
    """The reservation would take a budget over its limit; nothing was reserved."""

    status = 402
    code = "budget_exceeded"


class RateLimited(DomainError):
    """Over a rate limit: nothing was consumed or reserved. `retry_after` (seconds) says when the
    same request would pass; the exception handler sends it as the `Retry-After` header."""

    status = 429
    code = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        limit: int | None = None,
        scope: str | None = None,
        details: dict | None = None,
    ):
        self.retry_after = max(float(retry_after), 0.0)
        details = {
            "retry_after": round(self.retry_after, 3),
            "limit": limit,
            "scope": scope,
            **(details or {}),
        }
        super().__init__(message, details=details)
