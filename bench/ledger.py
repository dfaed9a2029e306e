"""Ledger section: authorize + settle throughput and latency through the service functions.

Every client is its own OS process with its own PostgreSQL connection, calling
`reservation_authorize` then `reservation_settle` in a loop, like gateway workers do. Two scenarios:

- shared chain: every client spends from one team, so every pair locks the same org and team
  period rows (the contended case);
- separate teams: each client has its own team; only the org period row is shared.

Each run gets a fresh organization (budgets high enough that nothing is refused, one team-bound
API key per client) and is checked afterwards: every period's `spent` equals the sum of its
UsageCharge rows and what the clients settled, `reserved` is 0, nothing is left pending.

Django is imported inside the functions: the driver imports this module before django.setup().
"""

import re
import time
import traceback
from dataclasses import dataclass
from decimal import Decimal

from bench.clients import run_clients, sleep_until
from bench.stats import format_table, latency_summary

SCENARIOS = {
    "shared_chain": "shared chain (1 team)",
    "separate_teams": "separate teams",
}
# What each request holds (its maximum cost) and, in turn, what it really cost (always below the hold).
HOLD = Decimal("0.010000000")
ACTUAL_COSTS = [
    Decimal("0.004000000"),
    Decimal("0.006250000"),
    Decimal("0.009999999"),
    Decimal("0.000000001"),
]
LIMIT = Decimal("10000000000")  # far above anything a run can spend: no request is ever refused
MODEL = "bench-model"
MAX_ERROR_SAMPLES = 3
LOCK_SAMPLES = 50


def add_arguments(parser) -> None:
    group = parser.add_argument_group("ledger section")
    group.add_argument(
        "--clients", default="1,4,16", help="concurrent client processes per run (default 1,4,16)"
    )
    group.add_argument("--duration", type=float, default=5.0, help="measured seconds per run (default 5)")
    group.add_argument(
        "--warmup", type=float, default=1.0, help="unmeasured seconds before each run (default 1)"
    )


@dataclass(frozen=True)
class World:
    organization_id: int
    api_key_ids: list[int]
    team_count: int


def run(args) -> dict:
    from django.db import connections

    clients = [int(value) for value in str(args.clients).split(",") if value.strip()]
    started = time.monotonic()
    result = {
        "description": "reservation_authorize + reservation_settle per request, one OS process and DB "
        "connection per client, API keys bound to a team (chain: team + org budget periods)",
        "config": {
            "clients": clients,
            "warmup_seconds": args.warmup,
            "duration_seconds": args.duration,
            "hold": str(HOLD),
            "actual_costs": [str(cost) for cost in ACTUAL_COSTS],
            "start_method": "fork",
        },
        "db_roundtrip_ms": _roundtrip(),
        "queries": _profile_queries(),
        "runs": [],
    }
    for scenario in SCENARIOS:
        for count in clients:
            outcome = _run_one(scenario, count, warmup=args.warmup, duration=args.duration)
            result["runs"].append(outcome)
            print(
                f"  {scenario:<15} {count:>3} clients: {outcome['pairs_per_second']:>8.1f} pairs/s, "
                f"pair p50 {outcome['pair_ms']['p50']} ms, p99 {outcome['pair_ms']['p99']} ms, "
                f"errors {outcome['errors']}, verified {outcome['verification']['ok']}",
                flush=True,
            )
    connections.close_all()
    result["ok"] = all(
        run["errors"] == 0 and run["refused"] == 0 and run["verification"]["ok"] for run in result["runs"]
    )
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    return result


# --- Set-up ---------------------------------------------------------------------------------------


