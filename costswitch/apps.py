from django.apps import AppConfig


class CostswitchConfig(AppConfig):
    name = "costswitch"
    verbose_name = "costswitch"

    def ready(self) -> None:
        from costswitch import celery  # noqa: F401  the Celery app: shared tasks are sent through it
        from costswitch.api import schema  # noqa: F401  registers the OpenAPI auth extension
