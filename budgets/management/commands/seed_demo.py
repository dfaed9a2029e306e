"""`manage.py seed_demo`: a demo organization with teams, budgets at every status and a spend history.

Idempotent: when the demo organization exists it only prints the login and mints a fresh demo key.
Spend goes through the ledger services (never straight into the tables), so the period aggregates
equal the ledger exactly. Money is Decimal throughout: random draws are integers (token counts,
seconds), prices are Decimals per 1M tokens.
"""

import random
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth.hashers import make_password
from django.core.management.base import BaseCommand
from django.db import transaction
from django.utils import timezone

from budgets.choices import PeriodKind, Role, ScopeType
from budgets.models import ApiKey, Budget, Membership, Organization, Team, User
from budgets.principals import principal_for_api_key, principal_for_user
from budgets.selectors import budget_status
from budgets.services.budgets import budget_create
from budgets.services.keys import api_key_create
from budgets.services.ledger import UsageReport, reservation_authorize, usage_record_many
from budgets.services.periods import period_get_or_open
from costswitch.money import ZERO, quantize_money

ORG_SLUG = "acme"
ORG_NAME = "Acme Corp"
ORG_TIMEZONE = "Europe/Berlin"
ADMIN_USERNAME, ADMIN_PASSWORD = "admin", "admin"  # DEMO ONLY
DEMO_PASSWORD = "demo"  # DEMO ONLY, for everybody else
HISTORY_DAYS = 60
HISTORY_RECORDS = 2_700
BATCH_SIZE = 1_000
SEED = 20_240_601
MILLION = Decimal(1_000_000)
BASE_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Price:
    """List prices per 1M tokens."""

    provider: str
    input: Decimal
    output: Decimal
    cached_input: Decimal


PRICES = {
    "gpt-4o": Price("openai", Decimal("2.50"), Decimal("10.00"), Decimal("1.25")),
    "gpt-4o-mini": Price("openai", Decimal("0.15"), Decimal("0.60"), Decimal("0.075")),
    "claude-3-5-sonnet": Price("anthropic", Decimal("3.00"), Decimal("15.00"), Decimal("0.30")),
    "claude-3-5-haiku": Price("anthropic", Decimal("0.80"), Decimal("4.00"), Decimal("0.08")),
    "gemini-1.5-flash": Price("google", Decimal("0.075"), Decimal("0.30"), Decimal("0.01875")),
    "mistral-large": Price("mistral", Decimal("2.00"), Decimal("6.00"), Decimal("2.00")),
}

# (input tokens range, output tokens range) per task type.
TASKS = {
    "chat": ((500, 8_000), (100, 900)),
    "code": ((4_000, 40_000), (200, 2_500)),
    "summarization": ((5_000, 60_000), (200, 1_200)),
    "extraction": ((2_000, 20_000), (100, 800)),
    "classification": ((300, 3_000), (5, 60)),
    "translation": ((300, 4_000), (300, 4_000)),
    "analysis": ((10_000, 120_000), (800, 4_000)),
}
CACHEABLE_TASKS = {"chat", "code", "analysis"}


@dataclass(frozen=True)
class TeamProfile:
    """How a team spends: weighted models and tasks, its projects and bots, and its burst models."""

    name: str
    share: int  # relative number of requests
    models: dict[str, int]
    tasks: dict[str, int]
    projects: tuple[str, ...]
    agents: tuple[str, ...]
    heavy_models: dict[str, int]
    heavy_tasks: dict[str, int]


