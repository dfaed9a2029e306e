"""Price sync (`models_registry.tasks.sync_prices`, `manage.py sync_prices`): the catalog of
COSTSWITCH_PRICE_CATALOG, served by a real HTTP server on 127.0.0.1 or read from a file, imported
with the catalog import code; idempotent, bounded in size and time, safe to run twice at once."""

import json
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path

import httpx
import pytest
import simplejson
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.test import override_settings

from models_registry.catalog import CatalogError
from models_registry.choices import PriceSource
from models_registry.models import ModelProfile, PriceChange, Provider
from models_registry.sync import prices_sync
from models_registry.tasks import sync_prices
from tests.models_registry.factories import ModelProfileFactory

pytestmark = pytest.mark.django_db
LITELLM_SAMPLE = Path(__file__).resolve().parent.parent / "data" / "litellm_sample.json"


def model(model_id: str, input_price: str = "1.1", output_price: str = "4.4") -> dict:
    return {
        "id": model_id,
        "provider": "acme-ai",
        "contextWindow": 128000,
        "maxOutputTokens": 8192,
        "inputPricePerMillion": Decimal(input_price),
        "outputPricePerMillion": Decimal(output_price),
        "quality": {"chat": 70},
    }


def catalog(*models: dict) -> bytes:
    data = {
        "schema": "costswitch.catalog/1",
        "providers": [{"name": "acme-ai", "displayName": "Acme AI", "kind": "other"}],
        "models": list(models),
    }
    # Prices go out as exact JSON numbers, as a real catalog file has them.
    return simplejson.dumps(data, use_decimal=True).encode()


class CatalogServer:
    """A real HTTP server on 127.0.0.1 serving `routes` (path -> (status, body)); `/slow` answers
    after `delay` seconds and `/endless` streams without a Content-Length until the client stops."""

    def __init__(self):
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.requests: list[str] = []
        self.delay = 2.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self):
                server.requests.append(self.path)
                path = self.path.split("?", 1)[0]
                if path == "/slow":
                    time.sleep(server.delay)
                if path == "/endless":
                    self.send_response(200)
                    self.end_headers()
                    try:
                        for _ in range(10_000):
                            self.wfile.write(b" " * 1024)
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    return
                status, body = server.routes.get(path, (404, b"not here"))
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def serve(self, path: str, body: bytes, status: int = 200) -> str:
        self.routes[path] = (status, body)
        return self.url + path


@pytest.fixture
def server():
    catalog_server = CatalogServer()
    catalog_server.thread.start()
    try:
        yield catalog_server
    finally:
        catalog_server.httpd.shutdown()
        catalog_server.httpd.server_close()


def registry_state() -> list:
    return [
        sorted(ModelProfile.objects.values_list("pk", "input_price_per_million", "output_price_per_million")),
        sorted(PriceChange.objects.values_list("pk", flat=True)),
        sorted(Provider.objects.values_list("name", flat=True)),
    ]


def test_it_imports_the_catalog_served_at_the_url_and_a_second_run_changes_nothing(server):
    url = server.serve("/catalog.json", catalog(model("big"), model("small", "0.15", "0.6")))

    with override_settings(COSTSWITCH_PRICE_CATALOG=f"{url}?token=s3cret"):
        first = sync_prices.delay().get()
        after_first = registry_state()
        second = sync_prices.delay().get()

    assert first["created"] == ["big", "small"] and first["providers_created"] == ["acme-ai"]
    # The history names the source without the query string (a signed URL's secret lives there).
    assert first["source"] == url
    assert set(PriceChange.objects.values_list("source_detail", flat=True)) == {f"sync: {url}"}
    assert ModelProfile.objects.get(pk="small").input_price_per_million == Decimal("0.15")
    assert (second["created"], second["updated"], second["price_changes"]) == ([], [], [])
    assert second["unchanged"] == 2
    assert registry_state() == after_first
    assert server.requests == ["/catalog.json?token=s3cret"] * 2


def test_a_new_price_in_the_catalog_is_applied_with_history(server):
    url = server.serve("/catalog.json", catalog(model("big")))
    prices_sync(source=url)
    server.serve("/catalog.json", catalog(model("big", "0.9", "3.6")))

    result = prices_sync(source=url)

    assert result.report.price_changes == ["big"]
    big = ModelProfile.objects.get(pk="big")
    assert (big.input_price_per_million, big.output_price_per_million) == (Decimal("0.9"), Decimal("3.6"))
    latest = big.price_changes.order_by("-pk").first()
    assert (latest.old_input_price_per_million, latest.source) == (Decimal("1.1"), PriceSource.CATALOG)


