from typing import Any

from budgets.services.ledger import reservations_expire
from costswitch.jobs import JobCommand


class Command(JobCommand):
    help = (
        "Release pending reservations past their TTL (state expired); what beat runs every minute. "
        "A late settle of an expired reservation still records its cost."
    )

    def run_job(self, **options: Any) -> dict:
        return {"expired": reservations_expire()}
