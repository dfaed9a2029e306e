from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals and audit log"

    def ready(self) -> None:
        from approvals.audit import connect_signals

        # Changes to budgets, keys, the registry and rules are audited wherever they are made.
        connect_signals()

        from approvals import tasks_notifications  # noqa: F401 (registers the delivery tasks)
        from approvals.notifications import on_alert_raised
        from budgets.signals import alert_raised

        # Budget alerts (raised in budgets, which may not import approvals) become notifications.
        alert_raised.connect(on_alert_raised, dispatch_uid="approvals.notify_alert")

        from approvals.notifications import EXTERNAL_ALERT_ENDPOINT, external_alert_process
        from costswitch.webhooks import register_processor

        register_processor(EXTERNAL_ALERT_ENDPOINT, external_alert_process)
