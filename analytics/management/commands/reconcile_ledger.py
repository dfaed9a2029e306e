from django.core.management.base import CommandError

from analytics.reconciliation.internal import ledger_reconcile, ledger_reconcile_all
from budgets.models import Organization
from costswitch.jobs import JobCommand


class Command(JobCommand):
    help = (
        "Recompute every open budget period's spent and reserved from the ledger; record and fix "
        "drift (what the hourly reconciliation task does)."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--organization", help="Only this organization (its slug).")

    def run_job(self, *, organization: str | None = None, **options) -> dict:
        if organization:
            org = Organization.objects.filter(slug=organization).first()
            if org is None:
                raise CommandError(f"Unknown organization {organization!r}.")
            runs = [ledger_reconcile(organization=org)]
        else:
            runs = ledger_reconcile_all()
        return {
            "runs": [
                {
                    "run": run.pk,
                    "organization": run.organization.slug,
                    "periods": run.lines_seen,
                    "drifted": run.discrepancy_count,
                }
                for run in runs
            ]
        }
