"""The reconciliation report over HTTP: runs, discrepancies, sync history and export uploads.

Finance and admins of an organization see its reconciliation; team leads, members and API keys get
403; another organization's runs do not exist (404)."""

from decimal import Decimal
from pathlib import Path

import pytest
import simplejson
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from analytics.api import views
from analytics.models import ReconciliationRun, SyncBatch
from budgets.models import UsageRecord
from tests.analytics.factories import AUG_1, budgets_for, charge, reconcile, registry
from tests.budgets.factories import make_api_key
from tests.conftest import client_for, client_with_key

EXPORTS = Path(__file__).resolve().parents[2] / "data" / "usage_exports"
RUNS = "/api/v1/reconciliation/runs"
DISCREPANCIES = "/api/v1/reconciliation/discrepancies"
BATCHES = "/api/v1/reconciliation/batches"
IMPORTS = "/api/v1/reconciliation/imports"


@pytest.fixture
def acme(world):
    registry()
    budgets_for(world.org, world.alpha, world.beta)
    charge(world.org, "r-2", "0.30", team=world.alpha)
    charge(world.org, "r-3", "0.20", team=world.beta)
    return world


@pytest.fixture
def imported(acme):
    """One processed import with a cost difference, a missing-here and a missing-there line."""
    items = [
        {"request_id": "r-2", "model": "gpt-4o", "cost": Decimal("0.45"), "occurred_at": AUG_1.isoformat()},
        {"request_id": "r-4", "model": "gpt-4o", "cost": Decimal("0.70"), "occurred_at": AUG_1.isoformat()},
    ]
    return reconcile(acme.org, "openai", items)


def data(response) -> dict:
    """The JSON body with money as Decimal (as the renderer wrote it, never through a float)."""
    return simplejson.loads(response.content, use_decimal=True)