def _setup_world(scenario: str, clients: int) -> World:
    from datetime import timedelta

    from django.utils import timezone

    from budgets.choices import ScopeType
    from budgets.models import Budget, Organization, Team
    from budgets.principals import Principal
    from budgets.services.budgets import budget_create
    from budgets.services.keys import api_key_create
    from budgets.services.periods import period_get_or_open

    tag = f"{scenario}-{clients}-{time.time_ns()}"
    organization = Organization.objects.create(name=f"Bench {tag}", slug=f"bench-{tag}"[:100])
    admin = Principal(organization=organization, org_wide=True)  # what a finance/admin member resolves to
    starts_at = timezone.now() - timedelta(hours=1)
    budget_create(
        principal=admin,
        name="org",
        scope_type=ScopeType.ORGANIZATION,
        scope_id=organization.pk,
        limit=LIMIT,
        starts_at=starts_at,
    )
    team_count = 1 if scenario == "shared_chain" else clients
    teams = []
    for index in range(team_count):
        team = Team.objects.create(organization=organization, name=f"team {index}", slug=f"team-{index}")
        budget_create(
            principal=admin,
            name=f"team {index}",
            scope_type=ScopeType.TEAM,
            scope_id=team.pk,
            limit=LIMIT,
            starts_at=starts_at,
        )
        teams.append(team)
    keys = [
        api_key_create(organization=organization, name=f"client {index}", team=teams[index % team_count])[
            0
        ].pk
        for index in range(clients)
    ]
    # Open the periods now, so the run measures steady state, not the first-use race to create them.
    for budget in Budget.objects.filter(organization=organization).select_related("organization"):
        period_get_or_open(budget=budget, moment=timezone.now())
    return World(organization_id=organization.pk, api_key_ids=keys, team_count=team_count)


# --- One run --------------------------------------------------------------------------------------


def _run_one(scenario: str, clients: int, *, warmup: float, duration: float) -> dict:
    from django.db import connections

    world = _setup_world(scenario, clients)
    connections.close_all()  # children must open their own connections, never share the parent's socket

    window = run_clients(
        _client,
        [(index, world.api_key_ids[index]) for index in range(clients)],
        warmup=warmup,
        duration=duration,
        measure=_cpu_times,
    )
    reports, lost = window.reports, window.lost  # a client lost is counted as an error below
    cpu_before, cpu_after = window.before, window.after

    pair, authorize, settle = [], [], []
    for report in reports:
        pair += report["pair"]
        authorize += report["authorize"]
        settle += report["settle"]
    measured = len(pair)
    completed = sum(report["completed"] for report in reports)
    spent = sum((Decimal(report["spent"]) for report in reports), Decimal(0))
    errors = sum(report["errors"] for report in reports) + lost
    return {
        "scenario": scenario,
        "clients": clients,
        "teams": world.team_count,
        "pairs": measured,
        "pairs_per_second": round(measured / duration, 1),
        "pair_ms": latency_summary(pair),
        "authorize_ms": latency_summary(authorize),
        "settle_ms": latency_summary(settle),
        "per_client_pairs": {
            "min": min((len(report["pair"]) for report in reports), default=0),
            "max": max((len(report["pair"]) for report in reports), default=0),
        },
        "client_cpu_ms_per_pair": (
            round(sum(report["cpu_seconds"] for report in reports) * 1000 / measured, 3) if measured else None
        ),
        "machine_cpu_busy": _busy(cpu_before, cpu_after),
        "errors": errors,
        "refused": sum(report["refused"] for report in reports),
        "error_samples": [sample for report in reports for sample in report["error_samples"]][
            :MAX_ERROR_SAMPLES
        ],
        "exit_codes": sorted(set(window.exit_codes), key=str),
        "verification": _verify(world, completed=completed, spent=spent),
    }


