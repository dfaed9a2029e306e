from pathlib import Path

from django.core.management.base import CommandError

from analytics.models import ExportProvider, SyncSource
from analytics.reconciliation.external import sync_batch_create, sync_batch_process
from budgets.models import Organization
from costswitch.errors import DomainError
from costswitch.jobs import JobCommand


class Command(JobCommand):
    help = (
        "Import a provider usage export (OpenAI or Anthropic, CSV or JSON) and reconcile it with the "
        "ledger now: discrepancies are recorded and adjusted with compensating entries."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("file", help="The export file.")
        parser.add_argument("--provider", required=True, choices=[p for p in ExportProvider.values])
        parser.add_argument("--organization", required=True, help="The organization's slug.")
        parser.add_argument(
            "--format", choices=["csv", "json"], default="", help="Default: from the content."
        )

    def run_job(self, *, file: str, provider: str, organization: str, format: str, **options) -> dict:
        org = Organization.objects.filter(slug=organization).first()
        if org is None:
            raise CommandError(f"Unknown organization {organization!r}.")
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No such file: {file}")
        try:
            batch = sync_batch_create(
                organization=org,
                provider=provider,
                source=SyncSource.FILE,
                content=path.read_bytes(),
                format=format,
                filename=path.name,
                enqueue=False,
            )
            batch = sync_batch_process(batch_id=batch.pk)
        except DomainError as exc:
            raise CommandError(exc.message) from None
        run = batch.run
        run.refresh_from_db()
        return {
            "batch": batch.pk,
            "run": run.pk,
            "lines": run.lines_seen,
            "matched": run.lines_matched,
            "discrepancies": run.discrepancy_count,
            "adjusted": run.adjusted_count,
            "adjustedTotal": run.adjusted_total,
            "errors": len(batch.errors),
        }
