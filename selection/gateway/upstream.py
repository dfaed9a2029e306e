"""Where each model is served: its provider's OpenAI-compatible endpoint, the name the provider
expects, and the environment variable holding the provider's key (keys never touch the database).

One pooled `httpx.Client` per process talks to every provider: keep-alive connections save a TCP
(and TLS) handshake per request, which is most of the gateway's overhead on a fast provider.
"""

import os
import threading
from dataclasses import dataclass

import httpx
from django.conf import settings

from models_registry.models import ModelProfile
from selection.snapshot import registry_snapshot

# Provider answers worth trying the next model for; any other error is the caller's to see.
RETRYABLE_STATUSES = frozenset({408, 429}) | frozenset(range(500, 600))


@dataclass(frozen=True)
class Upstream:
    model_id: str
    provider: str
    base_url: str
    api_key_env: str
    api_model_name: str

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def headers(self) -> dict[str, str]:
        """Request headers, with the provider's key read from the environment at each call (a
        rotated key takes effect without a restart). Raises UpstreamUnavailable when the key's
        variable is named but not set: that provider cannot be called from this process."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise UpstreamUnavailable(f"{self.api_key_env} is not set for provider {self.provider!r}")
            headers["Authorization"] = f"Bearer {key}"
        return headers


class UpstreamUnavailable(Exception):
    """This model cannot be called now (no endpoint, no key, an error worth failing over on)."""


_lock = threading.Lock()
_upstreams: tuple[str, dict[str, Upstream]] | None = None
_client: tuple[int, httpx.Client] | None = None


def upstream_for(model_id: str, version: str | None = None) -> Upstream:
    """The endpoint of a registry model, from a per-process table rebuilt when the registry
    changes (the same version token as the selection snapshot). `version`: the snapshot's the
    model was chosen from, which spares asking the cache for it again."""
    global _upstreams
    version = version or registry_snapshot().version
    current = _upstreams
    if current is None or current[0] != version:
        with _lock:
            if _upstreams is None or _upstreams[0] != version:
                _upstreams = (version, _load_upstreams())
            current = _upstreams
    upstream = current[1].get(model_id)
    if upstream is None or not upstream.base_url:
        raise UpstreamUnavailable(f"no provider endpoint is configured for {model_id!r}")
    return upstream


def _load_upstreams() -> dict[str, Upstream]:
    rows = ModelProfile.objects.values_list(
        "id", "provider_model_name", "provider__name", "provider__base_url", "provider__api_key_env"
    )
    return {
        model_id: Upstream(
            model_id=model_id,
            provider=provider,
            base_url=base_url,
            api_key_env=api_key_env,
            api_model_name=name or model_id,
        )
        for model_id, name, provider, base_url, api_key_env in rows
    }


def http_client() -> httpx.Client:
    """The process's shared client (a forked child makes its own: sockets are not shared)."""
    global _client
    current = _client
    if current is None or current[0] != os.getpid():
        with _lock:
            if _client is None or _client[0] != os.getpid():
                limit = settings.COSTSWITCH_GATEWAY_MAX_CONNECTIONS
                _client = (
                    os.getpid(),
                    httpx.Client(
                        timeout=request_timeout(),
                        limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
                        follow_redirects=False,
                    ),
                )
            current = _client
    return current[1]


def request_timeout() -> httpx.Timeout:
    """Read per request, so a changed setting applies without a new client."""
    return httpx.Timeout(
        settings.COSTSWITCH_GATEWAY_READ_TIMEOUT,
        connect=settings.COSTSWITCH_GATEWAY_CONNECT_TIMEOUT,
        pool=settings.COSTSWITCH_GATEWAY_CONNECT_TIMEOUT,
    )
