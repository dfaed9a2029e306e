from typing import Any

import httpx
from django.core.management.base import CommandError, CommandParser

from costswitch.jobs import JobCommand
from models_registry.catalog import CatalogError
from models_registry.sync import prices_sync


class Command(JobCommand):
    help = (
        "Import the price catalog of COSTSWITCH_PRICE_CATALOG (or --source: a file or an http(s) URL), "
        "as beat does hourly. Idempotent: an unchanged catalog changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--source", help="catalog file or URL instead of COSTSWITCH_PRICE_CATALOG")

    def run_job(self, *, source: str | None = None, **options: Any) -> dict:
        try:
            result = prices_sync(source=source or None)
        except CatalogError as exc:
            for problem in exc.problems:
                self.stderr.write(f"  {problem}")
            raise CommandError(str(exc)) from exc
        except httpx.TransportError as exc:
            raise CommandError(f"Cannot fetch the catalog: {exc}") from exc
        if result is None:
            raise CommandError("Price sync is off: set COSTSWITCH_PRICE_CATALOG or pass --source.")
        return result.as_dict()
