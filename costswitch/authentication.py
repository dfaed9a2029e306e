"""`Authorization: Bearer <key>` authentication for API keys (service accounts and personal keys)."""

from datetime import timedelta

from django.apps import apps
from django.utils import timezone
from rest_framework import authentication, exceptions

from costswitch.api.throttling import invalid_key_guard, invalid_key_seen
from costswitch.keys import KEY_PREFIX, hash_api_key

LAST_USED_RESOLUTION = timedelta(minutes=1)


class ServiceAccount:
    """The request user for a team-bound key: authenticated, but not a person."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_superuser = False
    is_staff = False
    pk = None

    def __init__(self, api_key):
        self.api_key = api_key

    def __str__(self) -> str:
        return f"api-key:{self.api_key.prefix}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, key = header.partition(" ")
        if scheme != self.keyword:
            return None
        # A client address over its invalid-key limit is refused before any key work (see throttling).
        invalid_key_guard(request)
        key = key.strip()
        if not key.startswith(KEY_PREFIX):
            invalid_key_seen(request)
            raise exceptions.AuthenticationFailed("Malformed API key.")
        ApiKey = apps.get_model("budgets", "ApiKey")
        try:
            api_key = ApiKey.objects.select_related("organization", "team", "user").get(
                key_hash=hash_api_key(key)
            )
        except ApiKey.DoesNotExist:
            invalid_key_seen(request)
            raise exceptions.AuthenticationFailed("Unknown API key.") from None
        now = timezone.now()
        if api_key.revoked_at is not None or (api_key.expires_at and api_key.expires_at <= now):
            raise exceptions.AuthenticationFailed("This API key is revoked or expired.")
        if api_key.user is not None and not api_key.user.is_active:
            raise exceptions.AuthenticationFailed("The user of this API key is inactive.")
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            # At most one write a minute per key: "last used" for admins, not a per-request cost.
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        user = api_key.user or ServiceAccount(api_key)
        return user, api_key

    def authenticate_header(self, request) -> str:
        return self.keyword
