from datetime import UTC, datetime
from decimal import Decimal

import factory

from budgets.choices import PeriodKind, Role, ScopeType
from budgets.models import Budget, Membership, Organization, Team, User
from budgets.services.budgets import DEFAULT_THRESHOLD_SPECS
from budgets.services.keys import api_key_create


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")
    timezone = "UTC"


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Team {n}")
    slug = factory.Sequence(lambda n: f"team-{n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    organization = factory.SubFactory(OrganizationFactory)
    password = factory.PostGenerationMethodCall("set_password", "password")

    @factory.post_generation
    def save_password(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    team = factory.SubFactory(TeamFactory)
    user = factory.SubFactory(UserFactory, organization=factory.SelfAttribute("..team.organization"))
    role = Role.MEMBER
    is_primary = True


class BudgetFactory(factory.django.DjangoModelFactory):
    """An organization budget by default; pass team= or user= (with scope_type) for other scopes."""

    class Meta:
        model = Budget
        skip_postgeneration_save = True

    organization = factory.SubFactory(OrganizationFactory)
    scope_type = ScopeType.ORGANIZATION
    name = factory.Sequence(lambda n: f"Budget {n}")
    period = PeriodKind.MONTHLY
    limit = Decimal("100")
    currency = "USD"
    starts_at = datetime(2020, 1, 1, tzinfo=UTC)

    @factory.post_generation
    def thresholds(obj, create, extracted, **kwargs):
        if not create:
            return
        specs = DEFAULT_THRESHOLD_SPECS if extracted is None else extracted
        for spec in specs:
            obj.thresholds.create(percent=spec.percent, actions=list(spec.actions))


def team_budget(team: Team, **kwargs) -> Budget:
    return BudgetFactory(organization=team.organization, team=team, scope_type=ScopeType.TEAM, **kwargs)


def user_budget(user: User, **kwargs) -> Budget:
    return BudgetFactory(organization=user.organization, user=user, scope_type=ScopeType.USER, **kwargs)


def make_api_key(*, team: Team | None = None, user: User | None = None, critical: bool = False):
    """Returns (ApiKey, secret)."""
    organization = (team or user).organization
    return api_key_create(organization=organization, name="test key", team=team, user=user, critical=critical)
