"""Price sync: fetch the configured catalog (`COSTSWITCH_PRICE_CATALOG`, a file path or an http(s)
URL, in our format or LiteLLM's) and import it with the code `manage.py import_models` uses.

Importing the same catalog twice changes nothing the second time (`catalog_import` is idempotent:
equal prices add no history row). Two syncs never interleave: the import runs under a transaction-
scoped advisory lock on PostgreSQL (SQLite serializes write transactions anyway), so the second one
waits and then finds nothing left to change.
"""

import json
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
from django.conf import settings
from django.db import connection, transaction

from models_registry.catalog import Catalog, CatalogError, parse_catalog
from models_registry.choices import PriceSource
from models_registry.services import ImportReport, catalog_import

# Any constant both syncs agree on; pg_advisory_xact_lock takes a bigint.
_SYNC_LOCK_KEY = 0x70726963_6573796E  # "pricesyn"


@dataclass(frozen=True)
class SyncResult:
    source: str
    report: ImportReport

    def as_dict(self) -> dict:
        report = self.report
        return {
            "source": self.source,
            "format": report.format,
            "created": report.created,
            "updated": sorted(report.updated),
            "price_changes": report.price_changes,
            "unchanged": report.unchanged,
            "skipped": report.skipped,
            "providers_created": report.providers_created,
        }


def describe_source(source: str) -> str:
    """The source as history and logs may show it: a URL without credentials or query string
    (signed URLs carry secrets there), a file by its name."""
    if _is_url(source):
        parts = urlsplit(source)
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))[:300]
    return Path(source).name[:300]


def _is_url(source: str) -> bool:
    return source.lower().startswith(("http://", "https://"))


def catalog_fetch(source: str, *, timeout: float, max_bytes: int) -> Catalog:
    """Read and parse a catalog from an http(s) URL or a file, refusing anything over `max_bytes`.
    Network failures raise httpx.TransportError (transient: worth a retry); a bad answer or file
    raises CatalogError (retrying will not help)."""
    if "://" in source and not _is_url(source):
        raise CatalogError(f"{describe_source(source)}: only http(s) URLs and file paths are supported.")
    body = _download(source, timeout, max_bytes) if _is_url(source) else _read_file(source, max_bytes)
    try:
        data = json.loads(body, parse_float=Decimal)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError(f"{describe_source(source)} is not valid JSON: {exc}.") from exc
    return parse_catalog(data)


def _too_large(source: str, max_bytes: int) -> CatalogError:
    return CatalogError(f"{describe_source(source)} is larger than {max_bytes} bytes.")


def _download(url: str, timeout: float, max_bytes: int) -> bytes:
    """`timeout` bounds each network wait and the whole download: a server trickling bytes cannot
    hold the worker either."""
    deadline = time.monotonic() + timeout
    with (
        httpx.Client(timeout=timeout, follow_redirects=True, max_redirects=5) as client,
        client.stream("GET", url) as response,
    ):
        if response.status_code != 200:
            raise CatalogError(f"{describe_source(url)} answered HTTP {response.status_code}.")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise _too_large(url, max_bytes)
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(url, max_bytes)
            if time.monotonic() > deadline:
                raise httpx.ReadTimeout(f"{describe_source(url)} took longer than {timeout} s to download.")
            chunks.append(chunk)
    return b"".join(chunks)


def _read_file(path: str, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            body = handle.read(max_bytes + 1)
    except OSError as exc:
        raise CatalogError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    if len(body) > max_bytes:
        raise _too_large(path, max_bytes)
    return body


def _lock_sync() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_SYNC_LOCK_KEY])


def prices_sync(*, source: str | None = None, dry_run: bool = False) -> SyncResult | None:
    """Import the configured catalog (or `source`); None when price sync is off (no catalog set).

    LiteLLM's file lists thousands of models: from it only models already registered are updated,
    none created. Our own format creates and updates, as `manage.py import_models` does."""
    source = settings.COSTSWITCH_PRICE_CATALOG if source is None else source
    if not source:
        return None
    # Fetched before the transaction: no database lock is held while the network is slow.
    catalog = catalog_fetch(
        source,
        timeout=settings.COSTSWITCH_PRICE_CATALOG_TIMEOUT,
        max_bytes=settings.COSTSWITCH_PRICE_CATALOG_MAX_BYTES,
    )
    litellm = catalog.format == "litellm"
    with transaction.atomic():
        _lock_sync()
        report = catalog_import(
            catalog=catalog,
            source=PriceSource.LITELLM if litellm else PriceSource.CATALOG,
            source_detail=f"sync: {describe_source(source)}",
            dry_run=dry_run,
            only_existing=litellm,
        )
    return SyncResult(source=describe_source(source), report=report)
