"""The shared cache (Redis in production) used as a cache only: when it is unreachable, a read is a
miss and a write is skipped.

Everything the request path keeps there (the registry and rule set version tokens, history scores,
output-length statistics, token counts) is derived from PostgreSQL, so callers that miss read
PostgreSQL and carry on; admission always ends at the PostgreSQL ledger (README "Production" >
"Failure behaviour"). After a failure the cache is left alone for RETRY_SECONDS, so an outage costs a
process one timeout (REDIS_SOCKET_TIMEOUT) every few seconds, not one per call.

A version token tells every process to reload; losing its write would leave other processes on old
data once Redis is back. `cache_set(..., keep=True)` remembers such a write when it fails and makes
it at this process's first cache call after the outage.
"""

import logging
import threading
from typing import Any

import redis
from django.core.cache import cache

from costswitch.outages import Backoff

logger = logging.getLogger(__name__)

RETRY_SECONDS = 2.0

_lock = threading.Lock()
_backoff = Backoff(RETRY_SECONDS)
_kept: dict[str, tuple[Any, float | None]] = {}


def cache_available() -> bool:
    """False while this process skips the cache after a failure."""
    return not _backoff.waiting


def cache_get(key: str, default: Any = None) -> Any:
    return _call("get", default, lambda: cache.get(key, default))


def cache_get_many(keys: list[str]) -> dict[str, Any]:
    """The keys found, in one round trip ({} while the cache is unreachable)."""
    return _call("get_many", {}, lambda: cache.get_many(keys))


def cache_set(key: str, value: Any, timeout: float | None, *, keep: bool = False) -> bool:
    """True when written. With `keep`, a failed write is made again once the cache answers."""
    written = _call("set", False, lambda: cache.set(key, value, timeout) or True)
    if not written and keep:
        with _lock:
            _kept[key] = (value, timeout)
    return written


def cache_add(key: str, value: Any, timeout: float | None) -> bool:
    """Write only if the key is absent; False when it was there or the cache is unreachable."""
    return _call("add", False, lambda: cache.add(key, value, timeout))


def _call(operation: str, failed: Any, call) -> Any:
    if not cache_available():
        return failed
    try:
        if _kept:
            _write_kept()
        return call()
    except redis.RedisError as exc:
        _mark_down(operation, exc)
        return failed


def _write_kept() -> None:
    with _lock:
        kept = dict(_kept)
        _kept.clear()
    try:
        for key, (value, timeout) in kept.items():
            cache.set(key, value, timeout)
    except redis.RedisError:
        with _lock:
            for key, entry in kept.items():
                _kept.setdefault(key, entry)  # a newer write of the same key wins
        raise
    logger.info("cache reachable again: wrote %d version token(s) kept during the outage", len(kept))


def _mark_down(operation: str, exc: Exception) -> None:
    _backoff.start()
    logger.warning(
        "cache %s failed, reading PostgreSQL instead for %.0f s: %s: %s",
        operation,
        RETRY_SECONDS,
        type(exc).__name__,
        exc,
    )
