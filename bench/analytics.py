"""Analytics section: cost-analysis selectors over a large ledger on PostgreSQL.

Generates `--analytics-records` usage records (default 1,000,000) for one organization with 8 teams,
12 models over 4 providers and 90 days, with one `INSERT ... SELECT generate_series` (seconds, not
the ORM row by row); a run finding the organization already filled reuses it. Then times, through
the selectors the API calls, p50/p99 of: the org-wide summary of the last 30 days, the same for one
team (a team lead's view), the breakdown by model, and the daily trend of 90 days. The daily rollup
(analytics/rollup.py) is built once after generation (timed); every query is timed with it (whole
days from the rollup, edges and today from the ledger) and ledger-only (`rollup=False`, the figures
before the rollup existed), and both answers are checked equal.

Django is imported inside the functions: the driver imports this module before django.setup().
"""

import time

from bench.stats import format_table, latency_summary

MODELS = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("o3-mini", "openai"),
    ("gpt-4.1", "openai"),
    ("claude-sonnet-4", "anthropic"),
    ("claude-haiku-3.5", "anthropic"),
    ("claude-opus-4", "anthropic"),
    ("gemini-2.5-pro", "google"),
    ("gemini-2.5-flash", "google"),
    ("gemini-2.0-flash", "google"),
    ("mistral-large", "mistral"),
    ("mistral-small", "mistral"),
]
TASKS = ["chat", "code", "summarization", "extraction", "translation", "reasoning"]
TEAMS = 8
DAYS = 90


def add_arguments(parser) -> None:
    group = parser.add_argument_group("analytics section")
    group.add_argument(
        "--analytics-records", type=int, default=1_000_000, help="usage records to generate (default 1M)"
    )
    group.add_argument("--analytics-repeats", type=int, default=30, help="timed calls per query (default 30)")


