"""Gateway section: what costswitch adds to a chat completion on top of the provider's own time.

A stub OpenAI-compatible provider (tests/gateway/upstream.py, a threaded HTTP server answering at
once with a fixed `usage`) runs in this process. Clients are forked processes posting the same
non-streamed chat request in a closed loop with http.client, first straight to the stub, then
through costswitch (`POST /v1/chat/completions` on gunicorn with deploy/gunicorn.conf.py, DEBUG off,
Redis cache, logs at WARNING), at 1 and 16 concurrent clients, and at 16 once more with the provider
taking --gateway-provider-delay per answer, as a real model does. Through costswitch each request is
authenticated, admitted (rules, selection, a ledger hold, the decision row), forwarded on the pooled
httpx client, and settled (a usage record and charges on every budget of the chain) once the answer
has been sent: the caller does not wait for that write, the worker does.

overhead = latency through costswitch - latency direct, per percentile (p50, p99). Target: p99
overhead < 15 ms. With 16 closed-loop clients of an instant provider on a machine with few cores,
requests queue for the CPU (the stub, the clients, gunicorn, PostgreSQL and Redis share it): that
figure measures the queue as much as the gateway; with the provider's delay, 16 clients send what
16 concurrent model calls send. Every run reports errors; the ledger is checked after each (no
reservation left pending, spent = charges on every period of the bench organization).
"""

import http.client
import json
import os
import tempfile
import time
from urllib.parse import urlsplit

from bench.clients import run_clients, sleep_until
from bench.stats import format_table, latency_summary

PATH = "/v1/chat/completions"
MODEL = "bench-gateway"
PROVIDER = "bench-stub"
KEY_ENV = "COSTSWITCH_BENCH_STUB_KEY"
TARGET_MS = 15.0
CLIENT_TIMEOUT = 30


def add_arguments(parser) -> None:
    group = parser.add_argument_group("gateway section")
    group.add_argument("--gateway-clients", default="1,16", help="concurrent clients per run (default 1,16)")
    group.add_argument("--gateway-duration", type=float, default=5.0, help="measured seconds per run")
    group.add_argument("--gateway-warmup", type=float, default=1.0, help="unmeasured seconds before each run")
    group.add_argument("--gateway-workers", type=int, help="gunicorn workers (default: the config's)")
    group.add_argument(
        "--gateway-provider-delay",
        type=float,
        default=0.5,
        help="seconds the stub provider takes to answer in one more run at the most clients, as a real "
        "model does (default 0.5; 0: no such run)",
    )