TEAMS = {
    "platform": TeamProfile(
        name="Platform",
        share=40,
        models={"gpt-4o-mini": 4, "gpt-4o": 3, "claude-3-5-sonnet": 3},
        tasks={"code": 5, "chat": 3, "extraction": 2},
        projects=("internal-copilot", "api-gateway", "ci-reviewer"),
        agents=("ci-reviewer", "pr-summarizer"),
        heavy_models={"gpt-4o": 1, "claude-3-5-sonnet": 1},
        heavy_tasks={"code": 1},
    ),
    "research": TeamProfile(
        name="Research",
        share=35,
        models={"claude-3-5-sonnet": 3, "gpt-4o": 2, "mistral-large": 2, "gemini-1.5-flash": 3},
        tasks={"analysis": 3, "summarization": 4, "extraction": 3},
        projects=("lit-review", "eval-harness", "rag-experiments"),
        agents=("nightly-eval", "paper-digest"),
        heavy_models={"claude-3-5-sonnet": 2, "gpt-4o": 1},
        heavy_tasks={"analysis": 1},
    ),
    "support": TeamProfile(
        name="Support",
        share=25,
        models={"gpt-4o-mini": 4, "claude-3-5-haiku": 3, "gemini-1.5-flash": 3},
        tasks={"chat": 4, "classification": 3, "translation": 2, "summarization": 1},
        projects=("helpdesk-assistant", "ticket-triage"),
        agents=("triage-bot", "reply-drafter"),
        heavy_models={"gpt-4o": 1},
        heavy_tasks={"summarization": 1},
    ),
}


@dataclass(frozen=True)
class Person:
    username: str
    first_name: str
    last_name: str
    team: str
    role: str
    also_in: tuple[str, ...] = ()
    spends: int = 3  # relative share of the team's requests; 0 for people who do not call LLMs


PEOPLE = (
    Person("admin", "Ada", "Admin", "platform", Role.ADMIN, spends=0),
    Person("fiona", "Fiona", "Finch", "platform", Role.FINANCE, spends=0),
    Person("paula", "Paula", "Petrov", "platform", Role.TEAM_LEAD, spends=2),
    Person("peter", "Peter", "Park", "platform", Role.MEMBER),
    Person("priya", "Priya", "Patel", "platform", Role.MEMBER, also_in=("research",)),
    Person("rachel", "Rachel", "Reyes", "research", Role.TEAM_LEAD, spends=2),
    Person("raj", "Raj", "Rao", "research", Role.MEMBER),
    Person("rosa", "Rosa", "Romero", "research", Role.MEMBER),
    Person("ravi", "Ravi", "Reddy", "research", Role.MEMBER),
    Person("sam", "Sam", "Sato", "support", Role.TEAM_LEAD, spends=2),
    Person("sofia", "Sofia", "Silva", "support", Role.MEMBER),
    Person("stan", "Stan", "Stone", "support", Role.MEMBER),
)
FINANCE_USERNAME = "fiona"
# One request in five comes from a team's service account (no person attached).
SERVICE_ACCOUNT_PERCENT = 20


@dataclass(frozen=True)
class BudgetSpec:
    """A demo budget and the share of its limit committed in the current period (None: as history left it).

    Listed in the order they are filled: a charge also counts against every budget above it in the
    chain, so user budgets come first, then the daily one, then teams and the organization.
    """

    name: str
    scope: str  # "org", a team slug or a username
    period: str
    limit: Decimal
    target_percent: int | None = None
    restricted_models: tuple[str, ...] = ()
    max_cost_per_request: Decimal | None = None


BUDGETS = (
    BudgetSpec("Peter monthly", "peter", PeriodKind.MONTHLY, Decimal("10"), target_percent=92),  # critical
    BudgetSpec("Raj monthly", "raj", PeriodKind.MONTHLY, Decimal("20"), target_percent=62),  # warning
    BudgetSpec("Sofia monthly", "sofia", PeriodKind.MONTHLY, Decimal("2")),  # normal
    BudgetSpec(
        "Support daily",
        "support",
        PeriodKind.DAILY,
        Decimal("0.50"),
        target_percent=104,  # exhausted
        max_cost_per_request=Decimal("0.05"),
    ),
    BudgetSpec(
        "Platform monthly",
        "platform",
        PeriodKind.MONTHLY,
        Decimal("40"),
        target_percent=75,  # warning
        restricted_models=("gpt-4o", "claude-3-5-sonnet"),
    ),
    BudgetSpec(
        "Research monthly",
        "research",
        PeriodKind.MONTHLY,
        Decimal("60"),
        target_percent=90,  # critical
        restricted_models=("claude-3-5-sonnet", "gpt-4o", "mistral-large"),
        max_cost_per_request=Decimal("0.50"),
    ),
    BudgetSpec("Support monthly", "support", PeriodKind.MONTHLY, Decimal("10")),  # normal
    BudgetSpec("Acme monthly", "org", PeriodKind.MONTHLY, Decimal("150")),  # warning: the teams add up
)

