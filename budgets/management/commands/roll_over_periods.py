from typing import Any

from budgets.services.periods import periods_roll_over
from costswitch.jobs import JobCommand


class Command(JobCommand):
    help = (
        "Close budget periods that have ended and open the current period (with carry-over) of every "
        "active budget that has none; what beat runs every 5 minutes. Safe to run at any time."
    )

    def run_job(self, **options: Any) -> dict:
        return periods_roll_over().as_dict()