def _client(index, api_key_id, ready, go, start_at, warmup, duration, queue) -> None:
    """One client process: load its key once, then authorize + settle until the run ends."""
    from django.db import connections

    from budgets.models import ApiKey
    from budgets.principals import principal_for_api_key
    from budgets.services.ledger import UsageReport, reservation_authorize, reservation_settle
    from costswitch.errors import BudgetExceeded

    report = {
        "pair": [],
        "authorize": [],
        "settle": [],
        "completed": 0,
        "spent": "0",
        "errors": 0,
        "refused": 0,
        "error_samples": [],
        "cpu_seconds": 0.0,
    }
    spent = Decimal(0)
    principal = None
    try:
        api_key = ApiKey.objects.select_related("organization", "team", "user").get(pk=api_key_id)
        principal = principal_for_api_key(api_key)
    except Exception:
        report["errors"] += 1
        report["error_samples"].append(f"client {index} set-up: {traceback.format_exc()}")
    ready.wait(timeout=120)
    go.wait(timeout=120)
    sleep_until(start_at.value)
    measure_from = start_at.value + warmup
    stop_at = measure_from + duration
    cpu_start = None
    number = 0
    while principal is not None:
        began = time.monotonic()
        if began >= stop_at:
            break
        if cpu_start is None and began >= measure_from:
            cpu_start = time.process_time()
        number += 1
        request_id = f"c{index}-{number}"
        cost = ACTUAL_COSTS[number % len(ACTUAL_COSTS)]
        try:
            reservation = reservation_authorize(
                principal=principal, request_id=request_id, amount=HOLD, model=MODEL
            ).reservation
            authorized = time.monotonic()
            reservation_settle(
                principal=principal,
                reservation_id=reservation.pk,
                report=UsageReport(
                    request_id=request_id, cost=cost, model=MODEL, input_tokens=1000, output_tokens=200
                ),
            )
            settled = time.monotonic()
        except BudgetExceeded:
            report["refused"] += 1
            continue
        except Exception:
            report["errors"] += 1
            if len(report["error_samples"]) < MAX_ERROR_SAMPLES:
                report["error_samples"].append(
                    f"client {index} request {request_id}: {traceback.format_exc()}"
                )
            time.sleep(0.01)
            continue
        report["completed"] += 1
        spent += cost
        if began >= measure_from:
            report["pair"].append(settled - began)
            report["authorize"].append(authorized - began)
            report["settle"].append(settled - authorized)
    if cpu_start is not None:
        report["cpu_seconds"] = time.process_time() - cpu_start
    report["spent"] = str(spent)
    connections.close_all()
    queue.put(report)


# --- Checks ---------------------------------------------------------------------------------------


def _verify(world: World, *, completed: int, spent: Decimal) -> dict:
    """The ledger invariants after the run, on this run's organization only."""
    from django.db.models import Count, DecimalField, Sum, Value
    from django.db.models.functions import Coalesce

    from budgets.choices import ReservationState, ScopeType
    from budgets.models import BudgetPeriod, Reservation, ReservationHold, UsageCharge, UsageRecord

    org = world.organization_id
    problems = []
    periods = list(
        BudgetPeriod.objects.filter(budget__organization_id=org)
        .select_related("budget")
        .annotate(charged=Coalesce(Sum("charges__amount"), Value(0), output_field=DecimalField()))
    )
    team_spent = Decimal(0)
    for period in periods:
        name = f"{period.budget.scope_type} period {period.pk}"
        if period.spent != period.charged:
            problems.append(f"{name}: spent {period.spent} != charges {period.charged}")
        if period.reserved != 0:
            problems.append(f"{name}: reserved {period.reserved} != 0")
        if period.spent > period.limit:
            problems.append(f"{name}: spent {period.spent} over limit {period.limit}")
        if period.budget.scope_type == ScopeType.ORGANIZATION and period.spent != spent:
            problems.append(f"{name}: spent {period.spent} != {spent} settled by the clients")
        if period.budget.scope_type == ScopeType.TEAM:
            team_spent += period.spent
    if team_spent != spent:
        problems.append(f"team periods spent {team_spent} != {spent} settled by the clients")
    records = UsageRecord.objects.filter(organization_id=org).count()
    if records != completed:
        problems.append(f"{records} usage records != {completed} pairs completed")
    states = dict(
        Reservation.objects.filter(organization_id=org)
        .values_list("state")
        .annotate(n=Count("pk"))
        .order_by()
    )
    if set(states) - {ReservationState.SETTLED} or states.get(ReservationState.SETTLED, 0) != completed:
        problems.append(f"reservation states {states}, expected {completed} settled and nothing else")
    expected_rows = 2 * completed  # one hold and one charge on each of the team and org periods
    holds = ReservationHold.objects.filter(reservation__organization_id=org).count()
    charges = UsageCharge.objects.filter(usage__organization_id=org).count()
    if holds != expected_rows or charges != expected_rows:
        problems.append(f"{holds} holds and {charges} charges, expected {expected_rows} of each")
    return {
        "ok": not problems,
        "periods_checked": len(periods),
        "usage_records": records,
        "problems": problems,
    }


