"""Selection section: how long choosing a model takes, in-process and over HTTP.

In-process, with 10, 50 and 200 registered models (a spread of the shipped catalog over tokenizer
families, or the whole catalog plus synthetic variants at other prices and qualities), two timings
after warm-up:

- decision core: `analyze_request`, pricing every model (`request_cost`) and `rank`, on a prebuilt
  registry snapshot with the token counts already known. The issue's target: p99 < 1 ms at 50 models;
- admit: the whole `admit(reserve=False, record=False)`, i.e. what the select view runs minus the
  ledger hold and the decision row: token counting, budget reads, rules, overrides, history.

Each registry size is built inside a transaction that is rolled back afterwards, so the bench
database keeps the shipped catalog; `registry_changed()` makes the snapshot follow.

Over HTTP, `POST /api/v1/models/select` against the production profile: gunicorn with
deploy/gunicorn.conf.py (its default threaded workers, each thread with a persistent PostgreSQL
connection), DEBUG off, Redis cache, Prometheus
multiprocess metrics, logs at WARNING so no line is written per request. Clients are forked processes
posting with http.client in a closed loop (the next request when the answer arrives), 1, 16 then 64
of them, each request with a unique request id, so each one reserves on the budget chain of one team
(far from its limit) and records its decision. Target: p99 < 10 ms with 16 clients. Every run also
reports its errors (non-2xx answers and transport errors, by status) and the CPU each request cost
the server, the clients and PostgreSQL + Redis, from which follows the queueing bound: with C
closed-loop clients on N cores at S CPU ms per request, the mean latency is at least C x S / N.

Django is imported inside the functions: the driver imports this module before django.setup().
"""

import contextlib
import cProfile
import http.client
import json
import os
import pstats
import runpy
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

from bench.clients import run_clients, sleep_until
from bench.stats import format_table, latency_summary, percentile

ROOT = Path(__file__).resolve().parent.parent
SELECT_PATH = "/api/v1/models/select"
GUNICORN_CONFIG = ROOT / "deploy" / "gunicorn.conf.py"
CLIENT_TIMEOUT = 30  # seconds, as gunicorn's default worker timeout
SERVER_START_TIMEOUT = 120  # seconds: workers import the app after forking (preload_app off)
SIZES = (10, 50, 200)
CORE_TARGET_MODELS, CORE_TARGET_MS = 50, 1.0
HTTP_TARGET_CLIENTS, HTTP_TARGET_MS = 16, 10.0
MAX_TOKENS = 500
LIMIT = Decimal("10000000000")  # far above anything a run can hold: no request is ever refused
WARMUP_CALLS = 50
PROFILE_TOP = 15
# Synthetic variants cycle through these price factors and quality shifts (per task type).
PRICE_FACTORS = (Decimal("0.5"), Decimal("0.8"), Decimal("1.25"), Decimal("1.6"), Decimal("2.5"))
QUALITY_SHIFTS = (-8, 4, -3, 6, -5, 2)
SYSTEM = "You are a careful assistant for the platform engineering team. Answer precisely."
# Everyday requests of different task types, 100-150 tokens each (cf. analysis timings by length).
PROMPTS = (
    "You are reviewing last month's LLM invoices for the platform team. For each line, say whether the "
    "model was a sensible choice for the task, suggest a cheaper model where quality would hold, and "
    "estimate the saving. Lines: support chat 1.2M tokens on a flagship model; nightly summaries 300k "
    "tokens; code review bot 800k tokens; a translation batch of 2M tokens.",
    "Refactor this Python function so it streams rows from PostgreSQL instead of loading them all, "
    "and write unit tests for it with pytest:\n```python\ndef export(cursor, path):\n"
    "    cursor.execute('SELECT id, name, total FROM invoices ORDER BY id')\n"
    "    rows = cursor.fetchall()\n    with open(path, 'w') as handle:\n        for row in rows:\n"
    "            handle.write(','.join(str(value) for value in row) + '\\n')\n```",
    "Summarize the following incident report in three bullet points for executives. At 09:12 UTC the "
    "payment gateway began timing out for 14% of requests after a configuration change raised the "
    "connection pool size beyond the database's limit. The on-call engineer rolled the change back at "
    "09:41; error rates returned to normal by 09:47. About 2,300 checkouts failed and were retried "
    "automatically; 180 customers were charged twice and have been refunded. Follow-ups: validate pool "
    "sizes in CI, alert on connection saturation, and document the rollback procedure.",
    "Extract the vendor, invoice number, issue date, due date and total amount from this email and "
    "return them as JSON. 'Hello, please find attached invoice INV-2024-0815 from Northwind Analytics "
    "GmbH, issued on 3 March 2025 and payable within 30 days. The total due is EUR 12,480.00 including "
    "VAT. Kind regards, accounts receivable.'",
)