# A few requests in flight when the demo starts: (username, model, amount).
PENDING_RESERVATIONS = (
    ("peter", "gpt-4o", Decimal("0.40")),
    ("paula", "claude-3-5-sonnet", Decimal("0.30")),
    ("raj", "claude-3-5-sonnet", Decimal("0.90")),
    ("rosa", "mistral-large", Decimal("0.60")),
)
RESERVATION_TTL_SECONDS = 3_600


def _pick(rng: random.Random, weighted: dict):
    """A key of `weighted`, drawn with integer weights."""
    draw = rng.randrange(sum(weighted.values()))
    for key, weight in weighted.items():
        draw -= weight
        if draw < 0:
            return key
    raise AssertionError("unreachable")


class Command(BaseCommand):
    help = (
        "Create the demo organization 'Acme Corp' (teams, users, API keys, budgets at every status, "
        "~3,000 usage records over 60 days). If it exists, print the login and a fresh demo API key."
    )

    def handle(self, *args, **options):
        organization = Organization.objects.filter(slug=ORG_SLUG).first()
        if organization is not None:
            self.stdout.write(f"Demo organization {organization.name!r} already exists; not seeding again.")
        else:
            started = timezone.now()
            with transaction.atomic():
                organization = DemoSeeder(self.stdout).run()
            seconds = (timezone.now() - started).total_seconds()
            self.stdout.write(self.style.SUCCESS(f"Seeded {organization.name!r} in {seconds:.1f}s."))
        self._print_access(organization)

    def _print_access(self, organization: Organization) -> None:
        team = Team.objects.filter(organization=organization, slug="platform").first()
        team = team or Team.objects.filter(organization=organization).first()
        api_key, secret = api_key_create(organization=organization, name="demo key", team=team)
        write = self.stdout.write
        write("")
        write(f"Admin:    {BASE_URL}/admin/   login {ADMIN_USERNAME} / {ADMIN_PASSWORD}  (DEMO ONLY)")
        others = ", ".join(p.username for p in PEOPLE if p.username != ADMIN_USERNAME)
        write(f"Users:    {others}  (password {DEMO_PASSWORD!r}, DEMO ONLY)")
        write(f"API key:  {secret}")
        write(f"          ({api_key.name!r} of team {team.name}; shown once, only its hash is stored)")
        write("Try it:")
        write(f'  curl -H "Authorization: Bearer {secret}" {BASE_URL}/api/v1/budgets/status/team/{team.pk}')


