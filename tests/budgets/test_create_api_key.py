from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from budgets.models import ApiKey
from costswitch.keys import hash_api_key


def create_key(*args: str) -> str:
    out = StringIO()
    call_command("create_api_key", *args, stdout=out)
    return out.getvalue()


def test_it_creates_a_team_key_and_prints_the_secret_once(world):
    output = create_key("--org", "acme", "--team", "alpha", "--name", "billing", "--critical")
    api_key = ApiKey.objects.get(name="billing")
    secret = output.strip().splitlines()[-1]
    assert (api_key.team, api_key.user, api_key.critical) == (world.alpha, None, True)
    assert api_key.key_hash == hash_api_key(secret)


def test_it_creates_a_personal_key(world):
    create_key("--org", "acme", "--user", "bob", "--name", "laptop")
    api_key = ApiKey.objects.get(name="laptop")
    assert (api_key.user, api_key.team, api_key.critical) == (world.bob, None, False)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--org", "nope", "--team", "alpha", "--name", "k"], "No organization"),
        (["--org", "acme", "--team", "outside", "--name", "k"], "no team"),
        (["--org", "acme", "--user", "omar", "--name", "k"], "no user"),
        (["--org", "acme", "--team", "alpha", "--name", "  "], "blank"),
    ],
)
def test_it_rejects_bad_input(world, args, message):
    with pytest.raises(CommandError, match=message):
        create_key(*args)
    assert not ApiKey.objects.exists()


def test_it_needs_exactly_one_owner(world):
    with pytest.raises(CommandError):
        create_key("--org", "acme", "--name", "k")
    with pytest.raises(CommandError):
        create_key("--org", "acme", "--team", "alpha", "--user", "bob", "--name", "k")