def test_it_imports_from_a_file_and_litellm_files_only_update_known_models(tmp_path):
    ModelProfileFactory(
        id="gpt-4o", input_price_per_million=Decimal("3"), output_price_per_million=Decimal("12")
    )
    path = tmp_path / "ours.json"
    path.write_bytes(catalog(model("big")))

    with override_settings(COSTSWITCH_PRICE_CATALOG=str(path)):
        ours = sync_prices.delay().get()
    litellm = prices_sync(source=str(LITELLM_SAMPLE))

    assert ours["created"] == ["big"] and ours["source"] == "ours.json"
    assert litellm.report.created == [] and litellm.report.price_changes == ["gpt-4o"]
    assert sorted(ModelProfile.objects.values_list("pk", flat=True)) == ["big", "gpt-4o"]
    gpt = ModelProfile.objects.get(pk="gpt-4o")
    assert (gpt.input_price_per_million, gpt.output_price_per_million) == (Decimal("2.5"), Decimal("10"))
    assert gpt.price_changes.order_by("-pk").first().source == PriceSource.LITELLM


@override_settings(COSTSWITCH_PRICE_CATALOG="")
def test_it_does_nothing_when_no_catalog_is_configured():
    assert sync_prices.delay().get() is None
    assert prices_sync() is None
    assert not ModelProfile.objects.exists()


@pytest.mark.parametrize(
    ("path", "status", "body", "message"),
    [
        ("/missing.json", 404, b"", "answered HTTP 404"),
        ("/broken.json", 200, b"{not json", "is not valid JSON"),
        ("/other.json", 200, b'{"models": []}', "Unrecognised catalog"),
        ("/bad-price.json", 200, catalog(model("big", "-1")), "1 problem"),
    ],
)
def test_a_bad_answer_fails_the_run_and_changes_nothing(server, path, status, body, message):
    ModelProfileFactory(id="kept")
    before = registry_state()
    url = server.serve(path, body, status)

    with override_settings(COSTSWITCH_PRICE_CATALOG=url), pytest.raises(CatalogError, match=message):
        sync_prices.delay().get()

    assert registry_state() == before


@override_settings(COSTSWITCH_PRICE_CATALOG_MAX_BYTES=64 * 1024)
def test_a_catalog_over_the_size_limit_is_refused_whether_declared_or_streamed(server, tmp_path):
    declared = server.serve("/huge.json", b" " * (64 * 1024 + 1))
    big_file = tmp_path / "huge.json"
    big_file.write_bytes(b" " * (64 * 1024 + 1))

    for source in (declared, f"{server.url}/endless", str(big_file)):
        with pytest.raises(CatalogError, match="larger than 65536 bytes"):
            prices_sync(source=source)
    assert not ModelProfile.objects.exists()


@override_settings(COSTSWITCH_PRICE_CATALOG_TIMEOUT=0.3)
def test_a_server_that_does_not_answer_times_out(server):
    server.delay = 2.0
    started = time.monotonic()

    with pytest.raises(httpx.TimeoutException):
        prices_sync(source=f"{server.url}/slow")

    assert time.monotonic() - started < 1.5


def test_only_http_urls_and_files_are_accepted():
    with pytest.raises(CatalogError, match="only http"):
        prices_sync(source="ftp://example.com/catalog.json")
    with pytest.raises(CatalogError, match="Cannot read"):
        prices_sync(source="/nonexistent/catalog.json")


def test_the_command_syncs_once_and_a_dry_run_changes_nothing(server):
    url = server.serve("/catalog.json", catalog(model("big")))
    out = StringIO()

    call_command("sync_prices", "--dry-run", "--source", url, stdout=out)

    assert out.getvalue().startswith("dry run, nothing changed: ")
    assert json.loads(out.getvalue().split(": ", 1)[1])["created"] == ["big"]
    assert not ModelProfile.objects.exists() and not Provider.objects.exists()

    with override_settings(COSTSWITCH_PRICE_CATALOG=url):
        call_command("sync_prices", stdout=StringIO())
    assert ModelProfile.objects.get(pk="big").input_price_per_million == Decimal("1.1")

    with (
        override_settings(COSTSWITCH_PRICE_CATALOG=""),
        pytest.raises(CommandError, match="Price sync is off"),
    ):
        call_command("sync_prices", stdout=StringIO())
    with pytest.raises(CommandError, match="answered HTTP 404"):
        call_command("sync_prices", "--source", f"{server.url}/missing.json", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL (make test starts one)")
def test_two_syncs_at_once_import_once(server):
    url = server.serve("/catalog.json", catalog(*(model(f"m{n}", f"{n}.5", f"{n + 1}") for n in range(40))))
    barrier = threading.Barrier(2)
    outcomes: list = []

    def run():
        try:
            barrier.wait()
            outcomes.append(prices_sync(source=url).report)
        except Exception as exc:  # the test reports it below
            outcomes.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert all(not isinstance(outcome, Exception) for outcome in outcomes), outcomes
    assert sorted(len(report.created) for report in outcomes) == [0, 40]
    assert ModelProfile.objects.count() == 40
    assert PriceChange.objects.count() == 40  # one first-price row each, none twice
