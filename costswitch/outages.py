"""PostgreSQL or Redis out of reach, as a client sees it: 503 `service_unavailable` with
`Retry-After`, never a 500 or an HTML error page (README "Production" > "Failure behaviour").

Only errors that mean "cannot reach it now" count: a refused, lost or timed-out connection, a
server shutting down or starting up, no connection slot left. A deadlock, a lock or statement
timeout or an error in a query is not an outage and stays what it was.
"""

import time

import psycopg
import redis
from django.db import InterfaceError, OperationalError

RETRY_AFTER_SECONDS = 1
CODE = "service_unavailable"

# SQLSTATEs of an unreachable server: class 08 (connection exception), 57P01-57P03 (shutting down,
# crashed, starting up), 53300 (too many connections).
_UNREACHABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03", "53300")


def unavailable_service(exc: BaseException | None) -> str | None:
    """The service `exc` says is out of reach ("database", "Redis"), or None."""
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return "Redis"
    if isinstance(exc, InterfaceError):  # the connection was already closed
        return "database"
    if isinstance(exc, OperationalError):
        cause = exc.__cause__
        # psycopg has no SQLSTATE for errors on the client side: connect failed, connection lost.
        if isinstance(cause, psycopg.OperationalError) and (
            cause.sqlstate is None or cause.sqlstate.startswith(_UNREACHABLE_SQLSTATES)
        ):
            return "database"
    return None


def message(service: str) -> str:
    name = "The database" if service == "database" else service
    return f"{name} is unreachable right now; retry shortly."


class Backoff:
    """After a failure, leave a server alone for `seconds`: an outage then costs a process one
    timeout every few seconds, not one per call."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._until = 0.0

    @property
    def waiting(self) -> bool:
        return time.monotonic() < self._until

    def start(self) -> None:
        self._until = time.monotonic() + self.seconds

    def end(self) -> None:
        self._until = 0.0
