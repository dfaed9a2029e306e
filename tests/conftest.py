"""Shared personas (as in healthchecks' hc/test.py): one organization with two teams, plus an outsider.

alice: team lead of alpha   bob: member of alpha (read-only)   carol: member of beta
fiona: finance for the org  omar: admin in another organization (the outsider)
"""

from dataclasses import dataclass

import pytest
from rest_framework.test import APIClient

from budgets.choices import Role
from budgets.models import Organization, Team, User
from tests.budgets.factories import (
    MembershipFactory,
    OrganizationFactory,
    TeamFactory,
    UserFactory,
    make_api_key,
)
from tests.processes import RedisServer


@dataclass
class World:
    org: Organization
    alpha: Team
    beta: Team
    alice: User
    bob: User
    carol: User
    fiona: User
    other_org: Organization
    other_team: Team
    omar: User


@pytest.fixture
def world(db) -> World:
    org = OrganizationFactory(name="Acme", slug="acme")
    alpha = TeamFactory(organization=org, name="Alpha", slug="alpha")
    beta = TeamFactory(organization=org, name="Beta", slug="beta")
    other_org = OrganizationFactory(name="Globex", slug="globex")
    other_team = TeamFactory(organization=other_org, name="Outside", slug="outside")

    def person(name, team, role):
        user = UserFactory(username=name, organization=team.organization)
        MembershipFactory(user=user, team=team, role=role)
        return user

    return World(
        org=org,
        alpha=alpha,
        beta=beta,
        alice=person("alice", alpha, Role.TEAM_LEAD),
        bob=person("bob", alpha, Role.MEMBER),
        carol=person("carol", beta, Role.MEMBER),
        fiona=person("fiona", beta, Role.FINANCE),
        other_org=other_org,
        other_team=other_team,
        omar=person("omar", other_team, Role.ADMIN),
    )


def client_for(user: User) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def client_with_key(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def team_key(world):
    """A service-account key of team alpha: (ApiKey, secret)."""
    return make_api_key(team=world.alpha)


@pytest.fixture
def redis_server():
    """A Redis server of the test's own, for a Celery worker process (tests/processes.py)."""
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.close()