def add_arguments(parser) -> None:
    group = parser.add_argument_group("selection section")
    group.add_argument(
        "--selection-iterations",
        type=int,
        default=500,
        help="timed in-process calls per registry size and case (default 500)",
    )
    group.add_argument(
        "--selection-clients",
        default="1,16,64",
        help="concurrent HTTP client processes per run (default 1,16,64)",
    )
    group.add_argument(
        "--selection-duration", type=float, default=5.0, help="measured seconds per HTTP run (default 5)"
    )
    group.add_argument(
        "--selection-warmup",
        type=float,
        default=1.0,
        help="unmeasured seconds before each HTTP run (default 1)",
    )
    group.add_argument(
        "--selection-workers",
        type=int,
        help="gunicorn worker processes, as WEB_CONCURRENCY (default: deploy/gunicorn.conf.py's)",
    )
    group.add_argument(
        "--selection-profile",
        action="store_true",
        help=f"also profile the in-process admit at {CORE_TARGET_MODELS} models (cProfile, cumulative)",
    )


def run(args) -> dict:
    from django.db import connections

    from models_registry.models import ModelProfile

    clients = [int(value) for value in str(args.selection_clients).split(",") if value.strip()]
    _import_catalog()
    principal = _organization("in-process", keys=1)[0][0]
    in_process = [
        _in_process(
            principal,
            size,
            iterations=args.selection_iterations,
            profile=args.selection_profile and size == CORE_TARGET_MODELS,
        )
        for size in SIZES
    ]
    http = _http(
        clients=clients,
        warmup=args.selection_warmup,
        duration=args.selection_duration,
        workers=args.selection_workers,
    )
    http["models"] = ModelProfile.objects.count()
    connections.close_all()

    core = next(run["decision_core_ms"]["p99"] for run in in_process if run["models"] == CORE_TARGET_MODELS)
    loaded = next((run for run in http["runs"] if run["clients"] == HTTP_TARGET_CLIENTS), None)
    cores = _usable_cores()
    result = {
        "description": "model selection latency: in-process decision core and admit() at 10/50/200 "
        f"registered models; POST {SELECT_PATH} over HTTP on gunicorn (production config) with "
        f"{', '.join(map(str, clients))} concurrent clients: throughput, latency, errors",
        "config": {
            "iterations": args.selection_iterations,
            "sizes": list(SIZES),
            "max_tokens": MAX_TOKENS,
            "strategy": "default (settings.COSTSWITCH_DEFAULT_STRATEGY)",
            "http_clients": clients,
            "http_warmup_seconds": args.selection_warmup,
            "http_duration_seconds": args.selection_duration,
            "http_workers": http["workers"],
        },
        "targets": {
            "decision_core_p99_at_50_models": _target(core, CORE_TARGET_MS),
            "http_select_p99_at_16_clients": _target(
                loaded["latency_ms"]["p99"] if loaded else None, HTTP_TARGET_MS
            ),
        },
        "machine_notes": {
            "usable_cores": cores,
            "shared": f"HTTP clients, {http['workers']} gunicorn workers, PostgreSQL and Redis all run on "
            f"these {cores} cores: the client side competes with the server for CPU. Work of other "
            "processes on the machine shows as `other` CPU and slows every figure",
            "queueing_bound": _queueing_bound(loaded, cores),
            "load_average_at_end": [round(load, 2) for load in os.getloadavg()],
        },
        "in_process": in_process,
        "http": http,
    }
    # A missed target is a finding, not a failure; a request that did not answer 2xx is.
    result["ok"] = all(run["errors"] == 0 for run in http["runs"])
    return result


def _usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _queueing_bound(run: dict | None, cores: int) -> dict:
    """Whether the HTTP target is reachable here at all, from the CPU a request measurably costs."""
    needed = round(HTTP_TARGET_MS * cores / HTTP_TARGET_CLIENTS, 3)
    cpu = run["cpu_ms_per_request"]["request"] if run else None
    return {
        "rule": "C closed-loop clients on N cores, each request costing S CPU ms in all (server + "
        "client + PostgreSQL + Redis): throughput <= N / S, so by Little's law the mean latency is "
        ">= C x S / N, and p99 is above the mean. Each run's queueing_bound_ms is this bound",
        "clients": HTTP_TARGET_CLIENTS,
        "cores": cores,
        "measured_cpu_ms_per_request": cpu,
        "mean_latency_bound_ms": run["queueing_bound_ms"] if run else None,
        "target_p99_ms": HTTP_TARGET_MS,
        "cpu_ms_per_request_the_target_allows": needed,
        "target_reachable_on_this_machine": None if cpu is None else cpu < needed,
    }


