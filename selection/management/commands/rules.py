"""`manage.py rules check FILE` and `manage.py rules test FILE REQUEST.json`: validate a steering
rule file, and show the decision it leads to for a sample request (nothing reserved or stored)."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from djangorestframework_camel_case.settings import api_settings
from djangorestframework_camel_case.util import underscoreize
from rest_framework.exceptions import ValidationError

from budgets.models import Organization, Team, User
from budgets.principals import Principal, principal_for_user
from costswitch.api.serializers import validated
from costswitch.errors import DomainError
from models_registry.models import ModelProfile
from selection.admission import admit
from selection.api.serializers import SelectInputSerializer, admission_request, explanation_body
from selection.rules import RuleSet, RulesInvalid, parse_rules


class Command(BaseCommand):
    help = "Check a steering rule file, or test it against a sample request."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="action", required=True)
        check = commands.add_parser(
            "check", help="Validate FILE; exit 1 with every problem if it is invalid."
        )
        check.add_argument("file", type=Path)
        test = commands.add_parser("test", help="Run REQUEST.json (a select body) through admit() with FILE.")
        test.add_argument("file", type=Path)
        test.add_argument("request", type=Path)
        test.add_argument("--org", help="Organization slug (default: the only organization).")
        caller = test.add_mutually_exclusive_group()
        caller.add_argument("--team", help="Team slug to spend as (a service account of that team).")
        caller.add_argument("--user", help="Username to spend as.")
        test.add_argument("--path", default="/api/v1/models/select", help="Request path the rules see.")
        test.add_argument("--json", action="store_true", help="Print the full explanation as JSON.")

    def handle(self, *args, action: str, file: Path, **options):
        rules = self._load(file)
        if action == "check":
            self._describe(rules)
            return
        principal = self._principal(options["org"], options["team"], options["user"])
        body = self._request_body(options["request"])
        try:
            data = validated(SelectInputSerializer, body)
        except ValidationError as error:
            raise CommandError(f"{options['request']}: {json.dumps(error.detail)}") from None
        request = admission_request(data, path=options["path"])
        try:
            admission = admit(principal=principal, request=request, reserve=False, record=False, rules=rules)
        except DomainError as refusal:
            self.stdout.write(f"REFUSED {refusal.status} {refusal.code}: {refusal.message}")
            return
        decision = admission.decision
        if options["json"]:
            self.stdout.write(json.dumps(explanation_body(decision), indent=2, default=str))
            return
        self.stdout.write(
            f"selected {decision.selected_model} (estimated ${decision.estimated_cost}) for a "
            f"{decision.task_type} request, complexity {decision.complexity}, strategy {decision.strategy}, "
            f"quality requirement {decision.quality_requirement}"
        )
        self.stdout.write(f"rule: {decision.rule_name or '(none matched)'}")
        for change in decision.changes:
            self.stdout.write(f"change: {change['source']}: {change['effect']}")
        for candidate in decision.candidates[:5]:
            self.stdout.write(
                f"  {candidate['model']:<32} ${candidate['estimated_cost']:<14} "
                f"quality {candidate['quality']:<3} score {candidate['score']}"
            )
        for rejection in decision.rejections:
            self.stdout.write(f"  rejected {rejection['model']}: {rejection['reason']}")

    def _load(self, file: Path) -> RuleSet:
        try:
            source = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"Cannot read {file}: {error}") from None
        try:
            return parse_rules(source, known_models=set(ModelProfile.objects.values_list("pk", flat=True)))
        except RulesInvalid as invalid:
            for problem in invalid.problems:
                line = f"line {problem.line}" if problem.line else "file"
                self.stderr.write(f"{file}: {line}: {problem.field or '(top level)'}: {problem.message}")
            raise CommandError(f"{file}: {len(invalid.problems)} problem(s).") from None

    def _describe(self, rules: RuleSet) -> None:
        self.stdout.write(f"OK: {len(rules.rules)} rule(s), in the order they are tried:")
        for rule in rules.rules:
            actions = [a for a in ("deny", "route_to", "select") if getattr(rule, a) is not None]
            state = "" if rule.enabled else " (disabled)"
            self.stdout.write(
                f"  {rule.priority:>6}  {rule.name}{state}: {len(rule.conditions)} condition(s) -> "
                f"{', '.join(actions)} (line {rule.line})"
            )

    def _principal(self, org: str | None, team: str | None, user: str | None) -> Principal:
        organizations = Organization.objects.filter(slug=org) if org else Organization.objects.all()
        if organizations.count() != 1:
            raise CommandError(
                "Name the organization with --org." if not org else f"No organization {org!r}."
            )
        organization = organizations.get()
        if user:
            person = User.objects.filter(organization=organization, username=user).first()
            if person is None:
                raise CommandError(f"No user {user!r} in {organization.slug}.")
            return principal_for_user(person)
        spending_team = None
        if team:
            spending_team = Team.objects.filter(organization=organization, slug=team).first()
            if spending_team is None:
                raise CommandError(f"No team {team!r} in {organization.slug}.")
        return Principal(organization=organization, team=spending_team)

    def _request_body(self, path: Path) -> dict:
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise CommandError(f"Cannot read {path}: {error}") from None
        if not isinstance(body, dict):
            raise CommandError(f"{path}: expected a JSON object (a select request body).")
        if "request" not in body and "messages" in body:
            body = {"request": body}  # a bare chat request is accepted too
        return underscoreize(body, **api_settings.JSON_UNDERSCOREIZE)
