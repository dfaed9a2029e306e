"""`Authorization: Bearer <key>` authentication for API keys (service accounts and personal keys)."""

from datetime import timedelta
from functools import cache

from django.apps import apps
from django.db.models import Model
from django.utils import timezone
from rest_framework import authentication, exceptions

from costswitch.api.throttling import invalid_key_guard, invalid_key_seen
from costswitch.keys import KEY_PREFIX, hash_api_key
from costswitch.rows import Columns, fetch_rows

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
        api_key = api_key_with_owners(hash_api_key(key))
        if api_key is None:
            invalid_key_seen(request)
            raise exceptions.AuthenticationFailed("Unknown API key.")
        now = timezone.now()
        if api_key.revoked_at is not None or (api_key.expires_at and api_key.expires_at <= now):
            raise exceptions.AuthenticationFailed("This API key is revoked or expired.")
        if api_key.user is not None and not api_key.user.is_active:
            raise exceptions.AuthenticationFailed("The user of this API key is inactive.")
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            # At most one write a minute per key: "last used" for admins, not a per-request cost.
            type(api_key).objects.filter(pk=api_key.pk).update(last_used_at=now)
        user = api_key.user or ServiceAccount(api_key)
        return user, api_key

    def authenticate_header(self, request) -> str:
        return self.keyword


@cache
def _lookup() -> tuple[str, list[tuple[str | None, Columns]]]:
    """The key with its organization, team and user: one statement (written out, see rows.py)."""
    key = Columns(apps.get_model("budgets.ApiKey"), "k")
    owners = [
        ("organization", Columns(apps.get_model("budgets.Organization"), "o")),
        ("team", Columns(apps.get_model("budgets.Team"), "t")),
        ("user", Columns(apps.get_model("budgets.User"), "u")),
    ]
    joins = " ".join(
        f"{'JOIN' if relation == 'organization' else 'LEFT JOIN'} {columns.table} "
        f"ON {columns.alias}.id = k.{relation}_id"
        for relation, columns in owners
    )
    select = ", ".join(columns.sql for _, columns in [(None, key), *owners])
    return f"SELECT {select} FROM {key.table} {joins} WHERE k.key_hash = %s", [(None, key), *owners]


def api_key_with_owners(key_hash: str) -> Model | None:
    """The API key with this hash, with its organization, team and user; None if there is none."""
    sql, parts = _lookup()
    rows = fetch_rows(sql, [key_hash])
    if not rows:
        return None
    loaded, start = {}, 0
    for relation, columns in parts:
        loaded[relation] = columns.load(rows[0], start)
        start += len(columns)
    api_key = loaded.pop(None)
    for relation, owner in loaded.items():
        setattr(api_key, relation, owner)
    return api_key
