"""Rate limits at the API edge, on `costswitch.ratelimit`: requests per minute of an API key, and a
guard against floods of invalid API keys from one client address.

Token limits and per-model limits need the request's token estimate and its model, so they are
checked in the admission flow (`budgets.ratelimits`), not here.
"""

import math
import threading
import time

from django.conf import settings
from rest_framework import exceptions
from rest_framework.throttling import BaseThrottle

from costswitch import ratelimit
from costswitch.errors import RateLimited


class ApiKeyRateThrottle(BaseThrottle):
    """`requests_per_minute` of the API key that authenticated the request; keys without one, and
    session logins, are not limited here. One Redis round trip per limited request.

    It raises `RateLimited` itself instead of returning False, so the 429 names the limit and scope
    (DRF's `Throttled` knows only the wait)."""

    def allow_request(self, request, view) -> bool:
        api_key = request.auth
        limit = getattr(api_key, "requests_per_minute", None)
        if not limit:
            return True
        verdict = ratelimit.acquire(ratelimit.api_key_bucket(api_key.pk, "rpm"), limit)
        if verdict.allowed:
            return True
        raise RateLimited(
            f"This API key is over its limit of {limit} requests per minute; "
            f"retry in {math.ceil(verdict.retry_after)} s.",
            retry_after=verdict.retry_after,
            limit=limit,
            scope="api_key",
            details={"unit": "requests"},
        )


# --- Invalid API keys -------------------------------------------------------------------------------


class InvalidKeyFlood(exceptions.Throttled):
    """Too many malformed or unknown keys from one address. A DRF exception (not a DomainError) because
    it is raised while authenticating, where DRF expects one; the exception handler answers it as
    `rate_limited` like every other rate limit."""

    scope = "client_ip"

    def __init__(self, wait: float, limit: int):
        super().__init__(
            wait=wait,
            detail=f"Too many invalid API keys from this address; retry in {math.ceil(wait)} s.",
        )
        self.limit = limit


# Addresses this process saw go over the limit, with the monotonic time their lockout ends. Checked
# before a key is hashed or looked up, and without any I/O, so valid traffic pays nothing for the guard.
_locked_out: dict[str, float] = {}
_locked_out_lock = threading.Lock()
MAX_LOCKED_OUT = 10_000
INVALID_KEY_PERIOD = 60.0


def client_ip(request) -> str:
    """REMOTE_ADDR, or with TRUSTED_PROXY_COUNT = N > 0 the address the outermost of our N proxies saw:
    the N-th X-Forwarded-For entry from the right. Entries left of it are written by the client and
    can be forged, so the leftmost ("first") hop is never trusted."""
    hops = settings.TRUSTED_PROXY_COUNT
    if hops > 0:
        forwarded = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [hop for hop in forwarded if hop]
        if forwarded:
            return forwarded[-min(hops, len(forwarded))]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


def invalid_key_guard(request) -> None:
    """Refuse every Bearer attempt (valid keys too) from an address in lockout, before any key work.

    That is what makes guessing pointless: once over the limit, a right guess gets the same 429 as a
    wrong one."""
    if settings.INVALID_KEY_LIMIT_PER_MINUTE <= 0 or not _locked_out:
        return
    address = client_ip(request)
    until = _locked_out.get(address)
    if until is None:
        return
    wait = until - time.monotonic()
    if wait > 0:
        raise InvalidKeyFlood(wait, settings.INVALID_KEY_LIMIT_PER_MINUTE)
    with _locked_out_lock:
        _locked_out.pop(address, None)


def invalid_key_seen(request) -> None:
    """Count a malformed or unknown key against its address (one Redis round trip, failures only).

    Over INVALID_KEY_LIMIT_PER_MINUTE the attempt is refused with 429 and the address is locked out
    of this process for a minute. Other processes learn on the first refused attempt they see, so
    across P processes at most P extra keys a minute are looked up while an address is over."""
    limit = settings.INVALID_KEY_LIMIT_PER_MINUTE
    if limit <= 0:
        return
    address = client_ip(request)
    verdict = ratelimit.acquire(f"ip:{address}:invalid-keys", limit, period=INVALID_KEY_PERIOD)
    if verdict.allowed:
        return
    with _locked_out_lock:
        if len(_locked_out) >= MAX_LOCKED_OUT:
            now = time.monotonic()
            for stale in [a for a, until in _locked_out.items() if until <= now] or list(_locked_out)[:1000]:
                del _locked_out[stale]
        _locked_out[address] = time.monotonic() + INVALID_KEY_PERIOD
    raise InvalidKeyFlood(INVALID_KEY_PERIOD, limit)


def reset_lockouts() -> None:
    """Forget this process's lockouts (tests)."""
    with _locked_out_lock:
        _locked_out.clear()