def refused(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert (body["status"], body["code"]) == (status, code) and body["message"]
    return body


def test_finance_lists_runs_and_reads_one_with_its_batch(acme, imported):
    client = client_for(acme.fiona)

    listed = client.get(RUNS)
    detail = client.get(f"{RUNS}/{imported.run_id}")

    assert listed.status_code == 200
    assert [run["id"] for run in listed.json()["results"]] == [imported.run_id]
    body = data(detail)
    assert body["kind"] == "external" and body["status"] == "succeeded"
    assert (body["discrepancyCount"], body["adjustedCount"], body["adjustedTotal"]) == (3, 2, Decimal("0.85"))
    assert body["batch"]["rowsImported"] == 1 and body["batch"]["source"] == "upload"
    assert client.get(RUNS, {"kind": "internal"}).json()["results"] == []


def test_discrepancies_filter_by_status_kind_and_run(acme, imported):
    client = client_for(acme.fiona)

    open_ones = data(client.get(DISCREPANCIES, {"status": "open"}))["results"]
    differs = data(client.get(DISCREPANCIES, {"kind": "cost_differs", "run": imported.run_id}))["results"]

    assert [(d["kind"], d["usageRequestId"], d["difference"]) for d in open_ones] == [
        ("missing_there", "r-3", Decimal("-0.2"))
    ]
    (one,) = differs
    assert (one["ours"], one["theirs"], one["difference"], one["status"]) == (
        Decimal("0.3"),
        Decimal("0.45"),
        Decimal("0.15"),
        "resolved",
    )
    assert one["adjustmentRequestId"].startswith("recon-")
    refused(client.get(DISCREPANCIES, {"kind": "bogus"}), 400, "validation_error")


@pytest.mark.parametrize("caller", ["alice", "bob", "carol"])
def test_leads_and_members_may_not_see_reconciliation(acme, imported, caller):
    client = client_for(getattr(acme, caller))
    for url in (RUNS, f"{RUNS}/{imported.run_id}", DISCREPANCIES, BATCHES):
        refused(client.get(url), 403, "permission_denied")
    refused(
        client.post(IMPORTS, {"provider": "openai", "items": []}, format="json"), 403, "permission_denied"
    )


def test_an_api_key_may_not_see_reconciliation(acme, imported):
    _, secret = make_api_key(team=acme.alpha)
    refused(client_with_key(secret).get(RUNS), 403, "permission_denied")


def test_another_organization_sees_nothing(acme, imported):
    client = client_for(acme.omar)

    assert client.get(RUNS).json()["results"] == []
    assert client.get(DISCREPANCIES).json()["results"] == []
    refused(client.get(f"{RUNS}/{imported.run_id}"), 404, "not_found")
    discrepancy = imported.run.discrepancies.first()
    refused(client.get(f"{DISCREPANCIES}/{discrepancy.pk}"), 404, "not_found")
    refused(client.get(f"{BATCHES}/{imported.pk}"), 404, "not_found")


def test_a_json_import_is_stored_then_reconciled_by_the_worker(acme, django_capture_on_commit_callbacks):
    body = {
        "provider": "openai",
        "items": [
            {"requestId": "r-2", "model": "gpt-4o", "cost": Decimal("0.45"), "occurredAt": AUG_1.isoformat()}
        ],
    }
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(acme.fiona).post(IMPORTS, body, format="json")

    assert response.status_code == 202, response.content
    batch = SyncBatch.objects.get(pk=response.json()["batch"]["id"])
    assert response.json()["runId"] == batch.run_id
    assert batch.status == "processed" and batch.source == "upload" and batch.raw
    assert batch.run.discrepancies.filter(kind="cost_differs").count() == 1
    assert UsageRecord.objects.filter(source="adjustment").get().cost == Decimal("0.15")


def test_a_csv_file_upload_is_reconciled(acme, django_capture_on_commit_callbacks):
    upload = SimpleUploadedFile(
        "august.csv", (EXPORTS / "openai_usage.csv").read_bytes(), content_type="text/csv"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(acme.fiona).post(
            IMPORTS, {"provider": "openai", "file": upload}, format="multipart"
        )

    assert response.status_code == 202, response.content
    batch = SyncBatch.objects.get()
    assert (batch.filename, batch.format, batch.status, batch.rows_seen) == (
        "august.csv",
        "csv",
        "processed",
        3,
    )


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"provider": "openai"}, "validation_error"),
        ({"provider": "openai", "items": [], "csv": "model\n"}, "validation_error"),
        ({"provider": "acme-ai", "items": [{"model": "x"}]}, "validation_error"),
        ({"provider": "openai", "report": {"object": "page"}}, "parse_error"),
        ({"provider": "openai", "items": [{"model": "gpt-4o"}]}, "no_usable_lines"),
        ({"provider": "openai", "csv": "model,cost\ngpt-4o,abc\n"}, "no_usable_lines"),
        ({"provider": "openai", "items": [], "extra": 1}, "validation_error"),
    ],
)
def test_a_bad_import_is_refused_and_stores_nothing(acme, body, code):
    refused(client_for(acme.fiona).post(IMPORTS, body, format="json"), 400, code)
    assert not SyncBatch.objects.exists() and not ReconciliationRun.objects.exists()


def test_an_oversized_upload_is_refused(acme, monkeypatch):
    monkeypatch.setattr(views, "MAX_UPLOAD_BYTES", 100)
    upload = SimpleUploadedFile("big.csv", (EXPORTS / "openai_usage.csv").read_bytes())

    response = client_for(acme.fiona).post(
        IMPORTS, {"provider": "openai", "file": upload}, format="multipart"
    )

    refused(response, 413, "payload_too_large")
    assert not SyncBatch.objects.exists()


def test_list_endpoints_answer_in_a_fixed_number_of_queries(acme):
    client = client_for(acme.fiona)
    items = [
        {"request_id": "r-2", "model": "gpt-4o", "cost": Decimal("0.45"), "occurred_at": AUG_1.isoformat()}
    ]

    def count(url: str) -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url).status_code == 200
        return len(queries)

    reconcile(acme.org, "openai", items)
    few = [count(url) for url in (RUNS, DISCREPANCIES, BATCHES)]
    for n in range(5):
        charge(acme.org, f"more-{n}", "0.10", team=acme.alpha)
        reconcile(acme.org, "openai", [{**items[0], "cost": Decimal("0.45") + n + 1}])
    many = [count(url) for url in (RUNS, DISCREPANCIES, BATCHES)]

    assert few == many == [3, 3, 3]
