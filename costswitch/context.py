"""Who is acting right now: the "current actor" the audit log records when a change names none.

One context variable per thread (or asyncio task). The request middleware binds it to the request
for the request's duration, so that an API key (DRF puts it on the request when it authenticates)
or a session user (the admin, HTMX pages) is found when, and only when, something is audited: the
request path pays one context-variable set and reset, never a query. Management commands, the shell
and tests bind a user or key explicitly with `acting_as`. Unbound means the system (a Celery job).

Imports nothing from the apps (`costswitch` is the base every app imports): actors are duck-typed,
an API key is anything with a `key_hash`, a user anything authenticated with a primary key.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any

# Holds either an actor or a zero-argument callable that finds it (the request binding).
_actor: ContextVar[Any] = ContextVar("costswitch_actor", default=None)


def current_actor() -> Any:
    """The bound user or API key, or None for the system."""
    bound = _actor.get()
    return bound() if callable(bound) else bound


def set_actor(actor: Any) -> Token:
    """Bind `actor` (a user, an API key, None, or a callable returning one); `reset_actor` undoes it."""
    return _actor.set(actor)


def reset_actor(token: Token) -> None:
    _actor.reset(token)


@contextmanager
def acting_as(actor: Any) -> Iterator[None]:
    """Changes made inside are attributed to `actor` (for commands, the shell and tests)."""
    token = set_actor(actor)
    try:
        yield
    finally:
        reset_actor(token)


def request_actor(request: Any) -> Callable[[], Any]:
    """A lazy binding for an HTTP request: the API key DRF authenticated, else the session user."""

    def find() -> Any:
        api_key = request.__dict__.get("auth")
        if api_key is not None and hasattr(api_key, "key_hash"):
            return api_key
        user = getattr(request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False) and getattr(user, "pk", None):
            return user
        return None

    return find
