"""GET /metrics: request latency by route template, admission decisions, ledger gauges, Celery task
outcomes, the optional bearer token, and multi-process aggregation."""

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from celery import shared_task
from django.core.cache import cache
from prometheus_client.parser import text_string_to_metric_families
from rest_framework.test import APIClient

from budgets.principals import principal_for_api_key
from budgets.services.ledger import UsageReport, reservation_authorize, usage_record_many
from budgets.tasks import expire_reservations
from tests.budgets.factories import BudgetFactory, make_api_key, team_budget, user_budget
from tests.conftest import client_with_key
from tests.models_registry.factories import ModelProfileFactory

REPO = Path(__file__).resolve().parents[2]
SELECT = "/api/v1/models/select"
HELLO = {"request": {"messages": [{"role": "user", "content": "What is the capital of Peru?"}]}}


@pytest.fixture(autouse=True)
def _single_process(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    cache.clear()  # registry snapshots live in the cache
    yield
    cache.clear()


def scrape(client=None, **headers) -> dict[tuple[str, frozenset], float]:
    response = (client or APIClient()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def latency_count(samples, method: str, route: str, status: int) -> float:
    return value(
        samples,
        "costswitch_http_request_duration_seconds_count",
        method=method,
        route=route,
        status=str(status),
    )


def test_it_observes_request_latency_by_route_template(team_key):
    client = client_with_key(team_key[1])
    budget = team_budget(team_key[0].team)
    before = scrape()

    assert client.get(f"/api/v1/budgets/{budget.pk}").status_code == 200
    assert client.get("/api/v1/budgets/999999").status_code == 404

    after = scrape()
    route = "api/v1/budgets/<pk>"
    assert latency_count(after, "GET", route, 200) == latency_count(before, "GET", route, 200) + 1
    assert latency_count(after, "GET", route, 404) == latency_count(before, "GET", route, 404) + 1
    fast = value(
        after,
        "costswitch_http_request_duration_seconds_bucket",
        method="GET",
        route=route,
        status="200",
        le="2.5",
    )
    assert fast >= 1
    assert not any(f"budgets/{budget.pk}" in dict(labels).get("route", "") for _, labels in after)


@pytest.mark.django_db
def test_unknown_paths_share_one_route_label():
    client = APIClient()
    before = scrape()
    assert client.get("/no/such/page-1").status_code == 404
    assert client.get("/api/v1/no-such-endpoint-2").status_code == 404
    after = scrape()
    assert latency_count(after, "GET", "unmatched", 404) == latency_count(before, "GET", "unmatched", 404) + 2
    routes = {dict(labels).get("route") for _, labels in after}
    assert not any(route and "page-1" in route for route in routes)


def test_it_counts_admission_decisions_by_outcome(world, team_key):
    ModelProfileFactory(id="only-model")
    client = client_with_key(team_key[1])
    before = scrape()

    assert client.post(SELECT, HELLO, format="json").status_code == 201
    # A budget too small for any model: the refusal is recorded, and counted.
    team_budget(world.beta, limit=Decimal("0.000000001"))
    beta_key = make_api_key(team=world.beta)[1]
    assert client_with_key(beta_key).post(SELECT, HELLO, format="json").status_code == 402

    after = scrape()
    name = "costswitch_admission_decisions_total"
    assert value(after, name, outcome="admitted") == value(before, name, outcome="admitted") + 1
    assert value(after, name, outcome="refused") == value(before, name, outcome="refused") + 1


def test_the_budget_gauges_read_the_ledger_at_scrape_time(world, team_key, settings):
    org_budget = BudgetFactory(organization=world.org, limit=Decimal("1000"))
    alpha = team_budget(world.alpha, limit=Decimal("100"))
    beta = team_budget(world.beta, limit=Decimal("10"))
    idle = user_budget(world.carol, limit=Decimal("50"))
    reservation_authorize(
        principal=principal_for_api_key(team_key[0]), request_id="r-1", amount=Decimal("30")
    )
    beta_key = make_api_key(team=world.beta)[0]
    usage_record_many(
        principal=principal_for_api_key(beta_key),
        reports=[UsageReport(request_id="u-1", cost=Decimal("9.5"))],
    )

    samples = scrape()

    assert value(samples, "costswitch_open_reservations", organization="acme") == 1
    assert value(samples, "costswitch_budget_used_ratio", budget_id=str(alpha.pk)) == 0.3
    assert value(samples, "costswitch_budget_used_ratio", budget_id=str(beta.pk)) == 0.95
    # The organization budget carries the reservation and the usage: 39.5 of 1000.
    assert value(samples, "costswitch_budget_used_ratio", budget_id=str(org_budget.pk)) == 0.0395
    bands = {
        dict(labels)["band"]: count
        for (name, labels), count in samples.items()
        if name == "costswitch_budgets_by_status"
    }
    assert bands == {"<70": 3, "70-85": 0, "85-95": 0, "95-100": 1, ">=100": 0}
    assert value(samples, "costswitch_ledger_metrics_up") == 1

    settings.METRICS_MAX_BUDGETS = 1
    capped = scrape()
    labelled = {
        dict(labels)["budget_id"] for name, labels in capped if name == "costswitch_budget_used_ratio"
    }
    assert labelled == {str(beta.pk)}  # the most used one only
    assert str(idle.pk) not in labelled
    assert sum(v for (n, _), v in capped.items() if n == "costswitch_budgets_by_status") == 4


def test_organizations_beyond_the_label_cap_are_summed(world, settings):
    settings.METRICS_MAX_BUDGETS = 1
    for team, count in ((world.alpha, 2), (world.other_team, 1)):
        principal = principal_for_api_key(make_api_key(team=team)[0])
        for n in range(count):
            reservation_authorize(principal=principal, request_id=f"r-{team.pk}-{n}", amount=Decimal("1"))

    samples = scrape()

    assert value(samples, "costswitch_open_reservations", organization="acme") == 2
    assert value(samples, "costswitch_open_reservations", organization="(other)") == 1


@pytest.mark.django_db
def test_a_metrics_token_is_required_once_set(settings):
    settings.METRICS_TOKEN = "scrape-secret"
    assert APIClient().get("/metrics").status_code == 401
    assert APIClient().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert scrape(HTTP_AUTHORIZATION="Bearer scrape-secret")


@pytest.mark.django_db
def test_metrics_is_not_in_the_api_schema():
    paths = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert not any("metrics" in path for path in paths)


# --- Celery ---------------------------------------------------------------------------------------


@shared_task(name="tests.costswitch.fails")
def _fails():
    raise RuntimeError("boom")


@shared_task(bind=True, name="tests.costswitch.retries_once", max_retries=1, default_retry_delay=0)
def _retries_once(self):
    if self.request.retries == 0:
        raise self.retry()
    return "ok"


@pytest.mark.django_db
def test_it_counts_celery_task_outcomes_of_eager_tasks():
    name = "costswitch_celery_tasks_total"
    before = scrape()

    expire_reservations.delay()
    # Eager tasks that propagate their errors (settings_test) raise before Celery sends
    # task_failure or task_retry; a worker does not propagate, nor does apply(throw=False).
    _fails.apply(throw=False)
    _retries_once.apply(throw=False)

    after = scrape()
    task = "budgets.tasks.expire_reservations"
    assert (
        value(after, name, task=task, outcome="success")
        == value(before, name, task=task, outcome="success") + 1
    )
    failed = value(after, name, task="tests.costswitch.fails", outcome="failure")
    assert failed == value(before, name, task="tests.costswitch.fails", outcome="failure") + 1
    task = "tests.costswitch.retries_once"
    assert (
        value(after, name, task=task, outcome="retry") == value(before, name, task=task, outcome="retry") + 1
    )
    assert (
        value(after, name, task=task, outcome="success")
        == value(before, name, task=task, outcome="success") + 1
    )


# --- Several processes ----------------------------------------------------------------------------

WRITER = """
from costswitch import metrics
for _ in range({n}):
    metrics.count_admission("admitted")
    metrics.observe_request("POST", "api/v1/models/select", 201, 0.004)
"""


@pytest.mark.django_db
def test_a_scrape_sums_every_process_in_multi_process_mode(tmp_path, monkeypatch):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for n in (2, 3):
        subprocess.run([sys.executable, "-c", WRITER.format(n=n)], env=env, cwd=REPO, check=True, timeout=60)
    assert len(list(tmp_path.glob("counter_*.db"))) == 2  # one file per process

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    response = APIClient().get("/metrics")
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.content.decode())
        for s in family.samples
    }

    assert value(samples, "costswitch_admission_decisions_total", outcome="admitted") == 5
    assert latency_count(samples, "POST", "api/v1/models/select", 201) == 5
    # Per-process collectors (this process's in-memory registry) are not mixed in; the ledger
    # figures appear once.
    assert not any(name.startswith("python_gc") for name, _ in samples)
    assert response.content.decode().count("# TYPE costswitch_ledger_metrics_up gauge") == 1
