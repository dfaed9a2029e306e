"""`Authorization: Bearer <key>` authentication for API keys (service accounts and personal keys)."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

from django.apps import apps
from django.db import connection
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


# (model, alias, the API key's foreign key to it); the key's own row first.
_OWNERS = (
    ("budgets.ApiKey", "k", None),
    ("budgets.Organization", "o", "organization"),
    ("budgets.Team", "t", "team"),
    ("budgets.User", "u", "user"),
)


@dataclass(frozen=True)
class _Part:
    """One model's columns in the lookup's row, with the database converters the ORM would apply."""

    model: type
    relation: str | None
    names: list[str]
    converters: list[tuple[int, Callable, object]]  # (column, converter, its column expression)


@cache
def _lookup() -> tuple[str, list[_Part]]:
    """The key, its organization, team and user in one statement. The ORM takes longer to build
    this join than the database takes to run it, on every API request; it is built once here."""
    quote = connection.ops.quote_name
    key_model = apps.get_model(_OWNERS[0][0])
    columns, joins, parts = [], [], []
    for label, alias, relation in _OWNERS:
        model = apps.get_model(label)
        fields = model._meta.concrete_fields
        columns += [f"{alias}.{quote(field.column)}" for field in fields]
        converters = [
            (index, converter, column)
            for index, field in enumerate(fields)
            for column in [field.get_col(alias)]
            for converter in connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        ]
        parts.append(_Part(model, relation, [field.attname for field in fields], converters))
        if relation:
            join = "JOIN" if relation == "organization" else "LEFT JOIN"
            key_column = quote(key_model._meta.get_field(relation).column)
            joins.append(f"{join} {quote(model._meta.db_table)} {alias} ON {alias}.id = k.{key_column}")
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(key_model._meta.db_table)} k {' '.join(joins)} "
        f"WHERE k.{quote('key_hash')} = %s"
    )
    return sql, parts


def api_key_with_owners(key_hash: str):
    """The API key with this hash, with its organization, team and user; None if there is none."""
    sql, parts = _lookup()
    with connection.cursor() as cursor:
        cursor.execute(sql, [key_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    loaded, start = {}, 0
    for part in parts:
        values = list(row[start : start + len(part.names)])
        start += len(part.names)
        if values[0] is None:  # no team (or user) joined
            loaded[part.relation] = None
            continue
        for index, converter, column in part.converters:
            values[index] = converter(values[index], column, connection)
        loaded[part.relation] = part.model.from_db(connection.alias, part.names, values)
    api_key = loaded.pop(None)
    for relation, owner in loaded.items():
        setattr(api_key, relation, owner)
    return api_key