def _target(measured: float | None, target: float) -> dict:
    return {
        "metric": "p99",
        "target_ms": target,
        "measured_ms": measured,
        "met": None if measured is None else measured < target,
    }


def _summary(seconds: list[float]) -> dict:
    """latency_summary with p95 added, in milliseconds."""
    summary = latency_summary(seconds)
    p95 = percentile(sorted(seconds), 0.95)
    summary["p95"] = None if p95 is None else round(p95 * 1000, 3)
    return {key: summary[key] for key in ("samples", "p50", "p90", "p95", "p99", "mean", "max")}


def _messages(number: int, tag: str = "") -> list[dict]:
    content = PROMPTS[number % len(PROMPTS)]
    if tag:
        content = f"{content}\n(ref {tag}-{number})"
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]


# --- Set-up ---------------------------------------------------------------------------------------


def _import_catalog() -> None:
    from models_registry.catalog import DEFAULT_CATALOG, load_catalog
    from models_registry.choices import PriceSource
    from models_registry.services import catalog_import

    catalog_import(catalog=load_catalog(DEFAULT_CATALOG), source=PriceSource.CATALOG, source_detail="bench")


def _organization(tag: str, *, keys: int) -> list[tuple]:
    """A fresh organization and team, both with budgets no run can exhaust, and `keys` API keys bound
    to the team: (principal, secret) for each. Periods are opened now, so runs see steady state."""
    from datetime import timedelta

    from django.utils import timezone

    from budgets.choices import ScopeType
    from budgets.models import Budget, Organization, Team
    from budgets.principals import Principal, principal_for_api_key
    from budgets.services.budgets import budget_create
    from budgets.services.keys import api_key_create
    from budgets.services.periods import period_get_or_open

    tag = f"selection-{tag}-{time.time_ns()}"
    organization = Organization.objects.create(name=f"Bench {tag}", slug=f"bench-{tag}"[:100])
    team = Team.objects.create(organization=organization, name="team", slug="team")
    admin = Principal(organization=organization, org_wide=True)
    for scope_type, scope_id in [(ScopeType.ORGANIZATION, organization.pk), (ScopeType.TEAM, team.pk)]:
        budget_create(
            principal=admin,
            name=scope_type,
            scope_type=scope_type,
            scope_id=scope_id,
            limit=LIMIT,
            starts_at=timezone.now() - timedelta(hours=1),
        )
    for budget in Budget.objects.filter(organization=organization).select_related("organization"):
        period_get_or_open(budget=budget, moment=timezone.now())
    created = [api_key_create(organization=organization, name=f"client {n}", team=team) for n in range(keys)]
    return [(principal_for_api_key(api_key), secret) for api_key, secret in created]


def _build_registry(size: int) -> None:
    """Make the registry hold exactly `size` models (call inside a transaction that is rolled back)."""
    from models_registry.models import ModelProfile

    catalog = list(ModelProfile.objects.select_related("provider").order_by("id"))
    if size <= len(catalog):
        ModelProfile.objects.exclude(pk__in=_spread(catalog, size)).delete()
    else:
        ModelProfile.objects.bulk_create(_variants(catalog, size - len(catalog)))


def _spread(models: list, size: int) -> list[str]:
    """`size` model ids taken in turn from each tokenizer family, usable models first (so every one
    is a real candidate), the default model among them."""
    from django.conf import settings

    from models_registry.models import ModelProfile

    usable = set(ModelProfile.objects.usable().values_list("pk", flat=True))
    chosen: list[str] = []
    for group in ([m for m in models if m.pk in usable], [m for m in models if m.pk not in usable]):
        by_tokenizer: dict[str, list[str]] = {}
        for model in sorted(group, key=lambda m: m.pk != settings.COSTSWITCH_DEFAULT_MODEL):
            by_tokenizer.setdefault(model.tokenizer, []).append(model.pk)
        while len(chosen) < size and any(by_tokenizer.values()):
            for ids in by_tokenizer.values():
                if ids and len(chosen) < size:
                    chosen.append(ids.pop(0))
    return chosen