def run(args) -> dict:
    from django.db import connections

    from bench.selection import _gunicorn, _organization
    from tests.gateway.upstream import UpstreamStub

    counts = [int(n) for n in args.gateway_clients.split(",") if n.strip()]
    stub = UpstreamStub(api_key="bench-stub-secret").start()
    os.environ[KEY_ENV] = stub.api_key  # gunicorn inherits it: the provider's key comes from the env
    _registry(stub.base_url)
    principals = _organization("gateway", keys=max(counts))
    secrets = [secret for _, secret in principals]
    organization = principals[0][0].organization
    connections.close_all()  # clients are forked: none may share this socket

    runs = []
    try:
        with (
            tempfile.TemporaryDirectory(prefix="costswitch-bench-prometheus-") as metrics_dir,
            tempfile.TemporaryFile() as log,
            _gunicorn(args.gateway_workers, metrics_dir, log) as (address, server),
        ):
            _wait(address, secrets[0], server, log)
            stub_address = urlsplit(stub.base_url).hostname, urlsplit(stub.base_url).port
            # (clients, provider delay, keep-alive): SDKs keep their connection, which then waits
            # for the worker to finish the previous request, settlement included.
            plan = [(count, 0.0, False) for count in counts]
            if 1 in counts:
                plan.append((1, 0.0, True))
            if args.gateway_provider_delay > 0:
                plan.append((max(counts), args.gateway_provider_delay, False))
            for count, delay, keep in plan:
                stub.behaviour(MODEL).delay = delay
                direct = _run(stub_address, "/v1/chat/completions", [stub.api_key] * count, args, keep)
                through = _run(address, PATH, secrets[:count], args, keep)
                runs.append(_compare(count, delay, keep, direct, through))
                row = runs[-1]
                print(
                    f"  gateway {_label(row)}: overhead p50 {row['overhead_ms']['p50']} ms, "
                    f"p99 {row['overhead_ms']['p99']} ms, errors {row['errors']}",
                    flush=True,
                )
    finally:
        stub.stop()
        ledger_ok = _ledger_exact(organization)
        _cleanup()
    one = next(
        (r for r in runs if r["clients"] == 1 and not r["provider_delay_ms"] and not r["keep_alive"]), None
    )
    ok = ledger_ok and all(r["errors"] == 0 for r in runs)
    return {
        "ok": ok,
        "ledger_exact": ledger_ok,
        "target": {
            "p99_overhead_ms": TARGET_MS,
            "clients": 1,
            "measured": one["overhead_ms"]["p99"] if one else None,
            "met": bool(
                one and one["overhead_ms"]["p99"] is not None and one["overhead_ms"]["p99"] < TARGET_MS
            ),
        },
        "server": "gunicorn -c deploy/gunicorn.conf.py (threaded workers), DEBUG=0, LOG_LEVEL=WARNING",
        "upstream": "stub OpenAI-compatible server in the bench process (ThreadingHTTPServer), answering "
        "at once, or after provider_delay_ms in the run that says so",
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "runs": runs,
    }


def _registry(base_url: str) -> None:
    from decimal import Decimal

    from models_registry.models import ModelProfile, Provider

    provider, _ = Provider.objects.update_or_create(
        name=PROVIDER, defaults={"display_name": "Bench stub", "base_url": base_url, "api_key_env": KEY_ENV}
    )
    ModelProfile.objects.update_or_create(
        id=MODEL,
        defaults={
            "provider": provider,
            "display_name": "Bench gateway model",
            "context_window": 128_000,
            "max_output_tokens": 4096,
            "input_price_per_million": Decimal("0.15"),
            "output_price_per_million": Decimal("0.6"),
            "quality_scores": {},
        },
    )


def _cleanup() -> None:
    """The bench model and provider leave the registry (other sections size the registry)."""
    from models_registry.models import ModelProfile, Provider

    ModelProfile.objects.filter(id=MODEL).delete()
    Provider.objects.filter(name=PROVIDER).delete()


def _ledger_exact(organization) -> bool:
    from django.db.models import Sum

    from budgets.choices import ReservationState
    from budgets.models import BudgetPeriod, Reservation

    if Reservation.objects.filter(organization=organization, state=ReservationState.PENDING).exists():
        return False
    for period in BudgetPeriod.objects.filter(budget__organization=organization):
        charged = period.charges.aggregate(total=Sum("amount"))["total"] or 0
        if period.reserved != 0 or period.spent != charged:
            return False
    return True


def _body(number: int, model: str) -> bytes:
    messages = [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": f"Request {number}: summarize the last deployment in one sentence."},
    ]
    return json.dumps({"model": model, "messages": messages, "max_tokens": 200}).encode()


def _wait(address, secret, server, log) -> None:
    from bench.selection import SERVER_START_TIMEOUT, _tail

    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if server.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {server.returncode}:\n{_tail(log)}")
        try:
            status, body = _post(address, PATH, _body(0, MODEL), secret, None)
            if status == 200:
                break
            raise RuntimeError(f"gateway answered {status}: {body[:500]!r}")
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    for n in range(20):  # every worker's first-request work (encodings, snapshot, httpx client)
        _post(address, PATH, _body(n, MODEL), secret, None)


