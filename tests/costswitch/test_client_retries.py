"""The client's retries, through a real HTTP proxy on 127.0.0.1 in front of the live server that
loses answers or refuses on cue: a retry carries the same request id, so it charges once; 503 and
429 are retried honouring Retry-After; refusals (4xx) are never retried."""

import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from budgets.models import BudgetPeriod, Reservation, UsageRecord
from costswitch.client import (
    BudgetExceeded,
    ConnectionFailed,
    CostSwitch,
    RateLimited,
    RetryPolicy,
    ServiceUnavailable,
)
from costswitch.client._core import decode
from selection.models import Decision
from tests.budgets.factories import team_budget
from tests.costswitch.test_client import HELLO, registry
from tests.processes import free_port

pytestmark = pytest.mark.django_db(transaction=True)

FAST = RetryPolicy(max_retries=3, backoff=0.01, max_backoff=0.05)
HOP_BY_HOP = {"host", "content-length", "connection", "keep-alive", "transfer-encoding"}


class FlakyProxy:
    """Forwards to `upstream`, except for the next requests' planned actions:
    "drop": forward, then close the connection without answering (the server did the work);
    "503" / "429": answer that status with `Retry-After: <retry_after>` without forwarding."""

    def __init__(self, upstream: str, retry_after: str = "0"):
        self.upstream = upstream
        self.retry_after = retry_after
        self.plan: list[str] = []
        self.seen: list[tuple[str, str, object]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                self._handle()

            def do_POST(self):
                self._handle()

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    proxy.seen.append((self.command, self.path, decode(body)))
                    action = proxy.plan.pop(0) if proxy.plan else "forward"
                if action in ("503", "429"):
                    payload = b'{"status": %s, "code": "busy", "message": "Try again."}' % action.encode()
                    self.send_response(int(action))
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Retry-After", proxy.retry_after)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                answer = httpx.request(
                    self.command, proxy.upstream + self.path, content=body, headers=headers, timeout=30
                )
                if action == "drop":
                    self.close_connection = True
                    return
                self.send_response(answer.status_code)
                for name, value in answer.headers.items():
                    if name.lower() not in HOP_BY_HOP | {"content-encoding"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def bodies(self, path_end: str) -> list:
        return [body for _, path, body in self.seen if path.endswith(path_end)]


@pytest.fixture
def models(db):
    return registry()


@pytest.fixture
def budget(world):
    return team_budget(world.alpha, name="Alpha monthly", limit=Decimal("100"))


@pytest.fixture
def proxy(live_server):
    with FlakyProxy(live_server.url) as proxy:
        yield proxy


@pytest.fixture
def cs(proxy, team_key, models, budget):
    with CostSwitch(proxy.url, team_key[1], retry=FAST, timeout=20) as client:
        yield client


def test_a_lost_select_answer_is_retried_with_the_same_request_id_and_reserves_once(cs, proxy, budget):
    proxy.plan = ["drop"]

    selection = cs.select(HELLO, max_tokens=100)  # no request id given: the client makes one up

    first, retry = proxy.bodies("/models/select")
    assert first == retry and first["requestId"] == selection.request_id
    assert selection.replayed is True  # the server had admitted the first attempt
    assert Decision.objects.count() == Reservation.objects.count() == 1
    assert BudgetPeriod.objects.get(budget=budget).reserved == selection.estimated_cost


def test_a_lost_settle_answer_is_retried_and_charges_once(cs, proxy, budget):
    selection = cs.select(HELLO, max_tokens=100)
    proxy.plan = ["drop"]

    with cs.call(HELLO, max_tokens=100, request_id="ctx-1") as call:
        proxy.plan = ["drop"]  # the settle on exit loses its first answer
        call.usage(input_tokens=1000, output_tokens=100, cost=Decimal("0.00021"))
    record = cs.settle(selection.reservation_id, cost=Decimal("0.5"), input_tokens=3)

    assert len(proxy.bodies(f"/reservations/{call.selection.reservation_id}/settle")) == 2
    assert (call.record.cost, call.record.replayed) == (Decimal("0.00021"), True)
    assert record.cost == Decimal("0.5")
    assert sorted(UsageRecord.objects.values_list("cost", flat=True)) == [Decimal("0.00021"), Decimal("0.5")]
    period = BudgetPeriod.objects.get(budget=budget)
    assert (period.spent, period.reserved) == (Decimal("0.50021"), 0)


def test_a_lost_usage_report_is_retried_and_recorded_once(cs, proxy, budget):
    proxy.plan = ["drop", "drop"]

    record = cs.report_usage(model="utility", cost=Decimal("1.25"), input_tokens=10)

    bodies = proxy.bodies("/usage")
    assert len(bodies) == 3 and len({b["requestId"] for b in bodies}) == 1
    assert record.replayed is True
    assert UsageRecord.objects.get().cost == Decimal("1.25")
    assert BudgetPeriod.objects.get(budget=budget).spent == Decimal("1.25")


def test_a_503_is_retried_and_a_429_waits_for_its_retry_after(live_server, team_key, models, budget):
    with (
        FlakyProxy(live_server.url, retry_after="1") as proxy,
        CostSwitch(proxy.url, team_key[1], retry=FAST) as cs,
    ):
        proxy.plan = ["503", "429"]
        started = time.monotonic()
        selection = cs.select(HELLO)
        waited = time.monotonic() - started

    assert waited >= 2  # one second after each refusal, as the server asked
    assert len(proxy.bodies("/models/select")) == 3
    assert selection.replayed is False and Reservation.objects.count() == 1


def test_when_the_retries_run_out_the_last_refusal_is_raised(cs, proxy):
    proxy.plan = ["429"] * 4

    with pytest.raises(RateLimited) as limited:
        cs.select(HELLO)

    assert (limited.value.status, limited.value.retry_after) == (429, 0.0)
    assert len(proxy.bodies("/models/select")) == 4  # the first try and FAST's 3 retries
    assert not Reservation.objects.exists()


def test_a_retry_after_beyond_the_policys_patience_is_not_waited_for(live_server, team_key, models, budget):
    with (
        FlakyProxy(live_server.url, retry_after="3600") as proxy,
        CostSwitch(proxy.url, team_key[1], retry=FAST) as cs,
    ):
        proxy.plan = ["503"]
        with pytest.raises(ServiceUnavailable) as unavailable:
            cs.select(HELLO)

    assert unavailable.value.status == 503 and len(proxy.seen) == 1


def test_a_refusal_is_never_retried(cs, proxy, world):
    team_budget(world.alpha, limit=Decimal("0.000001"), thresholds=[])

    with pytest.raises(BudgetExceeded):
        cs.select(HELLO, model="premium", max_tokens=1000)

    assert len(proxy.bodies("/models/select")) == 1


def test_an_unreachable_server_raises_connection_failed_after_the_retries(team_key):
    with (
        CostSwitch(f"http://127.0.0.1:{free_port()}", team_key[1], retry=FAST) as cs,
        pytest.raises(ConnectionFailed) as failed,
    ):
        cs.select(HELLO, request_id="nowhere")

    assert (failed.value.status, failed.value.code, failed.value.request_id) == (
        None,
        "connection_failed",
        "nowhere",
    )