def _variants(models: list, count: int) -> list:
    """Active copies of catalog models at other prices and quality scores."""
    from costswitch.money import quantize_money
    from models_registry.models import ModelProfile
    from models_registry.services import PROFILE_FIELDS

    variants = []
    for number in range(count):
        base = models[number % len(models)]
        factor = PRICE_FACTORS[number % len(PRICE_FACTORS)]
        shift = QUALITY_SHIFTS[number % len(QUALITY_SHIFTS)]
        cached = base.cached_input_price_per_million
        fields = {name: getattr(base, name) for name in PROFILE_FIELDS}
        fields.update(
            display_name=f"{base.display_name} (bench variant {number})",
            provider_model_name="",
            is_active=True,
            quality_scores={
                task: min(max(score + shift, 0), 100) for task, score in base.quality_scores.items()
            },
        )
        variants.append(
            ModelProfile(
                id=f"{base.pk}-bench-{number}",
                provider=base.provider,
                input_price_per_million=quantize_money(base.input_price_per_million * factor),
                output_price_per_million=quantize_money(base.output_price_per_million * factor),
                cached_input_price_per_million=None if cached is None else quantize_money(cached * factor),
                **fields,
            )
        )
    return variants


# --- In-process -----------------------------------------------------------------------------------


def _in_process(principal, size: int, *, iterations: int, profile: bool) -> dict:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from selection.snapshot import registry_changed, registry_snapshot

    try:
        with transaction.atomic():
            _build_registry(size)
            registry_changed()
            registry = registry_snapshot()
            if len(registry.models) != size:
                raise RuntimeError(f"registry holds {len(registry.models)} models, expected {size}")
            core, phases, choices = _time_core(registry, iterations)
            admit_samples = _time_admit(principal, iterations, tag=f"admit-{size}")
            with CaptureQueriesContext(connection) as queries:
                _admit(principal, 0, tag=f"queries-{size}")
            hot_spots = _profile_admit(principal, iterations, tag=f"profile-{size}") if profile else None
            if len(registry_snapshot().models) != size:
                raise RuntimeError("the registry snapshot changed during the run")
            transaction.set_rollback(True)
    finally:
        registry_changed()
    result = {
        "models": size,
        "usable_models": sum(model.usable for model in registry.models.values()),
        "tokenizers": len(registry.tokenizers),
        "decision_core_ms": _summary(core),
        "decision_core_phases_ms": {
            name: {"p50": summary["p50"], "p99": summary["p99"], "mean": summary["mean"]}
            for name, summary in phases.items()
        },
        "admit_ms": _summary(admit_samples),
        "queries_per_admit": len(queries.captured_queries),
        "queries": [query["sql"][:160] for query in queries.captured_queries],
        "chosen_by_task_type": choices,
    }
    if hot_spots is not None:
        result["admit_profile"] = hot_spots
    print(
        f"  {size:>3} models: core p99 {result['decision_core_ms']['p99']} ms, "
        f"admit p99 {result['admit_ms']['p99']} ms, {result['queries_per_admit']} queries",
        flush=True,
    )
    return result


def _time_core(registry, iterations: int) -> tuple[list[float], dict[str, dict], dict[str, str]]:
    """The pure decision on a prebuilt snapshot: analysis, a price for every model, the ranking."""
    from django.conf import settings

    from models_registry.pricing import request_cost
    from models_registry.tokens import count_message_tokens_per_tokenizer
    from selection.analysis import analyze_request
    from selection.engine import Candidate, Constraints, PriceLine, quality_requirement, rank

    models = list(registry.models.values())
    premium_line = PriceLine(*(Decimal(value) for value in settings.COSTSWITCH_PREMIUM_PRICE_LINE))
    tokenizers = registry.tokenizers | {"o200k_base"}
    requests = [
        (messages, count_message_tokens_per_tokenizer(messages, tokenizers=tokenizers))
        for messages in (_messages(number) for number in range(len(PROMPTS)))
    ]

    def decide(messages, counts) -> tuple[str, str | None, tuple[float, float, float]]:
        started = time.perf_counter()
        analysis = analyze_request(messages)
        analysed = time.perf_counter()
        candidates = []
        for model in models:
            input_tokens = counts[model.tokenizer]
            output_tokens = min(MAX_TOKENS, model.max_output_tokens)
            cost = request_cost(model, input_tokens=input_tokens, output_tokens=output_tokens).total
            candidates.append(Candidate(model, input_tokens, output_tokens, cost))
        priced = time.perf_counter()
        ranking = rank(
            candidates,
            task_type=analysis.task_type,
            requirement=quality_requirement(None, analysis.complexity),
            strategy=settings.COSTSWITCH_DEFAULT_STRATEGY,
            budget_factor=0.0,
            constraints=Constraints(
                required_capabilities=analysis.required_capabilities,
                premium_line=premium_line,
                remaining=LIMIT,
            ),
            request_tokens=counts["o200k_base"] + MAX_TOKENS,
            history={},
        )
        phases = (analysed - started, priced - analysed, time.perf_counter() - priced)
        return analysis.task_type, ranking.chosen.id if ranking.chosen else None, phases

    choices = {task: chosen for task, chosen, _ in (decide(*request) for request in requests)}
    for number in range(WARMUP_CALLS):
        decide(*requests[number % len(requests)])
    samples, phases = [], []
    for number in range(iterations):
        messages, counts = requests[number % len(requests)]
        started = time.perf_counter()
        _, _, parts = decide(messages, counts)
        samples.append(time.perf_counter() - started)
        phases.append(parts)
    by_phase = {
        name: _summary([parts[index] for parts in phases])
        for index, name in enumerate(("analysis", "pricing", "ranking"))
    }
    return samples, by_phase, choices