def _post(address, path: str, body: bytes, secret: str, connection) -> tuple[int, bytes]:
    own = connection is None
    connection = connection or http.client.HTTPConnection(*address, timeout=CLIENT_TIMEOUT)
    try:
        connection.request(
            "POST", path, body, {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
        )
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        if own:
            connection.close()


def _run(address, path: str, secrets: list[str], args, keep_alive: bool = False) -> dict:
    window = run_clients(
        _client,
        [(address, path, secret, MODEL, keep_alive) for secret in secrets],
        warmup=args.gateway_warmup,
        duration=args.gateway_duration,
    )
    latencies = [s for report in window.reports for s in report["latency"]]
    errors = sum(report["errors"] for report in window.reports) + window.lost
    first_error = next((r["first_error"] for r in window.reports if r["first_error"]), None)
    return {
        "latency": latencies,
        "errors": errors,
        "first_error": first_error,
        "requests_per_second": round(len(latencies) / args.gateway_duration, 1),
    }


def _client(address, path, secret, model, keep_alive, ready, go, start_at, warmup, duration, queue) -> None:
    """One closed-loop client: a new connection per request, or one kept open (http.client opens
    another when the server closed it)."""
    report = {"latency": [], "errors": 0, "first_error": None}
    connection = http.client.HTTPConnection(*address, timeout=CLIENT_TIMEOUT) if keep_alive else None
    ready.wait(timeout=120)
    go.wait(timeout=120)
    sleep_until(start_at.value)
    measure_from = start_at.value + warmup
    stop_at = measure_from + duration
    number = 0
    while (began := time.monotonic()) < stop_at:
        number += 1
        try:
            status, body = _post(address, path, _body(number, model), secret, connection)
        except (OSError, http.client.HTTPException) as exc:
            status, body = None, repr(exc).encode()
        elapsed = time.monotonic() - began
        if status != 200:
            report["errors"] += 1
            report["first_error"] = (
                report["first_error"] or f"{status}: {body[:500].decode('utf-8', 'replace')}"
            )
        elif began >= measure_from:
            report["latency"].append(elapsed)
    queue.put(report)


def _compare(count: int, delay: float, keep_alive: bool, direct: dict, through: dict) -> dict:
    d, t = latency_summary(direct["latency"]), latency_summary(through["latency"])

    def minus(key):
        return None if d[key] is None or t[key] is None else round(t[key] - d[key], 3)

    return {
        "clients": count,
        "provider_delay_ms": round(delay * 1000),
        "keep_alive": keep_alive,
        "direct_ms": d,
        "through_ms": t,
        "overhead_ms": {"p50": minus("p50"), "p99": minus("p99"), "mean": minus("mean")},
        "direct_rps": direct["requests_per_second"],
        "through_rps": through["requests_per_second"],
        "errors": direct["errors"] + through["errors"],
        "first_error": through["first_error"] or direct["first_error"],
    }


def _label(run: dict) -> str:
    delay = run.get("provider_delay_ms")
    label = f"{run['clients']} clients" + (f", provider {delay} ms" if delay else "")
    return label + (", keep-alive" if run.get("keep_alive") else "")


def render(result: dict) -> str:
    rows = [
        (
            _label(run),
            run["direct_ms"]["p50"],
            run["through_ms"]["p50"],
            run["overhead_ms"]["p50"],
            run["direct_ms"]["p99"],
            run["through_ms"]["p99"],
            run["overhead_ms"]["p99"],
            run["through_rps"],
            run["errors"],
        )
        for run in result["runs"]
    ]
    target = result["target"]
    lines = [
        "gateway: POST /v1/chat/completions through costswitch vs straight to the stub provider (ms)",
        format_table(
            ["run", "direct p50", "via p50", "+p50", "direct p99", "via p99", "+p99", "via req/s", "errors"],
            rows,
        ),
        f"target: p99 overhead < {target['p99_overhead_ms']} ms at 1 client: "
        f"measured {target['measured']} ms "
        f"({'met' if target['met'] else 'NOT met'}); ledger exact: {result['ledger_exact']}; "
        f"{result['cores']} usable cores (16 clients of an instant provider queue for them)",
    ]
    return "\n".join(lines)
