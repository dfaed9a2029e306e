from django.core.management.base import BaseCommand, CommandError

from budgets.selectors import ledger_drift


class Command(BaseCommand):
    help = "Check that every budget period's spent and reserved equal the ledger rows behind them."

    def add_arguments(self, parser):
        parser.add_argument("--open-only", action="store_true", help="Only periods that are not closed.")

    def handle(self, *args, open_only: bool = False, **options):
        drift = ledger_drift(open_only=open_only)
        for item in drift:
            self.stderr.write(
                f"period {item.period_id} (budget {item.budget_id}): spent {item.spent} vs charged "
                f"{item.charged}; reserved {item.reserved} vs held {item.held}"
            )
        if drift:
            raise CommandError(f"{len(drift)} period(s) disagree with the ledger.")
        self.stdout.write(self.style.SUCCESS("Ledger consistent: every period equals its charges and holds."))