def _admit(principal, number: int, *, tag: str) -> None:
    """One admission, as the select view makes it but holding and recording nothing (it raises
    when no model fits, which would stop the run)."""
    from selection.admission import AdmissionRequest, admit
    from selection.estimates import ChatRequest

    chat = ChatRequest(messages=_messages(number, tag), model="auto", max_tokens=MAX_TOKENS)
    request = AdmissionRequest(chat=chat, request_id=f"bench-{tag}-{number}")
    admit(principal=principal, request=request, reserve=False, record=False)


def _time_admit(principal, iterations: int, *, tag: str) -> list[float]:
    for number in range(WARMUP_CALLS):
        _admit(principal, number, tag=f"{tag}-warm")
    samples = []
    for number in range(iterations):
        started = time.perf_counter()
        _admit(principal, number, tag=tag)
        samples.append(time.perf_counter() - started)
    return samples


def _profile_admit(principal, iterations: int, *, tag: str) -> dict:
    """Where admit() spends its (wall-clock) time, per admit: the project's functions by cumulative
    time, and every function, library or builtin, by time spent in its own body."""
    profiler = cProfile.Profile()
    profiler.enable()
    for number in range(iterations):
        _admit(principal, number, tag=tag)
    profiler.disable()
    rows = []
    for (path, line, name), (_, calls, own, cumulative, _) in pstats.Stats(profiler).stats.items():
        if path == __file__:
            continue
        rows.append(
            {
                "function": f"{_short_path(path)}:{line}({name})",
                "project": path.startswith(str(ROOT)) and "site-packages" not in path,
                "calls": round(calls / iterations, 1),
                "cumulative_ms": round(cumulative * 1000 / iterations, 3),
                "own_ms": round(own * 1000 / iterations, 3),
            }
        )
    by_cumulative = sorted((r for r in rows if r["project"]), key=lambda r: r["cumulative_ms"], reverse=True)
    by_own = sorted(rows, key=lambda r: r["own_ms"], reverse=True)
    return {
        "note": "cProfile, wall clock, per admit; profiling inflates Python-heavy code 2-3x",
        "project_by_cumulative": [_without_flag(r) for r in by_cumulative[:PROFILE_TOP]],
        "all_by_own_time": [_without_flag(r) for r in by_own[:PROFILE_TOP]],
    }


def _without_flag(row: dict) -> dict:
    return {key: value for key, value in row.items() if key != "project"}


