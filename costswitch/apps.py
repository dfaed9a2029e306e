from django.apps import AppConfig


class CostswitchConfig(AppConfig):
    name = "costswitch"
    verbose_name = "costswitch"