# --- Profiling ------------------------------------------------------------------------------------


def _profile_queries() -> dict:
    """SQL statements one authorize + settle issues (single client, warm), counted once, and how
    long each holds the budget period row locks (the rows every request of an organization shares)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from budgets.models import ApiKey
    from budgets.principals import principal_for_api_key
    from budgets.services.ledger import UsageReport, reservation_authorize, reservation_settle

    world = _setup_world("profile", 1)
    principal = principal_for_api_key(
        ApiKey.objects.select_related("organization", "team", "user").get(pk=world.api_key_ids[0])
    )

    def authorize(request_id: str):
        return reservation_authorize(principal=principal, request_id=request_id, amount=HOLD, model=MODEL)

    def settle(request_id: str, reservation_id: int):
        report = UsageReport(request_id=request_id, cost=ACTUAL_COSTS[0], model=MODEL)
        return reservation_settle(principal=principal, reservation_id=reservation_id, report=report)

    # 1. Statements, once, warm.
    settle("profile-warm", authorize("profile-warm").reservation.pk)
    with CaptureQueriesContext(connection) as authorize_queries:
        reservation = authorize("profile-count").reservation
    with CaptureQueriesContext(connection) as settle_queries:
        settle("profile-count", reservation.pk)
    authorize_sql = [query["sql"] for query in authorize_queries.captured_queries]
    settle_sql = [query["sql"] for query in settle_queries.captured_queries]

    # 2. Period row lock hold: from the SELECT ... FOR UPDATE on budget periods to just after COMMIT.
    held: dict[str, list[float]] = {"authorize": [], "settle": []}
    phase = {"name": ""}

    def timer(execute, sql, params, many, context):
        if phase["name"] and _locks_periods(sql):
            locked, name = time.monotonic(), phase["name"]
            phase["name"] = ""  # settle locks the reservation row first: only the period lock counts
            connection.on_commit(lambda: held[name].append(time.monotonic() - locked))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(timer):
        for number in range(LOCK_SAMPLES):
            request_id = f"profile-lock-{number}"
            phase["name"] = "authorize"
            reservation = authorize(request_id).reservation
            phase["name"] = "settle"
            settle(request_id, reservation.pk)
    authorize_held = latency_summary(held["authorize"])["p50"]
    settle_held = latency_summary(held["settle"])["p50"]

    return {
        "authorize": len(authorize_sql),
        "settle": len(settle_sql),
        "pair": len(authorize_sql) + len(settle_sql),
        "pair_excluding_transaction_control": sum(
            not _is_transaction(sql) for sql in authorize_sql + settle_sql
        ),
        "statements_while_periods_locked": {
            "authorize": _after_period_lock(authorize_sql),
            "settle": _after_period_lock(settle_sql),
        },
        "period_lock_held_ms_p50": {
            "authorize": authorize_held,
            "settle": settle_held,
            "pair": round(authorize_held + settle_held, 3),
            "samples": LOCK_SAMPLES,
        },
        # Every request of an organization locks its org period row twice, so whatever the number of
        # cores, one organization cannot exceed this. Measured with one client: CPU contention and
        # synchronous_commit=on (a WAL flush inside the lock) only lengthen the hold.
        "org_row_ceiling_pairs_per_second": round(1000 / (authorize_held + settle_held), 1),
        "statements": {
            "authorize": [_shorten(sql) for sql in authorize_sql],
            "settle": [_shorten(sql) for sql in settle_sql],
        },
    }


def _is_transaction(sql: str) -> bool:
    return sql.split(" ", 1)[0].upper() in {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"}


def _locks_periods(sql: str) -> bool:
    """A row-locking read of budget periods (FOR UPDATE or FOR NO KEY UPDATE, with or without OF)."""
    return (
        sql.lstrip().startswith("SELECT")
        and "budgets_budgetperiod" in sql
        and re.search(r"\sFOR (NO KEY )?UPDATE", sql)
    )


def _after_period_lock(statements: list[str]) -> int:
    """Statements from the budget period SELECT ... FOR UPDATE up to and including COMMIT."""
    for index, sql in enumerate(statements):
        if _locks_periods(sql):
            return len(statements) - index
    return 0


def _shorten(sql: str) -> str:
    """One line without the column lists, so the FROM, WHERE and FOR UPDATE parts stay readable."""
    sql = " ".join(sql.split())
    sql = re.sub(r"^SELECT (DISTINCT )?.+? FROM ", r"SELECT \1... FROM ", sql)
    sql = re.sub(r"^(INSERT INTO \S+) \(.*?\)", r"\1 (...)", sql)
    return sql if len(sql) <= 220 else sql[:217] + "..."


def _roundtrip() -> dict:
    """Latency of `SELECT 1` on one connection: the floor under every statement of a pair."""
    from django.db import connection

    samples = []
    with connection.cursor() as cursor:
        for _ in range(200):
            began = time.monotonic()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            samples.append(time.monotonic() - began)
    summary = latency_summary(samples)
    return {"p50": summary["p50"], "p99": summary["p99"]}


# --- Machine load ---------------------------------------------------------------------------------


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine from /proc/stat, or None off Linux."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(value) for value in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle, sum(fields[:8])


def _busy(before, after) -> float | None:
    if before is None or after is None or after[1] == before[1]:
        return None
    return round((after[0] - before[0]) / (after[1] - before[1]), 2)


# --- Output ---------------------------------------------------------------------------------------


def render(result: dict) -> str:
    config = result["config"]
    queries = result["queries"]
    locks = queries["period_lock_held_ms_p50"]
    lines = [
        f"ledger: authorize + settle through the services, {config['duration_seconds']:g} s per run after "
        f"{config['warmup_seconds']:g} s warm-up; one process and connection per client",
        f"SQL per pair: {queries['pair']} statements (authorize {queries['authorize']}, settle "
        f"{queries['settle']}, {queries['pair_excluding_transaction_control']} without BEGIN/COMMIT); "
        f"SELECT 1 round trip p50 {result['db_roundtrip_ms']['p50']} ms",
        f"period rows locked per pair (1 client, p50): {locks['pair']} ms (authorize {locks['authorize']}, "
        f"settle {locks['settle']}) -> one organization tops out near "
        f"{queries['org_row_ceiling_pairs_per_second']:g} pairs/s on this machine",
        "",
    ]
    headers = [
        "scenario",
        "clients",
        "pairs/s",
        "pair p50",
        "pair p99",
        "auth p50",
        "auth p99",
        "cpu ms/pair",
        "cpu busy",
        "errors",
        "verified",
    ]
    rows = [
        [
            SCENARIOS.get(run["scenario"], run["scenario"]),
            run["clients"],
            run["pairs_per_second"],
            run["pair_ms"]["p50"],
            run["pair_ms"]["p99"],
            run["authorize_ms"]["p50"],
            run["authorize_ms"]["p99"],
            run["client_cpu_ms_per_pair"],
            f"{run['machine_cpu_busy']:.0%}" if run["machine_cpu_busy"] is not None else None,
            run["errors"] + run["refused"],
            "yes" if run["verification"]["ok"] else "NO",
        ]
        for run in result["runs"]
    ]
    lines.append(format_table(headers, rows))
    lines.append("(latencies in ms; cpu ms/pair = client-process CPU only, PostgreSQL's is not included)")
    for run in result["runs"]:
        for problem in run["verification"]["problems"]:
            lines.append(f"  ! {run['scenario']} x{run['clients']}: {problem}")
        for sample in run["error_samples"]:
            lines.append(f"  ! {run['scenario']} x{run['clients']} error: {sample.strip().splitlines()[-1]}")
    return "\n".join(lines)