def _short_path(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    return os.path.relpath(path, ROOT) if path.startswith(str(ROOT)) else path


# --- HTTP -----------------------------------------------------------------------------------------


def _http(*, clients: list[int], warmup: float, duration: float, workers: int | None) -> dict:
    from django.db import connections

    secrets = [secret for _, secret in _organization("http", keys=max(clients, default=1))]
    services = _service_pids()
    connections.close_all()  # the clients are forked: none may share this socket

    runs = []
    with (
        tempfile.TemporaryDirectory(prefix="costswitch-bench-prometheus-") as metrics_dir,
        tempfile.TemporaryFile() as log,
    ):
        with _gunicorn(workers, metrics_dir, log) as (address, server):
            _wait_until_serving(address, secrets[0], server, log)
            booted = len(_children(server.pid))
            for count in clients:
                outcome = _http_run(
                    address,
                    secrets[:count],
                    warmup=warmup,
                    duration=duration,
                    server=server.pid,
                    services=services,
                )
                runs.append(outcome)
                print(
                    f"  HTTP {count:>3} clients: {outcome['requests_per_second']:>7.1f} req/s, "
                    f"p50 {outcome['latency_ms']['p50']} ms, p99 {outcome['latency_ms']['p99']} ms, "
                    f"errors {outcome['errors']}",
                    flush=True,
                )
        server_log = _tail(log) if any(run["errors"] for run in runs) else ""
    config = runpy.run_path(str(GUNICORN_CONFIG))  # what this environment gives every other setting
    return {
        "server": f"gunicorn -c {GUNICORN_CONFIG.relative_to(ROOT)}: {booted} {config['worker_class']} "
        f"workers (preload_app {'on' if config['preload_app'] else 'off'}, recycled after "
        f"{config['max_requests']} +- {config['max_requests_jitter']} requests), each thread with one "
        "persistent PostgreSQL connection; DEBUG=0, LOG_LEVEL=WARNING",
        "client": "http.client in forked processes, closed loop, a new TCP connection per request",
        "workers": booted,
        "cpu_measured_for": sorted(["server", "clients", *services]),
        "runs": runs,
        "server_log_tail": server_log,
    }


@contextlib.contextmanager
def _gunicorn(workers: int | None, metrics_dir: str, log):
    """gunicorn on the production config in its own process group, and its (host, port); the whole
    group is stopped on exit. Settings, database and Redis are the bench's (bench/run.py)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = probe.getsockname()
    env = {
        **os.environ,
        "BIND": f"{address[0]}:{address[1]}",
        "DEBUG": "0",
        # The app logs each request at INFO: a line per request would cost the server CPU.
        "LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
    }
    env.pop("GUNICORN_ACCESS_LOG", None)
    if workers:
        env["WEB_CONCURRENCY"] = str(workers)
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONFIG)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield address, server
    finally:
        _stop(server)


def _wait_until_serving(address: tuple, secret: str, server: subprocess.Popen, log) -> None:
    """Until one worker answers, then until every worker has loaded the app (the server's CPU use
    settles), then a few rounds of as many concurrent requests as workers, so that each has done its
    first-request work (encodings, registry snapshot) before anything is measured."""
    headers = _headers(secret)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn did not answer within {SERVER_START_TIMEOUT} s:\n{_tail(log)}")
        try:
            _post(address, _encode(0, "ready"), headers)
            break
        except OSError:
            time.sleep(0.1)
    previous = _cpu_seconds({"server": server.pid})["server"]
    while True:
        time.sleep(0.5)
        current = _cpu_seconds({"server": server.pid})["server"]
        if current - previous < 0.05:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"gunicorn workers still starting after {SERVER_START_TIMEOUT} s")
        previous = current
    workers = len(_children(server.pid))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda n: _post(address, _encode(n, "warm"), headers), range(4 * workers)))


def _stop(server: subprocess.Popen) -> None:
    """TERM the server's process group, then KILL whatever is left of it."""
    for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=grace)


def _tail(log, size: int = 4000) -> str:
    log.seek(0, os.SEEK_END)
    log.seek(max(log.tell() - size, 0))
    return log.read().decode("utf-8", "replace")


def _encode(number: int, tag: str) -> bytes:
    body = {
        "request": {"messages": _messages(number, tag), "model": "auto", "maxTokens": MAX_TOKENS},
        "requestId": f"bench-{tag}-{number}",
    }
    return json.dumps(body).encode()


def _headers(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}


