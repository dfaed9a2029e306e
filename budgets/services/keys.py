from django.db import transaction
from django.utils import timezone

from budgets.models import ApiKey, Organization, Team, User
from costswitch.keys import generate_api_key


@transaction.atomic
def api_key_create(
    *,
    organization: Organization,
    name: str,
    team: Team | None = None,
    user: User | None = None,
    critical: bool = False,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret, which is never stored and cannot be shown again."""
    key, prefix, key_hash = generate_api_key()
    api_key = ApiKey.objects.create(
        organization=organization,
        name=name,
        team=team,
        user=user,
        critical=critical,
        requests_per_minute=requests_per_minute,
        tokens_per_minute=tokens_per_minute,
        prefix=prefix,
        key_hash=key_hash,
    )
    return api_key, key


def api_key_revoke(*, api_key: ApiKey) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    return api_key
