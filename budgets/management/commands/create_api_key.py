"""`manage.py create_api_key`: mint an API key for a team (service account) or a user."""

from django.core.management.base import BaseCommand, CommandError

from budgets.models import Organization, Team, User
from budgets.services.keys import api_key_create


class Command(BaseCommand):
    help = (
        "Create an API key bound to a team (service account) or a user of an organization. "
        "The secret is printed once; only its hash is stored."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", required=True, help="Organization slug.")
        owner = parser.add_mutually_exclusive_group(required=True)
        owner.add_argument("--team", help="Team slug: the key is the team's service account.")
        owner.add_argument("--user", help="Username: the key acts as this person.")
        parser.add_argument("--name", required=True, help="What the key is for, e.g. 'billing-service'.")
        parser.add_argument(
            "--critical",
            action="store_true",
            help="A critical system: may pass a blocked budget with an override.",
        )

    def handle(
        self, *args, org: str, team: str | None, user: str | None, name: str, critical: bool, **options
    ):
        name = name.strip()
        if not name:
            raise CommandError("--name must not be blank.")
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organization with slug {org!r}.")
        bound_team = bound_user = None
        if team is not None:
            bound_team = Team.objects.filter(organization=organization, slug=team).first()
            if bound_team is None:
                raise CommandError(f"Organization {org!r} has no team with slug {team!r}.")
        else:
            bound_user = User.objects.filter(organization=organization, username=user).first()
            if bound_user is None:
                raise CommandError(f"Organization {org!r} has no user {user!r}.")
            if not bound_user.is_active:
                raise CommandError(f"User {user!r} is inactive.")
        api_key, secret = api_key_create(
            organization=organization, name=name, team=bound_team, user=bound_user, critical=critical
        )
        owner = f"team {bound_team.slug}" if bound_team else f"user {bound_user.username}"
        self.stdout.write(
            f"Created API key {api_key.name!r} ({api_key.prefix}…) for {owner} of {organization.slug}"
            f"{', critical' if critical else ''}. The secret is shown only now:"
        )
        self.stdout.write(secret)
