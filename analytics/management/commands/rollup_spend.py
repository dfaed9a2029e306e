from datetime import date

from django.core.management.base import CommandError

from analytics.rollup import RECENT_DAYS, daily_spend_build_all
from budgets.models import Organization
from costswitch.jobs import JobCommand


class Command(JobCommand):
    help = (
        "Rebuild the daily spend rollup from the ledger: the last 2 ended days (what the 10-minute "
        "task does), or every day from --since (a local date) up to yesterday."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--since", help="First local day to rebuild (YYYY-MM-DD).")
        parser.add_argument("--organization", help="Only this organization (its slug).")

    def run_job(self, *, since: str | None = None, organization: str | None = None, **options) -> dict:
        first = None
        if since:
            try:
                first = date.fromisoformat(since)
            except ValueError as exc:
                raise CommandError(f"--since must be a date (YYYY-MM-DD), not {since!r}.") from exc
        org = None
        if organization:
            org = Organization.objects.filter(slug=organization).first()
            if org is None:
                raise CommandError(f"Unknown organization {organization!r}.")
        results = daily_spend_build_all(days=RECENT_DAYS, since=first, organization=org)
        return {
            "organizations": [
                {
                    "organization": r.organization,
                    "firstDay": r.first_day,
                    "lastDay": r.last_day,
                    "days": r.days,
                    "rows": r.rows,
                    "records": r.records,
                }
                for r in results
            ]
        }