def _fill(records: int):
    from django.db import connection, transaction
    from django.utils import timezone

    from budgets.models import Organization, Team, UsageRecord

    slug = f"bench-analytics-{records}"
    organization, _created = Organization.objects.get_or_create(slug=slug, defaults={"name": slug})
    teams = list(Team.objects.filter(organization=organization).order_by("pk"))
    if not teams:
        teams = [
            Team.objects.create(organization=organization, name=f"team {i}", slug=f"team-{i}")
            for i in range(TEAMS)
        ]
    existing = UsageRecord.objects.filter(organization=organization).count()
    if existing >= records:
        return organization, teams, {"generated": 0, "reused": existing, "seconds": 0.0}
    started = time.monotonic()
    now = timezone.now()
    models_sql = "ARRAY[" + ",".join(f"'{m}'" for m, _ in MODELS) + "]"
    providers_sql = "ARRAY[" + ",".join(f"'{p}'" for _, p in MODELS) + "]"
    tasks_sql = "ARRAY[" + ",".join(f"'{t}'" for t in TASKS) + "]"
    teams_sql = "ARRAY[" + ",".join(str(t.pk) for t in teams) + "]"
    statement = f"""
        INSERT INTO budgets_usagerecord (
            organization_id, team_id, request_id, source, model, provider, input_tokens, output_tokens,
            cached_input_tokens, cost, currency, task_type, project, agent, conversation_id, tags,
            metadata, outcome, occurred_at, recorded_at)
        SELECT %s, ({teams_sql})[1 + g %% {len(teams)}], 'bench-' || g, 'batch',
            ({models_sql})[1 + (g / 7) %% {len(MODELS)}], ({providers_sql})[1 + (g / 7) %% {len(MODELS)}],
            200 + g %% 3000, 50 + g %% 700, 0, ((g %% 997) + 1) * 0.000013::numeric, 'USD',
            ({tasks_sql})[1 + g %% {len(TASKS)}], 'project-' || g %% 20, '', 'conv-' || g %% 50000,
            CASE WHEN g %% 3 = 0 THEN '["batch"]'::jsonb ELSE '[]'::jsonb END, '{{}}'::jsonb,
            CASE WHEN g %% 10 = 0 THEN 'failure' WHEN g %% 4 = 0 THEN 'success' ELSE '' END,
            %s - (g %% ({DAYS} * 86400)) * interval '1 second', %s
        FROM generate_series(%s, %s) AS g
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, [organization.pk, now, now, existing + 1, records])
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE budgets_usagerecord")
    seconds = round(time.monotonic() - started, 1)
    return organization, teams, {"generated": records - existing, "reused": existing, "seconds": seconds}


def _lead(organization, team):
    """A team lead of `team`, as the person a team-scoped summary is for."""
    from budgets.choices import Role
    from budgets.models import Membership, User

    user, _ = User.objects.get_or_create(username=f"lead-{organization.slug}", organization=organization)
    Membership.objects.get_or_create(
        user=user, team=team, defaults={"role": Role.TEAM_LEAD, "is_primary": True}
    )
    return user


def _time(call, repeats: int) -> dict:
    call()  # warm the cache and connection once, unmeasured
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return latency_summary(samples)


def run(args) -> dict:
    from datetime import timedelta

    from django.db import connections
    from django.utils import timezone

    from analytics.rollup import daily_spend_build
    from analytics.spend import SpendQuery, spend_breakdown, spend_summary, spend_trend
    from budgets.principals import Principal, principal_for_user

    organization, teams, generated = _fill(args.analytics_records)
    started = time.monotonic()
    today = timezone.now().astimezone(organization.tzinfo).date()
    built = daily_spend_build(
        organization=organization, first_day=today - timedelta(days=DAYS + 1), last_day=today
    )
    rollup_build = {"seconds": round(time.monotonic() - started, 2), "days": built.days, "rows": built.rows}
    finance = Principal(organization=organization, org_wide=True)
    lead = principal_for_user(_lead(organization, teams[0]))
    now = timezone.now()
    month = SpendQuery(since=now - timedelta(days=30), until=now)
    quarter = SpendQuery(since=now - timedelta(days=DAYS), until=now)
    team_month = SpendQuery(since=month.since, until=now, scope_type="team", scope_id=teams[0].pk)
    repeats = args.analytics_repeats
    queries = {
        "summary_30d": lambda r: spend_summary(principal=finance, query=month, rollup=r),
        "summary_90d": lambda r: spend_summary(principal=finance, query=quarter, rollup=r),
        "summary_team_30d": lambda r: spend_summary(principal=lead, query=team_month, rollup=r),
        "by_model_30d": lambda r: spend_breakdown(principal=finance, query=month, group_by="model", rollup=r),
        "trend_daily_90d": lambda r: spend_trend(principal=finance, query=quarter, interval="day", rollup=r),
        "trend_weekly_90d": lambda r: spend_trend(
            principal=finance, query=quarter, interval="week", rollup=r
        ),
    }
    timings = {name: _time(lambda c=call: c(True), repeats) for name, call in queries.items()}
    ledger_only = {name: _time(lambda c=call: c(False), repeats) for name, call in queries.items()}
    equal = all(call(True) == call(False) for call in queries.values())
    check = spend_summary(
        principal=finance, query=SpendQuery(since=now - timedelta(days=DAYS + 1), until=now)
    )
    connections.close_all()
    return {
        "description": "cost-analysis selectors (one aggregate query each) over one organization's ledger",
        "config": {"records": args.analytics_records, "teams": TEAMS, "days": DAYS, "repeats": repeats},
        "generation": generated,
        "rollup_build": rollup_build,
        "records_in_range": check["requests"],
        "queries_ms": timings,
        "ledger_only_queries_ms": ledger_only,
        "rollup_equals_ledger": equal,
        "ok": check["requests"] == args.analytics_records and equal,
    }


def render(result: dict) -> str:
    generation = result["generation"]
    rows = [
        (name, t["samples"], t["p50"], t["p90"], t["p99"], t["max"])
        for name, t in result["queries_ms"].items()
    ] + [
        (f"{name} (ledger only)", t["samples"], t["p50"], t["p90"], t["p99"], t["max"])
        for name, t in result["ledger_only_queries_ms"].items()
    ]
    return (
        f"analytics: {result['config']['records']:,} usage records "
        f"(generated {generation['generated']:,} in {generation['seconds']} s, "
        f"reused {generation['reused']:,}; rollup built in {result['rollup_build']['seconds']} s, "
        f"{result['rollup_build']['rows']:,} rows)\n"
        + format_table(["query", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"], rows)
    )
