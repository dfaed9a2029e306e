from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class SelectionConfig(AppConfig):
    name = "selection"

    def ready(self) -> None:
        from models_registry.models import ModelFallback, ModelProfile, Provider
        from selection.snapshot import on_registry_write

        # Every registry write goes through a model save or delete (fallback chains are rewritten
        # by deleting their links and touching the model), so these keep every process current.
        for model in (ModelProfile, Provider, ModelFallback):
            post_save.connect(on_registry_write, sender=model, dispatch_uid=f"registry-save-{model.__name__}")
            post_delete.connect(
                on_registry_write, sender=model, dispatch_uid=f"registry-delete-{model.__name__}"
            )