class DemoSeeder:
    """Builds the demo organization; one instance per run, deterministic for a given clock."""

    def __init__(self, stdout):
        self.stdout = stdout
        self.rng = random.Random(SEED)
        self.now = timezone.now()
        self.tz = None
        self.request_counter = 0
        self.teams: dict[str, Team] = {}
        self.users: dict[str, User] = {}
        self.budgets: list[tuple[BudgetSpec, Budget]] = []

    def run(self) -> Organization:
        organization = Organization.objects.create(name=ORG_NAME, slug=ORG_SLUG, timezone=ORG_TIMEZONE)
        self.organization = organization
        self.tz = organization.tzinfo
        self._create_people()
        self.finance = principal_for_user(self.users[FINANCE_USERNAME])
        self.api_keys = self._create_team_keys()
        self._create_budgets()
        history = [self._history_report() for _ in range(HISTORY_RECORDS)]
        self._record(history)
        self._reserve()
        topped_up = sum(self._top_up(spec, budget) for spec, budget in self.budgets)
        self.stdout.write(
            f"Recorded {len(history) + topped_up} usage records ({topped_up} to reach the demo fill levels), "
            f"{len(PENDING_RESERVATIONS) + 1} pending reservations."
        )
        self._print_statuses()
        return organization

    # --- scopes -----------------------------------------------------------------------------------

    def _create_people(self) -> None:
        for slug, profile in TEAMS.items():
            self.teams[slug] = Team.objects.create(
                organization=self.organization, name=profile.name, slug=slug
            )
        # Hash once: the default hasher is slow by design, and these are demo passwords anyway.
        demo_hash, admin_hash = make_password(DEMO_PASSWORD), make_password(ADMIN_PASSWORD)
        for person in PEOPLE:
            is_admin = person.username == ADMIN_USERNAME
            self.users[person.username] = User.objects.create(
                username=person.username,
                first_name=person.first_name,
                last_name=person.last_name,
                email=f"{person.username}@acme.example",
                organization=self.organization,
                password=admin_hash if is_admin else demo_hash,
                is_staff=is_admin,
                is_superuser=is_admin,
            )
        Membership.objects.bulk_create(
            [
                Membership(user=self.users[p.username], team=self.teams[p.team], role=p.role, is_primary=True)
                for p in PEOPLE
            ]
            + [
                Membership(user=self.users[p.username], team=self.teams[slug], role=Role.MEMBER)
                for p in PEOPLE
                for slug in p.also_in
            ]
        )
        # Who makes the requests of each team, with weights; None is the team's service account.
        self.spenders: dict[str, dict[str | None, int]] = {slug: {} for slug in TEAMS}
        for person in PEOPLE:
            if person.spends:
                self.spenders[person.team][person.username] = person.spends
                for slug in person.also_in:
                    self.spenders[slug][person.username] = 1
        for spenders in self.spenders.values():
            people = sum(spenders.values())
            spenders[None] = people * SERVICE_ACCOUNT_PERCENT // (100 - SERVICE_ACCOUNT_PERCENT)

    def _create_team_keys(self) -> dict[str, ApiKey]:
        # The support bot answers customers: it keeps working (with an override) when budgets block.
        keys = {}
        for slug, team in self.teams.items():
            keys[slug], _ = api_key_create(
                organization=self.organization, name=f"{slug}-service", team=team, critical=slug == "support"
            )
        return keys

    def _create_budgets(self) -> None:
        local_month = self.now.astimezone(self.tz).date().replace(day=1)
        for _ in range(3):
            local_month = (local_month - timedelta(days=1)).replace(day=1)
        starts_at = datetime.combine(local_month, time.min, tzinfo=self.tz)
        for spec in BUDGETS:
            if spec.scope == "org":
                scope_type, scope_id = ScopeType.ORGANIZATION, self.organization.pk
            elif spec.scope in self.teams:
                scope_type, scope_id = ScopeType.TEAM, self.teams[spec.scope].pk
            else:
                scope_type, scope_id = ScopeType.USER, self.users[spec.scope].pk
            budget = budget_create(
                principal=self.finance,
                name=spec.name,
                scope_type=scope_type,
                scope_id=scope_id,
                limit=spec.limit,
                period=spec.period,
                starts_at=starts_at,
                restricted_models=list(spec.restricted_models),
                max_cost_per_request=spec.max_cost_per_request,
            )
            self.budgets.append((spec, budget))

    # --- usage ------------------------------------------------------------------------------------

    def _history_moment(self) -> datetime:
        """A moment in the last HISTORY_DAYS, busier on workdays, in office hours and lately."""
        span = HISTORY_DAYS * 86_400
        while True:
            ago = self.rng.randrange(1, span)
            moment = self.now - timedelta(seconds=ago)
            local = moment.astimezone(self.tz)
            chance = 100 - (ago * 40 // span)  # usage grows: 60 days ago is 60% as busy as today
            if local.weekday() >= 5:
                chance = chance * 30 // 100
            if not 8 <= local.hour < 19:
                chance = chance * 20 // 100
            if self.rng.randrange(100) < chance:
                return moment

    def _moment_between(self, start: datetime, end: datetime) -> datetime:
        seconds = int((end - start).total_seconds())
        return start + timedelta(seconds=self.rng.randrange(seconds)) if seconds > 0 else start

    def _history_report(self) -> UsageReport:
        slug = _pick(self.rng, {slug: profile.share for slug, profile in TEAMS.items()})
        return self._report(
            team=slug, username=_pick(self.rng, self.spenders[slug]), moment=self._history_moment()
        )

    def _report(
        self, *, team: str, username: str | None, moment: datetime, heavy: bool = False
    ) -> UsageReport:
        rng, profile = self.rng, TEAMS[team]
        task = _pick(rng, profile.heavy_tasks if heavy else profile.tasks)
        model = _pick(rng, profile.heavy_models if heavy else profile.models)
        (in_low, in_high), (out_low, out_high) = TASKS[task]
        input_tokens = rng.randint(in_low, in_high) * (3 if heavy else 1)
        output_tokens = rng.randint(out_low, out_high)
        cached = 0
        if task in CACHEABLE_TASKS and rng.randrange(100) < 40:
            cached = rng.randint(0, input_tokens // 2)
        price = PRICES[model]
        cost = quantize_money(
            (
                Decimal(input_tokens - cached) * price.input
                + Decimal(cached) * price.cached_input
                + Decimal(output_tokens) * price.output
            )
            / MILLION
        )
        self.request_counter += 1
        tags = ["prod" if rng.randrange(100) < 80 else "staging", task]
        if heavy:
            tags.append("burst")
        return UsageReport(
            request_id=f"demo-{self.request_counter:06d}",
            cost=cost,
            model=model,
            provider=price.provider,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cached_input_tokens=cached,
            task_type=task,
            project=profile.projects[rng.randrange(len(profile.projects))],
            agent="" if username else profile.agents[rng.randrange(len(profile.agents))],
            conversation_id=f"conv-{rng.randrange(16**8):08x}" if task == "chat" else "",
            tags=tags,
            metadata={"latency_ms": rng.randint(250, 12_000), "seeded": True},
            occurred_at=moment,
            team_id=self.teams[team].pk,
            user_id=self.users[username].pk if username else None,
        )

    def _record(self, reports: list[UsageReport]) -> None:
        # Batches of at most 1,000, as the API takes them: each one is a transaction of its own.
        for start in range(0, len(reports), BATCH_SIZE):
            usage_record_many(principal=self.finance, reports=reports[start : start + BATCH_SIZE])

    def _reserve(self) -> None:
        for index, (username, model, amount) in enumerate(PENDING_RESERVATIONS, start=1):
            reservation_authorize(
                principal=principal_for_user(self.users[username]),
                request_id=f"demo-pending-{index}",
                amount=amount,
                model=model,
                ttl_seconds=RESERVATION_TTL_SECONDS,
                metadata={"seeded": True},
            )
        reservation_authorize(
            principal=principal_for_api_key(self.api_keys["platform"]),
            request_id="demo-pending-service",
            amount=Decimal("0.25"),
            model="gpt-4o-mini",
            ttl_seconds=RESERVATION_TTL_SECONDS,
            metadata={"seeded": True},
        )

    def _top_up(self, spec: BudgetSpec, budget: Budget) -> int:
        """Add current-period spend until the budget's commitment reaches its target share."""
        if spec.target_percent is None:
            return 0
        period = period_get_or_open(budget=budget, moment=self.now)
        goal = quantize_money(period.limit * spec.target_percent / 100)
        missing = goal - period.committed
        if spec.scope in self.users:
            team = next(p.team for p in PEOPLE if p.username == spec.scope)
            spenders = {spec.scope: 1}
        else:
            # People with budgets of their own are already where they should be: leave them out.
            team = spec.scope
            budgeted = {s.scope for s in BUDGETS}
            spenders = {who: weight for who, weight in self.spenders[team].items() if who not in budgeted}
        start = period.starts_at
        today = datetime.combine(self.now.astimezone(self.tz).date(), time.min, tzinfo=self.tz)
        # Monthly spend lands before today where it can, so it leaves today's daily budget alone.
        end = today if period.ends_at - period.starts_at > timedelta(days=1) and today > start else self.now
        reports = []
        while missing > ZERO:
            moment = self._moment_between(start, end)
            report = self._report(team=team, username=_pick(self.rng, spenders), moment=moment, heavy=True)
            if report.cost > missing:
                # Close in on the goal with an everyday request rather than overshoot with a burst one.
                report = self._report(team=team, username=_pick(self.rng, spenders), moment=moment)
            reports.append(report)
            missing -= report.cost
        self._record(reports)
        return len(reports)

    def _print_statuses(self) -> None:
        self.stdout.write("Budgets (current period):")
        for _, budget in self.budgets:
            report = budget_status(budget=Budget.objects.prefetch_related("thresholds").get(pk=budget.pk))
            committed = report.current_amount + report.reserved
            self.stdout.write(
                f"  {budget.name:<18} {committed:>10.2f} of {report.limit:>7.2f} {budget.currency}"
                f"  {report.percent_committed:>6}%  {report.status}"
            )
