from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from costswitch.errors import DomainError
from models_registry.catalog import DEFAULT_CATALOG, CatalogError, load_catalog
from models_registry.choices import PriceSource
from models_registry.services import catalog_import


class Command(BaseCommand):
    help = (
        "Load or update the model registry from a catalog file: ours (models_registry/catalog/models.json) "
        "or LiteLLM's model_prices_and_context_window.json. Idempotent; price edits are kept as history."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "file", nargs="?", default=str(DEFAULT_CATALOG), help="catalog file (default: ours)"
        )
        parser.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")
        parser.add_argument(
            "--only-existing",
            action="store_true",
            help="update models already registered, create none (handy with LiteLLM's thousands of models)",
        )

    def handle(self, *args, file: str, dry_run: bool, only_existing: bool, **options):
        path = Path(file)
        try:
            catalog = load_catalog(path)
        except CatalogError as exc:
            for problem in exc.problems:
                self.stderr.write(f"  {problem}")
            raise CommandError(str(exc)) from exc
        source = PriceSource.CATALOG if catalog.format == "costswitch" else PriceSource.LITELLM
        try:
            report = catalog_import(
                catalog=catalog,
                source=source,
                source_detail=path.name,
                dry_run=dry_run,
                only_existing=only_existing,
            )
        except DomainError as exc:
            raise CommandError(f"{exc.message} {exc.details or ''}".strip()) from exc

        for name in report.providers_created:
            self.stdout.write(f"+ provider {name}")
        for model_id in report.created:
            self.stdout.write(f"+ {model_id}")
        for model_id, fields in report.updated.items():
            self.stdout.write(f"~ {model_id}: {', '.join(fields)}")
        summary = (
            f"{path.name} ({catalog.format}): {len(report.created)} created, {len(report.updated)} updated "
            f"({len(report.price_changes)} with new prices), {report.unchanged} unchanged, "
            f"{report.skipped} skipped."
        )
        if dry_run:
            summary = f"Dry run, nothing written. {summary}"
        self.stdout.write(self.style.SUCCESS(summary))
