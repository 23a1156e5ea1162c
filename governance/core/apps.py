from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "governance.core"
    label = "core"
    verbose_name = "Operations"
