from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    name = "analytics"

    def ready(self) -> None:
        from analytics.reconciliation.external import cost_data_process
        from costswitch.webhooks import register_processor

        register_processor("cost-data", cost_data_process)
