"""examples/agent_routing.py run for real: the live server chooses, a small OpenAI-compatible
upstream on 127.0.0.1 answers with usage, and the ledger shows the chores on the utility model and the
hard task on the premium one, each charged exactly."""

import importlib.util
import json
import sys
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from budgets.choices import ReservationState
from budgets.models import BudgetPeriod, Reservation, UsageRecord
from costswitch.client import CostSwitch
from tests.budgets.factories import team_budget
from tests.costswitch.test_client import registry

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent_routing.py"


def load_example():
    spec = importlib.util.spec_from_file_location("agent_routing", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("agent_routing", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class Upstream:
    """Answers /chat/completions with 1000 prompt tokens and `max_tokens` completion tokens;
    `overloaded` models answer 503."""

    def __init__(self, overloaded: frozenset[str] = frozenset()):
        self.calls: list[str] = []
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                upstream.calls.append(body["model"])
                if body["model"] in overloaded:
                    status, answer = 503, {"error": {"message": "overloaded"}}
                else:
                    status, answer = (
                        200,
                        {
                            "choices": [
                                {"message": {"role": "assistant", "content": f"from {body['model']}"}}
                            ],
                            "usage": {"prompt_tokens": 1000, "completion_tokens": body["max_tokens"]},
                        },
                    )
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def models(db):
    return registry()


@pytest.fixture
def budget(world):
    return team_budget(world.alpha, name="Alpha monthly", limit=Decimal("100"))


def run_agent(live_server, secret: str, upstream: Upstream) -> dict:
    example = load_example()
    with CostSwitch(live_server.url, secret) as cs, httpx.Client(base_url=upstream.url) as llm:
        return example.Agent(cs, llm).handle("Prove that 17 is prime.", conversation_id="conv-1")


def test_chores_go_to_the_utility_model_and_the_hard_task_to_the_premium_one(
    live_server, team_key, models, budget
):
    upstream = Upstream()
    try:
        result = run_agent(live_server, team_key[1], upstream)
    finally:
        upstream.close()

    assert result == {"label": "from utility", "answer": "from premium", "title": "from utility"}
    assert upstream.calls == ["utility", "premium", "utility"]
    rows = list(UsageRecord.objects.order_by("pk").values_list("model", "cost", "conversation_id", "agent"))
    # classify: 1000 * 0.15/1M + 5 * 0.60/1M; answer: 1000 * 15/1M + 2000 * 75/1M;
    # title: 1000 * 0.15/1M + 20 * 0.60/1M
    assert rows == [
        ("utility", Decimal("0.000153"), "conv-1", "support-bot"),
        ("premium", Decimal("0.165"), "conv-1", "support-bot"),
        ("utility", Decimal("0.000162"), "conv-1", "support-bot"),
    ]
    period = BudgetPeriod.objects.get(budget=budget)
    assert (period.spent, period.reserved) == (Decimal("0.165315"), 0)


def test_an_overloaded_model_falls_back_along_the_chain_and_the_model_used_is_charged(
    live_server, team_key, models, budget
):
    upstream = Upstream(overloaded=frozenset({"premium"}))
    try:
        result = run_agent(live_server, team_key[1], upstream)
    finally:
        upstream.close()

    assert result["answer"] == "from utility"
    assert upstream.calls == ["utility", "premium", "utility", "utility"]
    answer = UsageRecord.objects.order_by("pk")[1]
    assert (answer.model, answer.cost) == ("utility", Decimal("0.00135"))  # 1000*0.15 + 2000*0.60, per 1M
    assert not Reservation.objects.filter(state=ReservationState.PENDING).exists()
