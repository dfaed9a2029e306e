from costswitch.jobs import JobCommand
from selection.outcome_learning import outcome_models_train


class Command(JobCommand):
    help = (
        "Rebuild the per-request outcome models that outcomes reported since the last run concern, "
        "from each model's newest COSTSWITCH_LEARNING_WINDOW outcomes (what the learn-from-outcomes "
        "beat task does every minute)."
    )

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--organization", type=int, default=None, help="Only this organization id.")

    def run_job(self, *, organization=None, **options):
        return outcome_models_train(organization_id=organization)
