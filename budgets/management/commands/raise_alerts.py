from typing import Any

from django.core.management.base import CommandParser

from budgets.services.alerts import alerts_forecast, alerts_sweep
from costswitch.jobs import JobCommand


class Command(JobCommand):
    help = (
        "Raise the budget alerts that are due: threshold and exhausted alerts of every open period that "
        "crossed them without one, and forecast alerts for budgets projected to exceed their limit "
        "before the period ends (what beat runs every 5 and 15 minutes). Each alert is raised once, so "
        "running this again raises nothing new; raised alerts are notified once the run commits."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--only",
            choices=["thresholds", "forecast"],
            help="Run one of the two sweeps (default: both).",
        )

    def run_job(self, **options: Any) -> dict:
        summary: dict = {}
        if options["only"] in (None, "thresholds"):
            summary.update(alerts_sweep().as_dict())
        if options["only"] in (None, "forecast"):
            forecast = alerts_forecast().as_dict()
            summary["forecast_alerts"] = forecast["forecast_alerts"]
            summary["budgets_checked"] = forecast["budgets_checked"]
        return summary
