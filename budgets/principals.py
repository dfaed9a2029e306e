"""Who is calling, which budget chain they spend from, and what they may see and change.

Visibility (read) and management (write) rules, in one place:
- finance and admin members see and manage everything in their organization;
- a team lead sees her teams and their members, and manages her members' user budgets;
- a member sees her own user budgets and her teams' budgets, and manages nothing;
- an API key sees only its own scope (its team, or its user) and manages nothing;
- nothing crosses organizations.
"""

from dataclasses import dataclass, field
from functools import cached_property

from budgets.choices import ORG_WIDE_ROLES, Role, ScopeType
from budgets.models import ApiKey, Membership, Organization, Team, User
from costswitch import logs
from costswitch.errors import NotFound, PermissionDenied


@dataclass(frozen=True)
class Principal:
    """The caller, resolved once per request: organization, the team and user spending, and roles."""

    organization: Organization
    team: Team | None = None
    user: User | None = None
    api_key: ApiKey | None = None
    org_wide: bool = False
    lead_team_ids: frozenset[int] = field(default_factory=frozenset)
    member_team_ids: frozenset[int] = field(default_factory=frozenset)

    @cached_property
    def visible_user_ids(self) -> frozenset[int] | None:
        """None means every user of the organization."""
        if self.org_wide:
            return None
        if self.api_key is not None:
            return frozenset({self.user.pk}) if self.user else frozenset()
        led = set(Membership.objects.filter(team_id__in=self.lead_team_ids).values_list("user_id", flat=True))
        return frozenset(led | {self.user.pk})

    @cached_property
    def visible_team_ids(self) -> frozenset[int] | None:
        if self.org_wide:
            return None
        if self.api_key is not None:
            return frozenset({self.team.pk}) if self.team and not self.user else frozenset()
        return self.member_team_ids | self.lead_team_ids

    def can_see_scope(self, scope_type: str, scope_id: int) -> bool:
        if scope_type == ScopeType.ORGANIZATION:
            return self.org_wide and scope_id == self.organization.pk
        ids = self.visible_team_ids if scope_type == ScopeType.TEAM else self.visible_user_ids
        return ids is None or scope_id in ids

    def can_manage_scope(self, scope_type: str, scope_id: int) -> bool:
        if self.api_key is not None:
            return False
        if self.org_wide:
            return True
        if scope_type == ScopeType.USER and self.lead_team_ids and scope_id != self.user.pk:
            # A lead manages her members' budgets, never her own: nobody raises their own limit.
            return Membership.objects.filter(user_id=scope_id, team_id__in=self.lead_team_ids).exists()
        return False


def principal_for_user(user: User, *, team: Team | None = None) -> Principal:
    """A person logged in by session (or using a personal API key)."""
    if user.organization_id is None:
        raise PermissionDenied("This account belongs to no organization.", code="no_organization")
    memberships = list(Membership.objects.filter(user=user).select_related("team"))
    org_wide = any(m.role in ORG_WIDE_ROLES for m in memberships)
    if team is None:
        primary = next((m for m in memberships if m.is_primary), None) or (
            memberships[0] if memberships else None
        )
        team = primary.team if primary else None
    return Principal(
        organization=user.organization,
        team=team,
        user=user,
        org_wide=org_wide,
        lead_team_ids=frozenset(m.team_id for m in memberships if m.role == Role.TEAM_LEAD),
        member_team_ids=frozenset(m.team_id for m in memberships),
    )


def principal_for_api_key(api_key: ApiKey) -> Principal:
    """A key only ever acts as its own scope: no roles, whatever its user's roles are."""
    team = api_key.team
    if team is None and api_key.user is not None:
        team = principal_for_user(api_key.user).team
    return Principal(organization=api_key.organization, team=team, user=api_key.user, api_key=api_key)


def principal_from_request(request) -> Principal:
    cached = getattr(request, "_costswitch_principal", None)
    if cached is not None:
        return cached
    if isinstance(request.auth, ApiKey):
        principal = principal_for_api_key(request.auth)
    else:
        principal = principal_for_user(request.user)
    request._costswitch_principal = principal
    # Every log record of the request names its caller from here on (never the key itself).
    logs.bind(
        principal=logs.principal_label(api_key=principal.api_key, user=principal.user),
        organization=principal.organization.slug,
    )
    return principal


def attribution_for(
    principal: Principal, *, team_id: int | None, user_id: int | None
) -> tuple[Team | None, User | None]:
    """The team and user a charge is booked to. Callers may attribute to others only within what
    they manage (a team key to its members, a lead to her teams, finance and admins anywhere);
    ids outside the organization do not exist for them."""
    if team_id is None and user_id is None:
        return principal.team, principal.user
    if (
        user_id is None
        and principal.user is not None
        and not (principal.org_wide or team_id in principal.lead_team_ids)
    ):
        # Naming only a team must not take a person's own spend off her user budget.
        user_id = principal.user.pk
    org = principal.organization
    user = None
    if user_id is not None:
        user = User.objects.filter(pk=user_id, organization=org).first()
        if user is None:
            raise NotFound(f"User {user_id} not found.", code="unknown_user")
    team = None
    if team_id is not None:
        team = Team.objects.filter(pk=team_id, organization=org).first()
        if team is None:
            raise NotFound(f"Team {team_id} not found.", code="unknown_team")
    elif user is not None:
        team = principal_for_user(user).team
    if user is not None and team is not None and not Membership.objects.filter(user=user, team=team).exists():
        raise PermissionDenied(f"User {user.pk} is not a member of team {team.pk}.", code="not_a_member")
    if not _may_attribute(principal, team, user):
        raise PermissionDenied("You may not report spend for that team or user.")
    return team, user


def _may_attribute(principal: Principal, team: Team | None, user: User | None) -> bool:
    if principal.org_wide:
        return True
    if principal.api_key is not None:
        own_team = principal.api_key.team_id
        if principal.api_key.user_id is not None:
            return (user is None or user.pk == principal.api_key.user_id) and (
                team is None or team.pk == (principal.team.pk if principal.team else None)
            )
        return team is not None and team.pk == own_team
    if team is not None and team.pk in principal.lead_team_ids:
        return True
    return (user is None or user.pk == principal.user.pk) and (
        team is None or team.pk in principal.member_team_ids
    )
