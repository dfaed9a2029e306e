"""Cache test helpers: an unreachable Redis as the cache, and a fresh outage state for costswitch/cache.py."""

import socket
from contextlib import contextmanager

from django.test import override_settings

from costswitch import cache as shared_cache


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def redis_down():
    """The cache is a Redis nobody listens on (connection refused at once)."""
    dead = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{_closed_port()}/0",
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    with override_settings(CACHES=dead):
        yield


def cache_answers_again(monkeypatch) -> None:
    """End the pause costswitch/cache.py takes after a failure, as if RETRY_SECONDS had passed."""
    shared_cache._backoff.end()


def reset_outage_state(monkeypatch) -> None:
    cache_answers_again(monkeypatch)
    monkeypatch.setattr(shared_cache, "_kept", {})