def _post(address: tuple, body: bytes, headers: dict) -> tuple[int, bytes]:
    """One request on a new connection."""
    connection = http.client.HTTPConnection(*address, timeout=CLIENT_TIMEOUT)
    try:
        connection.request("POST", SELECT_PATH, body, headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _http_run(
    address: tuple, secrets: list[str], *, warmup: float, duration: float, server: int, services: dict
) -> dict:
    count = len(secrets)
    tag = f"http{count}-{time.time_ns()}"
    roots = {"server": server, **services}

    def measure() -> tuple:
        return _children(server), _machine_cpu(), _cpu_seconds(roots)

    window = run_clients(
        _client,
        [(address, secret, f"{tag}-{index}") for index, secret in enumerate(secrets)],
        warmup=warmup,
        duration=duration,
        measure=measure,
    )
    reports, lost = window.reports, window.lost
    (workers_before, machine_before, before), (workers_after, machine_after, after) = (
        window.before,
        window.after,
    )
    recycled = len(workers_before - workers_after)

    latencies = [sample for report in reports for sample in report["latency"]]
    measured = len(latencies)
    by_status: dict[str, int] = {"client_lost": lost} if lost else {}
    for report in reports:
        for status, number in report["errors"].items():
            by_status[status] = by_status.get(status, 0) + number
    spent = {name: after[name] - before[name] for name in roots}
    client_cpu = sum(report["cpu_seconds"] for report in reports)
    service_cpu = sum(spent[name] for name in services) if services else None
    machine_cpu = (machine_after[0] - machine_before[0]) if machine_before and machine_after else None
    other_cpu = (
        None
        if machine_cpu is None
        else max(machine_cpu - spent["server"] - client_cpu - (service_cpu or 0.0), 0.0)
    )
    # PostgreSQL and Redis on another machine cannot be measured: the rest of this one stands in.
    backing = service_cpu if service_cpu is not None else other_cpu
    request_cpu = None if backing is None else spent["server"] + client_cpu + backing

    def per_request(seconds: float | None) -> float | None:
        return round(seconds * 1000 / measured, 3) if measured and seconds is not None else None

    cpu_ms = per_request(request_cpu)
    return {
        "clients": count,
        "requests": measured,
        "requests_per_second": round(measured / duration, 1),
        "latency_ms": _summary(latencies),
        "errors": sum(by_status.values()),
        "errors_by_status": dict(sorted(by_status.items())),
        "first_error": next((report["first_error"] for report in reports if report["first_error"]), None),
        "cpu_ms_per_request": {
            "server": per_request(spent["server"]),
            "clients": per_request(client_cpu),
            "postgres_redis": per_request(service_cpu),
            "other": per_request(other_cpu),
            "request": cpu_ms,
        },
        "queueing_bound_ms": None if cpu_ms is None else round(count * cpu_ms / _usable_cores(), 2),
        "workers_recycled": recycled,
        "machine_cpu_busy": (
            round(machine_cpu / (machine_after[1] - machine_before[1]), 2)
            if machine_cpu is not None and machine_after[1] > machine_before[1]
            else None
        ),
    }


def _client(address, secret, tag, ready, go, start_at, warmup, duration, queue) -> None:
    """One client process: POST select requests back to back until the run ends. Latencies are kept
    for 2xx answers in the measured window; errors are counted over the whole run, warm-up included."""
    headers = _headers(secret)
    report = {"latency": [], "errors": {}, "first_error": None, "cpu_seconds": 0.0}
    ready.wait(timeout=120)
    go.wait(timeout=120)
    sleep_until(start_at.value)
    measure_from = start_at.value + warmup
    stop_at = measure_from + duration
    cpu_start = None
    number = 0
    while True:
        began = time.monotonic()
        if began >= stop_at:
            break
        if cpu_start is None and began >= measure_from:
            cpu_start = time.process_time()
        number += 1
        try:
            status, body = _post(address, _encode(number, tag), headers)
        except (OSError, http.client.HTTPException):
            status, body = None, traceback.format_exc().encode()
        elapsed = time.monotonic() - began
        if status is None or not 200 <= status < 300:
            key = "transport" if status is None else str(status)
            report["errors"][key] = report["errors"].get(key, 0) + 1
            report["first_error"] = (
                report["first_error"] or f"{key}: {body[:2000].decode('utf-8', 'replace')}"
            )
        elif began >= measure_from:
            report["latency"].append(elapsed)
    if cpu_start is not None:
        report["cpu_seconds"] = time.process_time() - cpu_start
    queue.put(report)


def _service_pids() -> dict[str, int]:
    """{"postgres": postmaster pid, "redis": redis-server pid} for those that run on this machine: each
    request costs their CPU too. Found from the bench's own connections, so needs Django connected."""
    from django.conf import settings
    from django.db import connection

    found = {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        postmaster = _parent(cursor.fetchone()[0])
    if postmaster and _command(postmaster) in {"postgres", "postmaster"}:
        found["postgres"] = postmaster
    if settings.REDIS_URL:
        import redis

        with redis.Redis.from_url(settings.REDIS_URL) as client:
            pid = client.info("server").get("process_id")
        if pid and _command(pid) == "redis-server":
            found["redis"] = pid
    return found


def _command(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return None


def _parent(pid: int | str) -> int | None:
    stat = _stat(pid)
    return int(stat[1]) if stat else None


def _stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, ... (None if gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _children(pid: int) -> set[int]:
    return {int(entry) for entry in os.listdir("/proc") if entry.isdigit() and _parent(entry) == pid}


def _cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds of each root process and its children: the children's own while they
    live, and once the root has reaped them (a recycled gunicorn worker, a closed PostgreSQL backend)
    the root's count of its waited-for children."""
    ticks = dict.fromkeys(roots, 0)
    names = {pid: name for name, pid in roots.items()}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = _stat(entry)
        if stat is None:
            continue
        if int(entry) in names:  # utime, stime, cutime, cstime
            ticks[names[int(entry)]] += sum(int(value) for value in stat[11:15])
        elif int(stat[1]) in names:
            ticks[names[int(stat[1])]] += int(stat[11]) + int(stat[12])
    return {name: value / os.sysconf("SC_CLK_TCK") for name, value in ticks.items()}


def _machine_cpu() -> tuple[float, float] | None:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat; None off Linux."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(value) for value in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


# --- Output ---------------------------------------------------------------------------------------


def render(result: dict) -> str:
    config, http = result["config"], result["http"]
    lines = [
        f"selection in-process: {config['iterations']} calls per case after warm-up, latencies in ms; "
        "core = analyze + price every model + rank on a prebuilt snapshot; admit = admit(reserve=False, "
        "record=False)",
        format_table(
            ["models", "core p50", "p95", "p99", "mean", "admit p50", "p95", "p99", "mean", "SQL/admit"],
            [
                [
                    run["models"],
                    run["decision_core_ms"]["p50"],
                    run["decision_core_ms"]["p95"],
                    run["decision_core_ms"]["p99"],
                    run["decision_core_ms"]["mean"],
                    run["admit_ms"]["p50"],
                    run["admit_ms"]["p95"],
                    run["admit_ms"]["p99"],
                    run["admit_ms"]["mean"],
                    run["queries_per_admit"],
                ]
                for run in result["in_process"]
            ],
        ),
        "",
        f"POST {SELECT_PATH} over HTTP: {http['models']} models, {http['server']}; "
        f"{config['http_duration_seconds']:g} s per run after {config['http_warmup_seconds']:g} s warm-up",
        format_table(
            [
                "clients",
                "req/s",
                "p50",
                "p90",
                "p99",
                "max",
                "errors",
                "cpu server",
                "clients",
                "pg+redis",
                "other",
                "bound",
                "busy",
            ],
            [
                [
                    run["clients"],
                    run["requests_per_second"],
                    run["latency_ms"]["p50"],
                    run["latency_ms"]["p90"],
                    run["latency_ms"]["p99"],
                    run["latency_ms"]["max"],
                    run["errors"],
                    run["cpu_ms_per_request"]["server"],
                    run["cpu_ms_per_request"]["clients"],
                    run["cpu_ms_per_request"]["postgres_redis"],
                    run["cpu_ms_per_request"]["other"],
                    run["queueing_bound_ms"],
                    f"{run['machine_cpu_busy']:.0%}" if run["machine_cpu_busy"] is not None else None,
                ]
                for run in http["runs"]
            ],
        ),
        "(cpu = CPU ms per request: gunicorn, client processes, PostgreSQL + Redis, the rest of the "
        "machine; bound = clients x (server + clients + pg+redis) / cores, the least mean latency)",
        f"note: {result['machine_notes']['shared']}",
    ]
    for name, target in result["targets"].items():
        verdict = {True: "met", False: "MISSED", None: "not measured"}[target["met"]]
        lines.append(f"target {name}: {target['measured_ms']} ms < {target['target_ms']:g} ms: {verdict}")
    bound = result["machine_notes"]["queueing_bound"]
    if bound["measured_cpu_ms_per_request"] is not None:
        reachable = "reachable" if bound["target_reachable_on_this_machine"] else "out of reach"
        lines.append(
            f"  queueing bound: {bound['clients']} clients x {bound['measured_cpu_ms_per_request']} CPU ms "
            f"per request / {bound['cores']} cores = {bound['mean_latency_bound_ms']} ms mean at least; "
            f"the target allows {bound['cpu_ms_per_request_the_target_allows']} CPU ms per request: "
            f"{reachable} on this machine"
        )
    for run in http["runs"]:
        if run["errors"]:
            statuses = ", ".join(f"{status}: {number}" for status, number in run["errors_by_status"].items())
            lines.append(
                f"  ! {run['clients']} clients, errors {statuses}; first: {run['first_error'][:500]}"
            )
    for run in result["in_process"]:
        profile = run.get("admit_profile")
        if not profile:
            continue
        lines.append(f"admit profile at {run['models']} models ({profile['note']}):")
        for title, key in (
            ("project code by cumulative", "project_by_cumulative"),
            ("by own time", "all_by_own_time"),
        ):
            lines.append(f"  {title}:  cum ms  own ms  calls")
            for row in profile[key][:10]:
                figures = f"{row['cumulative_ms']:>8.3f} {row['own_ms']:>7.3f} {row['calls']:>6}"
                lines.append(f"    {figures}  {row['function']}")
    return "\n".join(lines)
